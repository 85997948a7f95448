"""The ``wrapserve`` command line (typer). Errors end as one line, never a traceback."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from models.manifest import ModelRegistry
from models.resolve import is_present, model_location, resolve_weights
from server.cli.batch import register as register_batch_commands
from server.cli.common import fail, settings_from
from server.cli.evals import run_eval
from server.cli.releases import release_app
from server.cli.wrappers import register as register_wrapper_commands
from server.settings import Settings
from wrappers.errors import ConfigurationError, WrapserveError

__all__ = ["app"]

app = typer.Typer(help="Wrapserve: typed, versioned AI task functions on local models.", no_args_is_help=True)
models_app = typer.Typer(help="Model manifests and local weights.", no_args_is_help=True)
app.add_typer(models_app, name="models")
register_wrapper_commands(app)  # wrappers list, call
app.command("eval")(run_eval)
app.add_typer(release_app, name="release")
register_batch_commands(app)  # batch run


def _fail(message: str, code: int = 2) -> NoReturn:
    fail(message, code)


def _registry(settings: Settings) -> ModelRegistry:
    return ModelRegistry.load(*([settings.models_dir] if settings.models_dir else []))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (WRAPSERVE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (WRAPSERVE_PORT).")] = None,
    model: Annotated[str | None, typer.Option(help="Model manifest id (WRAPSERVE_MODEL).")] = None,
    home: Annotated[Path | None, typer.Option(help="State and cache folder (WRAPSERVE_HOME).")] = None,
    max_model_len: Annotated[int | None, typer.Option(help="Context length override.")] = None,
    api_workers: Annotated[
        int | None, typer.Option(help="HTTP processes feeding one engine (WRAPSERVE_API_WORKERS).")
    ] = None,
    tensor_parallel_size: Annotated[int | None, typer.Option(help="vLLM tensor parallel size.")] = None,
    pipeline_parallel_size: Annotated[int | None, typer.Option(help="vLLM pipeline parallel size.")] = None,
    data_parallel_size: Annotated[int | None, typer.Option(help="vLLM data parallel size.")] = None,
    distributed_executor_backend: Annotated[str | None, typer.Option(help="mp, ray or uni.")] = None,
) -> None:
    """Start the HTTP server on the configured model."""
    from server.cli.serving import bind, run_http, run_workers
    from server.http.logs import configure_logging
    from server.vllm.engine_log import divert_engine_output

    settings = settings_from(
        host=host,
        port=port,
        model=model,
        home=home,
        max_model_len=max_model_len,
        api_workers=api_workers,
        tensor_parallel_size=tensor_parallel_size,
        pipeline_parallel_size=pipeline_parallel_size,
        data_parallel_size=data_parallel_size,
        distributed_executor_backend=distributed_executor_backend,
    )
    engine_log = settings.engine_log_path
    # With several workers every process writes to the console: a worker spawned by vLLM
    # inherits only the standard streams, so diverting them would hide its logs.
    diverted = engine_log is not None and settings.api_workers == 1
    engine_log_offset = divert_engine_output(engine_log) if diverted and engine_log else 0
    configure_logging(settings)
    try:
        manifest = _registry(settings).get(settings.model)
        weights = resolve_weights(manifest, settings.weights_path)
    except WrapserveError as error:
        _fail(error.message)
    sock = bind(settings.host, settings.port)
    if settings.api_workers > 1:
        run_workers(settings, manifest, weights, sock)
    else:
        run_http(settings, manifest, weights, sock, engine_log_offset=engine_log_offset)


def _folder_size(folder: Path) -> str:
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    return f"{size / 1e9:.2f} GB" if size >= 1e8 else f"{size / 1e6:.0f} MB"


@models_app.command("list")
def models_list(home: Annotated[Path | None, typer.Option(help="WRAPSERVE_HOME")] = None) -> None:
    """Every known model: size, where its weights are, whether they are present."""
    settings = settings_from(home=home)
    table = Table("model", "parameters", "context", "size on disk", "present", "where")
    for manifest in _registry(settings):
        location = model_location(manifest, settings.weights_path)
        present = is_present(manifest, settings.weights_path)
        table.add_row(
            manifest.id + (" (default)" if manifest.id == settings.model else ""),
            manifest.parameters,
            str(manifest.max_model_len),
            _folder_size(location) if present and location else "-",
            "[green]yes" if present else "[red]no",
            str(location) if location else f"not found (hf: {manifest.source.hf_repo})",
        )
    Console().print(table)


@models_app.command("prepare")
def models_prepare(
    name: Annotated[str, typer.Argument(help="Model id")],
    home: Annotated[Path | None, typer.Option(help="WRAPSERVE_HOME")] = None,
) -> None:
    """Make a model's weights ready on local disk (converts the embedded model once)."""
    settings = settings_from(home=home)
    try:
        path = resolve_weights(_registry(settings).get(name), settings.weights_path)
    except ConfigurationError as error:
        _fail(error.message)
    Console().print(f"{name}: ready at {path}")


def main() -> None:  # pragma: no cover - console entry for `python -m server.cli`
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
