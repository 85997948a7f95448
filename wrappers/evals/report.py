"""The HTML report of ``wrapserve eval compare``: one self-contained file, plots embedded as PNG.

matplotlib draws off-screen (the Agg backend); every value from a run (inputs, outputs,
names) is HTML-escaped, since eval sets and outputs are arbitrary text.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from wrappers.evals.compare import Comparison, describe, headline

__all__ = ["write_report"]

MAX_CHANGED_ROWS = 200
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.regressed { color: #b00020; } .fixed { color: #1b7f3a; } .changed { color: #555; }
code { white-space: pre-wrap; word-break: break-word; font-size: .85rem; }
img { max-width: 100%; }
"""


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _format(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _plots(comparison: Comparison) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = comparison.a, comparison.b
    names = (f"#{a.id} {a.ref} on {a.model}", f"#{b.id} {b.ref} on {b.model}")
    images: list[str] = []
    first, second = headline(a), headline(b)
    shares = [key for key in first if key in second and key != "MAE" and not key.startswith("ECE")]
    shares = [key for key in shares if first[key] is not None and second[key] is not None]
    if shares:
        figure, axis = plt.subplots(figsize=(8, 0.45 * len(shares) + 1.2))
        rows = range(len(shares))
        axis.barh([r + 0.2 for r in rows], [first[k] or 0 for k in shares], height=0.4, label=names[0])
        axis.barh([r - 0.2 for r in rows], [second[k] or 0 for k in shares], height=0.4, label=names[1])
        axis.set(
            yticks=list(rows), yticklabels=shares, xlim=(0, 1), title="headline figures (higher is better)"
        )
        axis.invert_yaxis()
        axis.legend(loc="lower right", fontsize="small")
        images.append(_png(figure))
        plt.close(figure)
    matrices = [run.metrics.get("confusion") for run in (a, b)]
    if all(matrices):
        figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        for axis, name, matrix in zip(axes, names, matrices, strict=True):
            assert matrix is not None
            labels = list(matrix)
            columns = sorted({column for row in matrix.values() for column in row})
            grid = [[matrix[row].get(column, 0) for column in columns] for row in labels]
            axis.imshow(grid, cmap="Blues")
            axis.set(xticks=range(len(columns)), yticks=range(len(labels)), title=name)
            axis.set_xticklabels(columns, rotation=45, ha="right", fontsize="small")
            axis.set_yticklabels(labels, fontsize="small")
            axis.set(xlabel="answered", ylabel="expected")
            for y, row in enumerate(grid):
                for x, count in enumerate(row):
                    axis.text(x, y, str(count), ha="center", va="center", fontsize="small")
        figure.suptitle("confusion matrices")
        images.append(_png(figure))
        plt.close(figure)
    calibrated = [run for run in (a, b) if run.calibration]
    if calibrated:
        figure, axis = plt.subplots(figsize=(5.5, 5))
        axis.plot([0, 1], [0, 1], color="#999", linestyle="--", label="perfectly calibrated")
        for run in calibrated:
            assert run.calibration is not None
            for key, style in (("reliability_raw", "o-"), ("reliability_calibrated", "s--")):
                bins = run.calibration.get(key) or []
                axis.plot(
                    [b["confidence"] for b in bins],
                    [b["accuracy"] for b in bins],
                    style,
                    label=f"#{run.id} {key.removeprefix('reliability_')}",
                )
        axis.set(
            xlabel="confidence",
            ylabel="accuracy",
            xlim=(0, 1),
            ylim=(0, 1),
            title="reliability (held-out half)",
        )
        axis.legend(fontsize="small")
        images.append(_png(figure))
        plt.close(figure)
    return images


def _cell(case_output: Any, error: str | None) -> str:
    text = error if error else json.dumps(case_output, ensure_ascii=False)
    return f"<code>{html.escape(text)}</code>"


def write_report(comparison: Comparison, path: Path) -> Path:
    a, b = comparison.a, comparison.b
    first, second = headline(a), headline(b)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(f'{a.ref} vs {b.ref}')}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(f'eval #{a.id} vs #{b.id}')}</h1>",
        "<table><tr><th></th><th>A</th><th>B</th></tr>",
    ]
    for key, value in describe(a).items():
        other = describe(b)[key]
        parts.append(
            f"<tr><th>{html.escape(key)}</th><td>{html.escape(str(value))}</td><td>{html.escape(str(other))}</td></tr>"
        )
    parts.append("</table>")
    if not comparison.same_cases:
        parts.append("<p><strong>The two runs are not on the same dataset:</strong> shared cases only.</p>")
    parts.append("<h2>Figures</h2><table><tr><th>figure</th><th>A</th><th>B</th><th>B - A</th></tr>")
    for key in dict.fromkeys([*first, *second]):
        one, two = first.get(key), second.get(key)
        delta = "-" if one is None or two is None else f"{two - one:+.3f}"
        parts.append(
            f"<tr><td>{html.escape(key)}</td><td class='num'>{_format(one)}</td>"
            f"<td class='num'>{_format(two)}</td><td class='num'>{delta}</td></tr>"
        )
    parts.append("</table>")
    parts += _plots(comparison)
    parts.append(
        f"<h2>Cases that changed</h2><p>{comparison.shared} shared cases: "
        f"{comparison.count('regressed')} regressed, {comparison.count('fixed')} fixed, "
        f"{comparison.count('changed')} answered differently with the same verdict.</p>"
    )
    if comparison.changes:
        parts.append("<table><tr><th>change</th><th>input</th><th>A</th><th>B</th></tr>")
        for item in comparison.changes[:MAX_CHANGED_ROWS]:
            parts.append(
                f"<tr><td class='{item.change}'>{item.change}</td>"
                f"<td>{_cell(item.after.input, None)}</td>"
                f"<td>{_cell(item.before.output, item.before.error)}</td>"
                f"<td>{_cell(item.after.output, item.after.error)}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
