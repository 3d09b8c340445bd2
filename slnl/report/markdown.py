"""Tables as text: the paper's table and its claims rendered as markdown, and the files one table writes
(``tableN.csv``, ``tableN_claims.csv``, ``tableN.md``)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from slnl import experiments as ex
from slnl.report.results import as_frame
from slnl.report.tables import NO_SUCH_SPLIT, ORDERING_ONLY, claims_table, paper_table, seed_resolution
from slnl.utils import atomic_write_text, resolve_path


def _fmt(x: Any, digits: int = 1, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``paper_table`` as strings, one column per (column, paper/ours/Δ): ``ours`` is ``mean ± std (n)``; Δ is blank
    where the table leaves it blank (another dataset, or no run)."""
    cols = list(dict.fromkeys(frame.columns.get_level_values(0)))
    out = pd.DataFrame(index=frame.index)
    for c in cols:
        out[f"{c} paper"] = [_fmt(v) for v in frame[(c, "paper")]]
        ours = []
        for mean, std, n in zip(frame[(c, "ours")], frame[(c, "std")], frame[(c, "n")]):
            if n == 0:
                ours.append("")
            elif n == 1:
                ours.append(f"{mean:.1f} (1 seed)")
            else:
                ours.append(f"{mean:.1f} ± {std:.1f} ({n} seeds)")
        out[f"{c} ours"] = ours
        out[f"{c} Δ"] = [_fmt(v, sign=True) for v in frame[(c, "diff")]]
    return out


def claims_display(claims: pd.DataFrame) -> pd.DataFrame:
    """``claims_table`` as strings: ours with its interval, seeds as ``n_better+n_worse`` (one number against a
    published constant)."""
    level = claims.attrs.get("level", 0.95)
    tbl = ex.table(claims.attrs["table"]) if "table" in claims.attrs else None
    # A worse side that is not one of the table's runnable rows is a published number (the paper's, or one on the
    # dataset itself: slnl.report.tables.DATASET_PUBLISHED).
    ours_rows = {x for row in tbl.rows if row.runnable for x in (row.slug, row.label)} if tbl is not None else set()
    rows = []
    for r in claims.itertuples(index=False):
        ours = _fmt(r.ours_diff, 2, sign=True)
        if ours and not math.isnan(r.low):
            ours += f" [{r.low:+.2f}, {r.high:+.2f}]"
        published = tbl is not None and r.worse not in ours_rows
        seeds = f"{r.n_better}" if published else f"{r.n_better}+{r.n_worse}"
        # The data-level reason is printed once above the table (delta_note), not on every line.
        note = "" if r.note.startswith(ORDERING_ONLY) else r.note
        rows.append({"better": r.better, "worse": r.worse, "column": r.column, "paper": _fmt(r.paper_diff, 1, True),
                     f"ours [{100 * level:g}% interval]": ours, "resolvable": _fmt(r.resolvable, 2),
                     "seeds": seeds, "verdict": r.verdict, "ours − paper": _fmt(r.delta_vs_paper, 2, True),
                     "note": note})
    return pd.DataFrame(rows)


def claims_summary(claims: Sequence[pd.DataFrame]) -> str:
    """Every claim of several tables (``claims_table`` frames) as one markdown line each: the paper's difference,
    ours with its interval and seeds, and the verdict in bold. Claims on a split the dataset does not define are
    counted in one closing line instead of one line each."""
    lines, untestable = [], {}
    for frame in claims:
        name = f"Table {ex.table(frame.attrs['table']).number}"
        ours_col = f"ours [{100 * frame.attrs.get('level', 0.95):g}% interval]"  # claims_display's column
        for r in claims_display(frame).to_dict("records"):
            if r["verdict"] == NO_SUCH_SPLIT:
                untestable.setdefault(r["note"], []).append(name)
                continue
            lines.append(f"- {name} ({r['column']}): {r['better']} > {r['worse']} — paper {r['paper'] or '—'}; "
                         f"ours {r[ours_col] or '—'} ({r['seeds']} seeds): **{r['verdict'] or 'no comparison'}**"
                         + (f" ({r['note']})" if r["note"] else ""))
    for note, names in untestable.items():
        lines.append(f"- {len(names)} claim(s) of {', '.join(sorted(set(names)))}: **{NO_SUCH_SPLIT}** — {note}")
    return "\n".join(lines) + "\n"


