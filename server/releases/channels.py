"""The releases in force: which version a channel serves to a caller, and calibrated scores.

A split is sticky: the caller's route key (``X-Wrapserve-Route-Key``) is hashed with the
wrapper and channel names into one of 10,000 buckets, so a key always lands on the same
version while the split stands, and distinct keys spread by the percentages. A call
without a key draws a bucket at random. The file is read at start and again by
``reload`` (SIGHUP); a reload that fails leaves the releases in force as they were.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass
from pathlib import Path

from server.releases.config import Calibration, ReleaseConfig, load_releases
from wrappers.errors import ConfigurationError
from wrappers.evals.calibration import apply_temperature
from wrappers.registry import WrapperNotFound, WrapperRegistry

__all__ = ["BUCKETS", "ROUTE_KEY_HEADER", "Releases", "Route", "bucket"]

log = logging.getLogger("wrapserve")
BUCKETS = 10_000
# A caller's key for sticky splits (hashed, never stored): the same key, the same version.
ROUTE_KEY_HEADER = "X-Wrapserve-Route-Key"


def bucket(wrapper: str, channel: str, key: str) -> int:
    digest = hashlib.sha256(f"{wrapper}\0{channel}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


@dataclass(frozen=True)
class Route:
    """Where one call goes: the version to serve, and the channel and shadow that chose it."""

    version: str | None  # None: the latest (no channel named)
    channel: str | None = None
    shadow: str | None = None
    split: dict[str, int] | None = None  # the channel's split, when it has one


@dataclass(frozen=True)
class Calibrated:
    scores: dict[str, float]
    abstained: bool | None  # None: no abstain threshold set


class Releases:
    def __init__(self, path: Path | None, registry: WrapperRegistry) -> None:
        self.path = path
        self._registry = registry
        self.config: ReleaseConfig = load_releases(path, registry)  # a bad file stops the start
        self.generation = 1
        self.last_error: str | None = None

    def reload(self) -> bool:
        """Read the file again; on any error keep the releases in force and say why."""
        try:
            config = load_releases(self.path, self._registry)
        except ConfigurationError as error:
            self.last_error = error.message
            log.error("releases not reloaded, the previous ones stay in force: %s", error.message)
            return False
        self.config, self.last_error = config, None
        self.generation += 1
        log.info("releases reloaded from %s (generation %d)", self.path, self.generation)
        return True

    def route(self, name: str, wanted: str | None, key: str | None) -> Route:
        """A version (``1``, ``1.2.0``) or none passes through; a channel name is looked up."""
        if not wanted or wanted[0].isdigit():
            return Route(wanted)
        releases = self.config.wrappers.get(name)
        channel = releases.channels.get(wanted) if releases else None
        if channel is None:
            versions = ", ".join(wrapper.version for wrapper in self._registry.versions(name))
            known = ", ".join(sorted(releases.channels)) if releases else "none"
            raise WrapperNotFound(
                f"wrapper {name!r} has no version or channel {wanted!r} (versions: {versions};"
                f" channels: {known})",
                param="version",
            )
        if channel.version is not None:
            return Route(channel.version, wanted, channel.shadow)
        assert channel.split is not None
        point = bucket(name, wanted, key) if key else random.randrange(BUCKETS)
        edge = 0
        for version, percent in channel.split.items():
            edge += percent * BUCKETS // 100
            if point < edge:
                return Route(version, wanted, channel.shadow, channel.split)
        return Route(list(channel.split)[-1], wanted, channel.shadow, channel.split)

    def calibration(self, name: str, version: str, model: str) -> Calibration | None:
        releases = self.config.wrappers.get(name)
        found = releases.calibration.get(version) if releases else None
        if found is None or (found.model is not None and found.model != model):
            return None
        return found

    def calibrate(self, name: str, version: str, model: str, scores: dict[str, float]) -> Calibrated | None:
        """Temperature-scaled scores (``wrappers/evals/calibration.py``'s fit), and whether to abstain."""
        found = self.calibration(name, version, model)
        if found is None:
            return None
        scaled = apply_temperature(scores, found.temperature)
        calibrated = {label: round(p, 6) for label, p in scaled.items()}
        abstained = None if found.abstain_below is None else max(calibrated.values()) < found.abstain_below
        return Calibrated(calibrated, abstained)
