"""The FastAPI application, built by a factory from settings; no module-level app."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator

from fastapi import FastAPI

from models.manifest import ModelManifest
from server.batches.jobs import BatchJobs
from server.batches.store import BatchStore
from server.engine.admission import Admission
from server.engine.guarded import GuardedEngine
from server.engine.protocol import Engine
from server.http.errors import install_error_handlers
from server.http.guards import install_guards
from server.http.metrics import Metrics
from server.openai import batches, files, models
from server.openai.chat import router as chat
from server.openai.completions import router as completions
from server.openai.responses import router as responses
from server.openai.responses.store import ResponseStore
from server.routes import health, releases, schemas, wrappers
from server.settings import Settings
from server.state import EngineFactory, ServerState
from server.storage.database import open_database
from server.structured.grammar import GrammarCompiler
from wrappers.catalogue import BUILTINS
from wrappers.errors import WrapserveError
from wrappers.registry import WrapperRegistry, load_directory

__all__ = ["create_app"]

log = logging.getLogger("wrapserve")

# The collector's thresholds after start-up: a larger young generation; the middle and old
# generations' counts as CPython's defaults, so cyclic garbage that outlived a call still goes.
YOUNG_GC_THRESHOLDS = (20_000, 10, 10)


def _freeze_startup_heap() -> None:
    """Keep what start-up built out of the garbage collector's scans.

    vLLM, torch and transformers leave millions of objects that live as long as the
    server; a full collection under load would walk all of them on the event loop
    (vLLM's own server freezes them too).

    Then the young generation is made large enough that a call's short-lived containers
    are freed by their reference counts before a collection comes: at CPython's default
    of 700 tracked objects a collection ran every few calls and took a tenth of a ms per
    call (benchmarks/RESULTS.md, "API-process CPU per call"). Cycles are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*YOUNG_GC_THRESHOLDS)


async def _start_engine(state: ServerState) -> None:
    try:
        engine = await state.engine_factory()
    except asyncio.CancelledError:
        raise
    except Exception as error:
        reason = error.message if isinstance(error, WrapserveError) else f"{type(error).__name__}: {error}"
        log.error("engine start-up failed: %s", reason.replace(" See root cause above.", ""))
        state.lifecycle.fail(reason)
        return
    state.engine = engine
    try:
        state.lifecycle.warming()
        warm = await state.wrappers.warm_up(engine)
    except WrapserveError as error:
        log.error("grammar warm-up failed: %s", error.message)
        state.lifecycle.fail(f"grammar warm-up failed: {error.message}")
        return
    _freeze_startup_heap()
    state.lifecycle.ready()
    log.info(
        "grammars compiled and warmed for %d wrappers in %.1fs (%d first calls run, %d failed)",
        len(state.registry),
        warm.seconds,
        warm.first_calls,
        warm.failed,
    )
    log.info(
        "engine ready: model %s on %s in %.1fs (max_model_len %d, grammar backend %s)",
        engine.info.model_id,
        engine.info.device,
        engine.info.startup_s,
        engine.info.max_model_len,
        engine.info.structured_output_backend,
    )


def create_app(settings: Settings, manifest: ModelManifest, engine_factory: EngineFactory) -> FastAPI:
    """Build the app. The engine starts in the background so /health can say 503 meanwhile."""
    registry = WrapperRegistry(BUILTINS)
    if settings.wrappers_dir is not None:
        for wrapper in load_directory(settings.wrappers_dir):
            registry.add(wrapper)
    # The composition root: everything the app holds is built here, once, and passed in.
    admission = Admission(settings.limits)

    async def start_guarded_engine() -> Engine:
        # Every route's engine work queues behind one admission bound and is counted.
        return GuardedEngine(await engine_factory(), admission, metrics)

    state = ServerState(
        settings=settings,
        manifest=manifest,
        engine_factory=start_guarded_engine,
        registry=registry,
        grammars=GrammarCompiler(on_compiled=lambda seconds: metrics.grammar_compile.observe(seconds)),
        admission=admission,
    )
    metrics = Metrics(lambda: state)  # reads the state's live gauges when scraped
    jobs = BatchJobs(
        BatchStore(open_database(settings.database, settings.state_db)),
        settings.limits,
        lambda name: name in registry.names(),
        lease_s=settings.batch_lease_s,
    )
    stored_responses = ResponseStore(open_database(settings.database, settings.state_db), settings.limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        starting = asyncio.create_task(_start_engine(state), name="engine-start")
        publishing = (
            asyncio.create_task(metrics.publish_periodically(), name="metrics-publish")
            if metrics.multiprocess
            else None
        )
        jobs.start(app, state.lifecycle)  # resumes unfinished batch jobs once the engine is ready
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals off the main thread
            loop.add_signal_handler(signal.SIGHUP, state.releases.reload)
        try:
            yield
        finally:
            # In-flight HTTP requests have been answered by now (uvicorn drains first).
            state.lifecycle.drain()
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGHUP)
            await jobs.stop()  # before the shadows: a job's last calls may still start one
            await state.shadow.stop()
            state.lifecycle.stop()
            for task in (starting, publishing):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            state.grammars.shutdown()
            if state.engine is not None:
                await state.engine.shutdown()
            stored_responses.close()

    app = FastAPI(
        title="Wrapserve",
        version="0.1.0",
        lifespan=lifespan,
        # No 307 to the slash-less path: its Location would be built from the Host header.
        redirect_slashes=False,
    )
    app.state.wrapserve = state
    app.state.batches = jobs
    app.state.responses = stored_responses
    install_error_handlers(app)
    install_guards(app, state, metrics)  # auth, body bound, disconnects, metrics, request ids
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(wrappers.router)
    app.include_router(schemas.router)
    app.include_router(releases.router)
    app.include_router(chat.router)
    app.include_router(completions.router)
    app.include_router(responses.router)
    app.include_router(files.router)
    app.include_router(batches.router)
    return app
