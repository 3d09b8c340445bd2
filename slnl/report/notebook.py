"""What the notebooks show: one table with its claims and learning curves (``show_table``, the table notebooks), and
everything ``build_report`` wrote (``show_report``, ``report.ipynb``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from IPython.display import Image, Markdown, display

from slnl import experiments as ex
from slnl.report.figures import learning_curves
from slnl.report.markdown import table_markdown
from slnl.report.results import collect
from slnl.report.claims import claims_table
from slnl.report.tables import paper_table, seed_resolution
from slnl.utils import resolve_path


def show_table(table: str | int | ex.Table, results_dir: str | Path = "results", *, dataset: str | None = None,
               scale: str | None = None, figures_dir: str | Path | None = None) -> dict[str, Any]:
    """What a table notebook shows: the table (ours beside the paper's), the claims tested on our seeds, the
    resolution of our seeds, the notes, and the learning curves (saved as
    ``<results_dir>/figures/<table>_curves.png``)."""
    tbl = ex.table(table)
    df = collect(results_dir)
    frame = paper_table(tbl, df, dataset=dataset, scale=scale)
    claims = claims_table(tbl, df, dataset=dataset, scale=scale)
    resolution = seed_resolution(tbl, df, dataset=dataset, scale=scale)
    display(Markdown(table_markdown(frame, claims, resolution)))
    figures_dir = resolve_path(figures_dir) if figures_dir is not None else resolve_path(results_dir) / "figures"
    curves_path = figures_dir / f"{tbl.name}_curves.png"
    fig, curves = learning_curves(tbl, df, dataset=dataset, scale=scale, path=curves_path)
    if fig is not None:
        display(Image(filename=str(curves_path)))
    return {"frame": frame, "claims": claims, "resolution": resolution, "curves": curves,
            "curves_path": curves_path if fig is not None else None}


def show_report(built: dict[str, Any]) -> None:
    """Display what ``build_report`` wrote (tables as markdown, figures as images, and the figures not drawn)."""
    for t in built["tables"].values():
        display(Markdown(t["paths"]["md"].read_text()))
    for key, p in built["figures"].items():
        display(Markdown(f"### {key}\n`{p}`"), Image(filename=str(p)))
    if built["skipped"]:
        display(Markdown("### Figures not drawn\n" + "".join(f"- {k}: {v}\n" for k, v in built["skipped"].items())))
