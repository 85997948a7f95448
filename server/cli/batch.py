"""CLI: ``wrapserve batch run IN.jsonl OUT.jsonl``, a batch file offline with a progress bar.

Registered on the main typer app by ``server/cli/main.py``. Like vLLM's ``run-batch``: the
engine starts in this process, every line goes to it at once (it batches them), and
OUT.jsonl gets one OpenAI-format result line per custom_id.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from server.cli.common import err, fail, settings_from
from wrappers.errors import WrapserveError

__all__ = ["batch_app", "register"]

batch_app = typer.Typer(help="Batch files (OpenAI batch JSONL) offline.", no_args_is_help=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    fail(message, code)


@batch_app.command("run")
def batch_run(
    input_path: Annotated[Path, typer.Argument(metavar="IN.jsonl", help="OpenAI batch input lines.")],
    output_path: Annotated[Path, typer.Argument(metavar="OUT.jsonl", help="Where the result lines go.")],
    model: Annotated[str | None, typer.Option(help="Model manifest id (WRAPSERVE_MODEL).")] = None,
    home: Annotated[Path | None, typer.Option(help="State and cache folder (WRAPSERVE_HOME).")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests handed to the engine at once.")] = 512,
    overwrite: Annotated[bool, typer.Option(help="Start OUT.jsonl afresh instead of resuming it.")] = False,
) -> None:
    """Run a batch file through an in-process engine; re-run to resume after an interruption."""
    from models.manifest import ModelRegistry
    from models.resolve import resolve_weights
    from server.app import create_app
    from server.batches.offline import read_batch_file, run_offline
    from server.http.logs import configure_logging
    from server.vllm.engine import VllmEngine
    from server.vllm.engine_log import divert_engine_output

    settings = settings_from(model=model, home=home, log_level="warning")
    try:
        manifests = ModelRegistry.load(*([settings.models_dir] if settings.models_dir else []))
        manifest = manifests.get(settings.model)
        weights = resolve_weights(manifest, settings.weights_path)
    except WrapserveError as error:
        _fail(error.message, code=2)

    async def start_engine() -> VllmEngine:
        return await VllmEngine.start(settings, manifest, weights)

    try:
        application = create_app(settings, manifest, start_engine)
        application.state.batches.run_jobs = False  # this process runs only IN.jsonl
        registry = application.state.wrapserve.registry
        lines = read_batch_file(input_path, lambda name: name in registry.names())
    except WrapserveError as error:
        _fail(f"{input_path}: {error.message}", code=2)
    if overwrite:
        output_path.unlink(missing_ok=True)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    engine_log = settings.engine_log_path
    if engine_log:
        divert_engine_output(engine_log)
        err.print(f"engine (vLLM) output goes to {engine_log}", highlight=False)
    configure_logging(settings)

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=err,
    )
    with progress:
        task = progress.add_task(f"starting {manifest.id}", total=None, failed=0)

        def on_ready(todo: int) -> None:
            progress.update(task, description=f"{input_path.name}", total=todo)

        def on_result(ok: bool) -> None:
            failed = progress.tasks[task].fields["failed"] + (0 if ok else 1)
            progress.update(task, advance=1, failed=failed)

        try:
            summary = asyncio.run(
                run_offline(
                    application,
                    lines,
                    output_path,
                    concurrency=concurrency,
                    on_ready=on_ready,
                    on_result=on_result,
                )
            )
        except WrapserveError as error:
            _fail(error.message)
    err.print(
        f"{summary.succeeded} succeeded, {summary.failed} failed"
        + (f", {summary.skipped} already done" if summary.skipped else "")
        + (f", {summary.unanswered} not run (run the command again)" if summary.unanswered else "")
        + f"; {summary.total} lines in {output_path}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(batch_app, name="batch")
