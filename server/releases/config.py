"""The releases file: channels and calibrations per wrapper, as TOML or JSON.

    [sentiment.channels]
    stable = { version = "1.0.0", shadow = "1.1.0" }   # callers get 1.0.0; 1.1.0 is compared
    canary = { split = { "1.0.0" = 50, "1.1.0" = 50 } } # sticky per X-Wrapserve-Route-Key

    [sentiment.calibration."1.1.0"]
    temperature = 2.5        # fitted by `wrapserve eval --eval-sets` (its run's calibration)
    abstain_below = 0.6      # optional: a top probability below this answers abstained: true
    model = "smollm2-135m-instruct"   # optional: applied only while this model is served

Every version named must be served; a file that does not validate is refused as a whole
(at start the server does not start; on SIGHUP the previous file stays in force).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from wrappers.errors import ConfigurationError
from wrappers.registry import WrapperRegistry

__all__ = ["Calibration", "Channel", "ReleaseConfig", "WrapperReleases", "load_releases"]

CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")  # never a version: those start with a digit
MAX_BYTES = 1_000_000


class Channel(BaseModel):
    """One channel: a version, or a split between versions by percentage; maybe a shadow."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str | None = None
    split: dict[str, int] | None = Field(default=None, description="version -> percent, summing to 100")
    shadow: str | None = Field(default=None, description="a version run beside, its answer only recorded")

    @model_validator(mode="after")
    def _one_target(self) -> Channel:
        if (self.version is None) == (self.split is None):
            raise ValueError("a channel has either version or split")
        if self.split is not None:
            if len(self.split) < 2 or any(share <= 0 for share in self.split.values()):
                raise ValueError("a split names two versions or more, each with a positive percentage")
            if sum(self.split.values()) != 100:
                raise ValueError(f"split percentages sum to {sum(self.split.values())}, not 100")
        return self

    def versions(self) -> list[str]:
        return [
            *(self.split or {}),
            *([self.version] if self.version else []),
            *([self.shadow] if self.shadow else []),
        ]


class Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(gt=0.01, le=100)
    abstain_below: float | None = Field(default=None, gt=0, lt=1)
    model: str | None = None


class WrapperReleases(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: dict[str, Channel] = {}
    calibration: dict[str, Calibration] = {}


class ReleaseConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    wrappers: dict[str, WrapperReleases] = {}

    def check_against(self, registry: WrapperRegistry) -> None:
        """Every wrapper and exact version named must be served; channel names must not look like versions."""
        for name, releases in self.wrappers.items():
            if name not in registry.names():
                raise ConfigurationError(f"releases: no wrapper named {name!r}")
            served = {wrapper.version for wrapper in registry.versions(name)}
            for channel, spec in releases.channels.items():
                if not CHANNEL_NAME.match(channel):
                    raise ConfigurationError(
                        f"releases: channel name {channel!r} of {name} must match {CHANNEL_NAME.pattern}"
                    )
                for version in spec.versions():
                    if version not in served:
                        raise ConfigurationError(
                            f"releases: {name} channel {channel!r} names version {version!r}, which is not"
                            f" served (served: {', '.join(sorted(served))})"
                        )
            for version in releases.calibration:
                if version not in served:
                    raise ConfigurationError(
                        f"releases: calibration of {name}@{version}, which is not served"
                    )


def parse_releases(text: str, suffix: str) -> ReleaseConfig:
    try:
        data: Any = json.loads(text) if suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise ConfigurationError(
            f"releases: not valid {'JSON' if suffix == '.json' else 'TOML'}: {error}"
        ) from None
    try:
        return ReleaseConfig(wrappers=data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or "file"
        raise ConfigurationError(f"releases: {where}: {first['msg']}") from None


def load_releases(path: Path | None, registry: WrapperRegistry) -> ReleaseConfig:
    """The file's channels and calibrations, checked against the served wrappers; none without a file."""
    if path is None:
        return ReleaseConfig()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ReleaseConfig()  # no file yet: no channels (write one, then SIGHUP)
    except OSError as error:
        raise ConfigurationError(f"releases: cannot read {path}: {error.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise ConfigurationError(f"releases: {path} is over {MAX_BYTES} bytes")
    config = parse_releases(raw.decode("utf-8", errors="replace"), path.suffix)
    config.check_against(registry)
    return config
