"""Wrapserve's CPU placement on and off on one running server, for a side-by-side measurement.

The server moved its own threads (API process, engine core, their helpers) off the cores
vLLM bound its worker to when it started (``server/cpu_affinity.py``). To measure what that
is worth without a restart, the benchmark lets those threads run on every core again
("anywhere") and moves them back ("kept free"), between runs on fresh texts.
"""

from __future__ import annotations

import os

import psutil

from server.cpu_affinity import move_threads

__all__ = ["PlacementSwitch"]


class PlacementSwitch:
    """Toggles where a started Wrapserve server's own threads run. ``available`` is False when
    the server moved nothing (GPUs, ``nobind``, the switch off, a single core)."""

    def __init__(self, server_pid: int, allowed: set[int] | None = None) -> None:
        self.allowed = frozenset(allowed or os.sched_getaffinity(0))  # the server inherits the bench's
        root = psutil.Process(server_pid)
        affinities = {p.pid: frozenset(p.cpu_affinity()) for p in [root, *root.children(recursive=True)]}
        self.spare = affinities[root.pid]
        # vLLM's workers are bound to the model's cores, which the server's own threads left.
        self.model = frozenset().union(*(cpus for cpus in affinities.values() if not cpus & self.spare))
        self.own = tuple(pid for pid, cpus in affinities.items() if cpus == self.spare)
        self.available = bool(self.model) and self.spare < self.allowed

    def keep_model_cores_free(self, on: bool) -> None:
        move_threads(self.own, self.spare if on else self.allowed)
