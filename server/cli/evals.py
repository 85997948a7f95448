"""``wrapserve eval``: golden examples, eval sets, stability runs, and ``eval compare A B``.

Runs talk to a server over HTTP like any client and keep their history in the state
database; ``eval compare`` reads only that history (no server) and writes an HTML report.
``eval compare`` is recognised by its two run references, so a wrapper named ``compare``
(the catalogue has one) is still evaluated by ``wrapserve eval compare``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from server.cli.common import fail, settings_from
from server.cli.wrappers import ApiKey, Url, error_line, server_url
from wrappers.base import Wrapper
from wrappers.catalogue import BUILTINS
from wrappers.client import WrapserveClient
from wrappers.errors import WrapserveError
from wrappers.evals.compare import compare_runs, headline, resolve_run
from wrappers.evals.dataset import Dataset, declared_datasets, golden_dataset, load_dataset
from wrappers.evals.report import write_report
from wrappers.evals.run import EvalReport, print_reports, run_dataset, run_evals
from wrappers.evals.stability import run_stability
from wrappers.evals.store import EvalStore
from wrappers.registry import WrapperRegistry, load_directory

__all__ = ["run_eval"]


def _local_class(name: str, version: str, wrappers_dir: Path | None) -> type[Wrapper] | None:
    """The installed class of a served wrapper@version (for the eval sets it declares)."""
    registry = WrapperRegistry(BUILTINS)
    for wrapper in load_directory(wrappers_dir) if wrappers_dir else []:
        registry.add(wrapper)
    matching = (
        [wrapper for wrapper in registry.versions(name) if wrapper.version == version]
        if name in registry.names()
        else []
    )
    return matching[0] if matching else None


def _datasets(
    described: dict[str, object],
    files: list[Path],
    eval_sets: bool,
    wrappers_dir: Path | None,
    evals_dir: Path | None,
) -> list[Dataset]:
    paths = list(files)
    if eval_sets:
        wrapper = _local_class(str(described["name"]), str(described["version"]), wrappers_dir)
        declared = declared_datasets(wrapper, evals_dir) if wrapper else []
        if not declared:
            fail(
                f"{described['name']}@{described['version']} declares no eval sets here; pass --dataset FILE"
            )
        paths += declared
    return [load_dataset(path) for path in paths]


def _print_figures(reports: list[EvalReport], console: Console) -> None:
    for report in reports:
        run = report.run
        if run.kind == "golden":
            continue
        figures = ", ".join(f"{key} {value:.3f}" for key, value in headline(run).items() if value is not None)
        console.print(f"{run.ref} on {run.dataset} ({run.kind}, run #{run.id}): {figures}", highlight=False)
        if run.calibration:
            calibration = run.calibration
            console.print(
                f"  calibration: temperature {calibration['temperature']}, expected calibration error on the"
                f" held-out half {calibration['ece_raw']:.3f} raw, {calibration['ece_calibrated']:.3f} calibrated"
                f" ({calibration['held_out_cases']} cases)",
                highlight=False,
            )


def _compare(store: EvalStore, first: str, second: str, out: Path | None, console: Console) -> None:
    a = resolve_run(store, first)
    b = resolve_run(store, second, like=a)
    if not first.removeprefix("#").isdigit():
        a = resolve_run(store, first, like=b)  # both by name: each on the other's dataset where one exists
    comparison = compare_runs(a, b, store)
    left, right = headline(a), headline(b)
    table = Table("figure", f"A: #{a.id} {a.ref} on {a.model}", f"B: #{b.id} {b.ref} on {b.model}", "B - A")
    for key in dict.fromkeys([*left, *right]):
        one, two = left.get(key), right.get(key)
        table.add_row(
            key,
            "-" if one is None else f"{one:.3f}",
            "-" if two is None else f"{two:.3f}",
            "-" if one is None or two is None else f"{two - one:+.3f}",
        )
    console.print(table)
    if not comparison.same_cases:
        console.print("[yellow]the runs are not on the same dataset: shared cases only[/]")
    console.print(
        f"{comparison.shared} shared cases: {comparison.count('regressed')} regressed,"
        f" {comparison.count('fixed')} fixed, {comparison.count('changed')} answered differently",
        highlight=False,
    )
    for item in comparison.changes:
        if item.change != "changed":
            console.print(
                f"{item.change} case {item.after.index}: {item.after.input}", highlight=False, markup=False
            )
    path = write_report(comparison, out or Path(f"eval-compare-{a.id}-{b.id}.html"))
    console.print(f"report: {path}", highlight=False)


def run_eval(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="A wrapper (name or name@version; all of them if omitted), or `compare A B` with two "
            "run ids (12) or wrapper@version (its latest run).",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        list[Path] | None, typer.Option("--dataset", "-d", help="A JSONL eval set to run (repeatable).")
    ] = None,
    eval_sets: Annotated[
        bool, typer.Option("--eval-sets", help="Run the eval sets the wrapper declares.")
    ] = False,
    stability: Annotated[
        bool, typer.Option("--stability", help="Also answer each case under small input changes.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the stability perturbations.")] = 0,
    url: Url = None,
    api_key: ApiKey = None,
    home: Annotated[
        Path | None, typer.Option(help="Where the results database lives (WRAPSERVE_HOME).")
    ] = None,
    wrappers_dir: Annotated[
        Path | None, typer.Option(help="Folder of your own wrapper modules (WRAPSERVE_WRAPPERS_DIR).")
    ] = None,
    evals_dir: Annotated[
        Path | None,
        typer.Option(help="Extra eval sets, as EVALS_DIR/NAME/*.jsonl.", envvar="WRAPSERVE_EVALS_DIR"),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Where `eval compare` writes its HTML report.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every failed case.")] = False,
) -> None:
    """Evaluate wrappers on the served model: golden examples, eval sets (--dataset, --eval-sets),
    stability (--stability); `eval compare A B` puts two stored runs side by side."""
    settings = settings_from(home=home, wrappers_dir=wrappers_dir)
    store = EvalStore(settings.state_db)
    console = Console()
    names = names or []
    try:
        if len(names) == 3 and names[0] == "compare":
            _compare(store, names[1], names[2], out, console)
            return
        if len(names) > 1:
            fail("give one wrapper (name or name@version), or `compare A B`", code=2)
        name = names[0] if names else None
        if (dataset or eval_sets or stability) and not name:
            fail("--dataset, --eval-sets and --stability need a wrapper name", code=2)
        with WrapserveClient(server_url(url), api_key=api_key) as client:
            if not name or not (dataset or eval_sets or stability):
                reports = run_evals(client, store, name)
            else:
                base, _, pinned = name.partition("@")
                described = client.wrapper(base, pinned or None)
                model = client.model()
                sets = _datasets(described, dataset or [], eval_sets, settings.wrappers_dir, evals_dir)
                if not sets:  # --stability alone: on the golden examples
                    sets = [golden_dataset(described["examples"])] if described["examples"] else []
                    if not sets:
                        fail(f"{base} has no golden examples; pass --dataset FILE", code=2)
                if stability:
                    reports = [
                        run_stability(client, store, described, one, model=model, seed=seed) for one in sets
                    ]
                else:
                    reports = [run_dataset(client, store, described, one, model=model) for one in sets]
    except WrapserveError as error:
        fail(error_line(error))
    print_reports(reports, console, verbose=verbose)
    _print_figures(reports, console)
    console.print(f"results: {store.path}", highlight=False)
