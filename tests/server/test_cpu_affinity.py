"""The model's CPU cores left to the model (server/cpu_affinity.py): the plan, the moves on a
real process tree, the session server's placement after vLLM bound its worker, and the
benchmark's on/off switch (benchmarks/placement.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import psutil
import pytest

from benchmarks.placement import PlacementSwitch
from server.cpu_affinity import keep_model_cores_free, plan_placement
from tests.conftest import RunningServer

ALLOWED = frozenset(os.sched_getaffinity(0))
needs_two_cores = pytest.mark.skipif(len(ALLOWED) < 2, reason="needs two CPU cores to keep one apart")


def test_the_plan_moves_the_unbound_processes_to_the_cores_the_bound_ones_leave() -> None:
    # The API (1) and engine core (2) may run anywhere; vLLM bound its worker (3) to core 0.
    planned = plan_placement({0, 1, 2, 3}, {1: {0, 1, 2, 3}, 2: {0, 1, 2, 3}, 3: {0}})
    assert planned == (frozenset({0}), frozenset({1, 2, 3}), (1, 2))
    # Two workers: the model's cores are all of theirs.
    planned = plan_placement({0, 1, 2, 3}, {1: {0, 1, 2, 3}, 3: {0}, 4: {1}})
    assert planned == (frozenset({0, 1}), frozenset({2, 3}), (1,))


@pytest.mark.parametrize(
    "affinities",
    [
        {1: {0, 1}, 2: {0, 1}},  # nothing bound (a GPU, or VLLM_CPU_OMP_THREADS_BIND=nobind)
        {1: {0, 1}, 3: {0}, 4: {1}},  # the model has every core
        {3: {0}},  # nothing of the server's own to move
    ],
)
def test_the_plan_is_none_when_there_is_nothing_to_move(affinities: dict[int, set[int]]) -> None:
    assert plan_placement({0, 1}, affinities) is None


def _threads_affinity(process: psutil.Process) -> set[frozenset[int]]:
    return {frozenset(os.sched_getaffinity(thread.id)) for thread in process.threads()}


# A stand-in server: a process with a thread of its own and two children, one of which binds
# itself to the first core the way vLLM binds its worker.
_TREE = """
import os, subprocess, sys, threading, time
first = min(os.sched_getaffinity(0))
bound = subprocess.Popen([sys.executable, "-c", f"import os, time; os.sched_setaffinity(0, {{{first}}}); print(flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
free = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
bound.stdout.readline()
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
print(bound.pid, free.pid, flush=True)
time.sleep(60)
"""


@pytest.fixture
def process_tree() -> Iterator[tuple[psutil.Process, psutil.Process, psutil.Process]]:
    root = subprocess.Popen([sys.executable, "-c", _TREE], stdout=subprocess.PIPE, text=True)
    try:
        assert root.stdout is not None
        bound_pid, free_pid = map(int, root.stdout.readline().split())
        yield psutil.Process(root.pid), psutil.Process(bound_pid), psutil.Process(free_pid)
    finally:
        for process in psutil.Process(root.pid).children(recursive=True):
            process.kill()
        root.kill()
        root.wait()


@needs_two_cores
def test_every_thread_of_the_unbound_processes_moves_off_the_bound_core(
    process_tree: tuple[psutil.Process, psutil.Process, psutil.Process],
) -> None:
    root, bound, free = process_tree
    first = min(ALLOWED)
    assert len(root.threads()) >= 2

    placement = keep_model_cores_free(root)

    assert placement is not None
    assert placement.model_cores == {first}
    assert placement.spare_cores == ALLOWED - {first}
    assert set(placement.moved) == {root.pid, free.pid}
    assert _threads_affinity(root) == {ALLOWED - {first}}
    assert _threads_affinity(free) == {ALLOWED - {first}}
    assert _threads_affinity(bound) == {frozenset({first})}  # the worker keeps its core
    # Done once, it is done: a second pass finds nothing bound to fewer cores than the root.
    assert keep_model_cores_free(root) is None


@needs_two_cores
def test_the_session_servers_threads_leave_the_models_cores_to_vllms_worker(
    server: RunningServer, http: httpx.Client
) -> None:
    # A call first, so that threads started for requests (the tokenizer's) exist too.
    assert http.post("/v1/wrappers/sentiment/invoke", json={"input": {"text": "Lovely."}}).status_code == 200
    root = psutil.Process(server.process.pid)
    processes = [root, *root.children(recursive=True)]
    workers = [
        p for p in processes if p.name().startswith("VLLM::Worker") and set(p.cpu_affinity()) < ALLOWED
    ]
    if not workers:
        pytest.skip("vLLM bound no worker to fewer cores than the server may use here")
    # Where vLLM bound each worker's main (compute) thread; some helper threads of a worker,
    # started before it bound itself, keep every core.
    model = frozenset().union(*(w.cpu_affinity() for w in workers))
    assert ALLOWED - model, "vLLM gave the model every core"
    engine_core = [p for p in processes if p.name().startswith("VLLM::EngineCor")]
    assert engine_core, [p.name() for p in processes]
    for process in [root, *engine_core]:
        shared = [sorted(a) for a in _threads_affinity(process) if a & model]
        assert not shared, (
            f"{process.name()} ({process.pid}) has threads on the model's cores {sorted(model)}"
        )
    assert "are left to vLLM's worker" in server.log()


@needs_two_cores
def test_the_benchmarks_switch_lets_the_moved_threads_run_anywhere_and_back(
    process_tree: tuple[psutil.Process, psutil.Process, psutil.Process],
) -> None:
    root, bound, free = process_tree
    first = min(ALLOWED)
    assert keep_model_cores_free(root) is not None

    switch = PlacementSwitch(root.pid, set(ALLOWED))

    assert switch.available
    assert (switch.model, switch.spare) == ({first}, ALLOWED - {first})
    assert set(switch.own) == {root.pid, free.pid}
    switch.keep_model_cores_free(False)
    assert _threads_affinity(root) == _threads_affinity(free) == {ALLOWED}
    assert _threads_affinity(bound) == {frozenset({first})}
    switch.keep_model_cores_free(True)
    assert _threads_affinity(root) == _threads_affinity(free) == {ALLOWED - {first}}