def to_markdown(df: pd.DataFrame, index: bool = True) -> str:
    """A GitHub-flavoured markdown table (pandas' ``to_markdown`` needs ``tabulate``, which is not pinned)."""
    d = df.reset_index() if index else df
    header = [str(c) for c in d.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for row in d.itertuples(index=False):
        cells = [(_fmt(v, 2) if isinstance(v, float) else str(v)).replace("|", "\\|") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_markdown(frame: pd.DataFrame, claims: pd.DataFrame | None = None,
                   resolution: pd.DataFrame | None = None) -> str:
    """The markdown of one table: header (dataset, scale, epochs), warnings, ours beside the paper's, the paper's
    claims tested on our seeds, the resolution of our seeds, and the table's notes."""
    a = frame.attrs
    parts = [f"# {frame.index.name}: {a.get('title', '')}\n",
             f"Dataset: {a.get('dataset') or '(no runs yet)'} · scale: {a.get('scale') or '-'} · epochs: "
             f"{a.get('epochs') or '-'} · accuracies in %, ours = mean ± std over seeds (n).\n"]
    parts += [f"> **{w}**\n" for w in a.get("warnings") or []]
    if a.get("delta_note"):
        parts += [f"> {a['delta_note']}\n"]
    parts += [to_markdown(display_frame(frame))]
    if claims is not None and len(claims):
        level = 100 * claims.attrs.get("level", 0.95)
        parts += ["\n## The paper's claimed improvements, tested on our seeds\n",
                  f"paper: the paper's difference better − worse (points). ours: the difference of our means with its "
                  f"{level:g}% Welch interval over seeds (against a published number: the one-sample t interval). "
                  "resolvable: the interval's half-width — the smallest difference these seeds, with the spread "
                  "they show, resolve. verdict: *holds* (interval above 0), *reversed* (below 0), *not resolved* "
                  "(contains 0, or one seed and so no spread), *no such split* (the dataset does not define that "
                  "split: untestable). ours − paper: only on the paper's dataset.\n",
                  to_markdown(claims_display(claims), index=False)]
    if resolution is not None and len(resolution):
        r = resolution.reset_index()
        parts += ["\n## Resolution of our seeds\n",
                  "pooled_sd: seed-to-seed standard deviation (points) pooled over the rows with ≥ 2 seeds (df "
                  "degrees of freedom); resolvable: the smallest difference a row of `seeds` seeds resolves against "
                  f"`against` ({100 * resolution.attrs.get('level', 0.95):g}% interval half-width, "
                  "t · pooled_sd · √(1/n₁ + 1/n₂)). The paper's claimed margins below it cannot be checked with these "
                  "seeds.\n",
                  to_markdown(r, index=False)]
    notes = a.get("notes") or []
    if notes:
        parts += ["\n## Notes\n", "".join(f"- {n}\n" for n in notes)]
    return "\n".join(parts)


def write_table(table: str | int | ex.Table, results: str | Path | pd.DataFrame = "results", *,
                dataset: str | None = None, scale: str | None = None, out_dir: str | Path | None = None,
                stem: str | None = None, level: float = 0.95) -> dict[str, Any]:
    """Write ``<stem>.csv`` (numbers, flat columns ``<column>_<stat>``), ``<stem>_claims.csv`` and ``<stem>.md``
    (everything, with notes) under ``out_dir`` (default ``<results>/tables``; ``stem`` default: the table's name).

    ``results``: a results directory or a DataFrame from ``collect`` (then ``out_dir`` is required). Returns
    ``{"frame", "claims", "resolution", "paths": {"csv", "claims", "md"}}``."""
    tbl = ex.table(table)
    if out_dir is None:
        if isinstance(results, pd.DataFrame):
            raise ValueError("write_table: out_dir is required when results is a DataFrame")
        out_dir = resolve_path(results) / "tables"
    out_dir = resolve_path(out_dir)
    stem = stem or tbl.name
    df = as_frame(results)
    frame = paper_table(tbl, df, dataset=dataset, scale=scale)
    claims = claims_table(tbl, df, dataset=dataset, scale=scale, level=level)
    resolution = seed_resolution(tbl, df, dataset=dataset, scale=scale, level=level)
    flat = frame.copy()
    flat.columns = [f"{c}_{s}" for c, s in frame.columns]
    paths = {"csv": out_dir / f"{stem}.csv", "claims": out_dir / f"{stem}_claims.csv", "md": out_dir / f"{stem}.md"}
    atomic_write_text(paths["csv"], flat.to_csv())
    atomic_write_text(paths["claims"], claims.to_csv(index=False))
    atomic_write_text(paths["md"], table_markdown(frame, claims, resolution))
    return {"frame": frame, "claims": claims, "resolution": resolution, "paths": paths}
