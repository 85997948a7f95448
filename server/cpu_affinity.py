"""The model's CPU cores left to the model: the server's other threads run on the rest.

On CPU, vLLM binds its worker's compute threads to some cores (``VLLM_CPU_OMP_THREADS_BIND``;
``auto`` keeps ``VLLM_CPU_NUM_OF_RESERVED_CPU`` cores out, one on a small box) but lets the
API process and the engine core process run anywhere, the model's cores included. There
they take time from the forward pass: the engine core busy-waits for the worker
(``sched_yield``), and the API process parses, tokenizes and answers. Moving every thread
of those processes to the cores vLLM kept out gives the model its cores back: classify at
64 in flight on 2 cores, 4-5% more calls/s (four on/off pairs by hand on one server).

One pass after the engine starts is enough: a thread or child process started later (a
request's tokenizer thread, a grammar compile worker) inherits the affinity of the thread
that starts it. Nothing is moved when vLLM bound nothing (GPUs, ``nobind``) or gave the
model every core the server may use.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

import psutil

__all__ = ["Placement", "keep_model_cores_free", "move_threads", "plan_placement"]


@dataclass(frozen=True)
class Placement:
    model_cores: frozenset[int]  # where vLLM bound its worker threads
    spare_cores: frozenset[int]  # where the server's other threads now run
    moved: tuple[int, ...]  # the processes (pids) whose threads were moved


def plan_placement(
    allowed: Set[int], affinities: Mapping[int, Set[int]]
) -> tuple[frozenset[int], frozenset[int], tuple[int, ...]] | None:
    """(model cores, spare cores, pids to move) for a server that may use ``allowed`` and
    whose processes have these affinities; None when there is nothing to move.

    A process bound to fewer cores than ``allowed`` is one vLLM bound to the model's cores;
    a process free to use all of them is one of the server's own.
    """
    bound = {pid: cpus for pid, cpus in affinities.items() if cpus < allowed}
    if not bound:
        return None
    model = frozenset().union(*bound.values())
    spare = frozenset(allowed) - model
    movable = tuple(pid for pid, cpus in affinities.items() if cpus == allowed)
    if not spare or not movable:
        return None
    return model, spare, movable


def keep_model_cores_free(root: psutil.Process | None = None) -> Placement | None:
    """Move every thread of ``root`` (this process) and of its unbound descendants off the
    cores vLLM bound its worker to. None when nothing was moved."""
    root = root or psutil.Process()
    affinities: dict[int, set[int]] = {}
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a process that ended meanwhile
            affinities[process.pid] = set(process.cpu_affinity())
    planned = plan_placement(affinities.get(root.pid, set()), affinities)
    if planned is None:
        return None
    model, spare, movable = planned
    return Placement(model, spare, move_threads(movable, spare))


def move_threads(pids: Iterable[int], cpus: Set[int]) -> tuple[int, ...]:
    """Every thread of each process onto ``cpus``; the pids of the processes still running."""
    moved = []
    for pid in pids:
        try:
            threads = psutil.Process(pid).threads()
        except psutil.Error:
            continue
        for thread in threads:
            # Per thread: Linux applies an affinity to the one thread (task) it names.
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(thread.id, cpus)
        moved.append(pid)
    return tuple(moved)
