"""Tables as text: the paper's table and its claims rendered as markdown, and the files one table writes
(``tableN.csv``, ``tableN_claims.csv``, ``tableN.md``)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from slnl import experiments as ex
from slnl.report.claims import EQUIVALENCE, EQUIVALENCE_MARGIN, NO_SUCH_SPLIT, claims_table
from slnl.report.results import as_frame
from slnl.report.tables import ORDERING_ONLY, paper_table, seed_resolution
from slnl.utils import atomic_write_text, resolve_path


def _fmt(x: Any, digits: int = 1, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _p(x: Any) -> str:
    """A p-value to three decimals, ``<0.001`` below that, blank when NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``paper_table`` as strings, one column per (column, paper/ours/Δ): ``ours`` is ``mean ± std (n)``; Δ is blank
    where the table leaves it blank (another dataset, or no run). A k-fold column adds ``<column> per fold``: each
    fold's mean over the seeds."""
    cols = list(dict.fromkeys(frame.columns.get_level_values(0)))
    folds = frame.attrs.get("folds") or {}
    runs = set(frame.attrs.get("replicated_by_runs") or ())  # columns whose replicates are folds or splits × seeds
    out = pd.DataFrame(index=frame.index)
    for c in cols:
        out[f"{c} paper"] = [_fmt(v) for v in frame[(c, "paper")]]
        unit = "run" if c in runs else "seed"
        ours = []
        for mean, std, n in zip(frame[(c, "ours")], frame[(c, "std")], frame[(c, "n")]):
            if n == 0:
                ours.append("")
            elif n == 1:
                ours.append(f"{mean:.1f} (1 {unit})")
            else:
                ours.append(f"{mean:.1f} ± {std:.1f} ({n} {unit}s)")
        out[f"{c} ours"] = ours
        out[f"{c} Δ"] = [_fmt(v, sign=True) for v in frame[(c, "diff")]]
        if folds.get(c):
            out[f"{c} per fold"] = [" · ".join(f"{f} {frame.loc[i, (c, f)]:.1f}" for f in folds[c])
                                    if frame.loc[i, (c, "n")] else "" for i in frame.index]
    return out


def _claim_strings(r: Any, published: bool, level: float) -> dict[str, str]:
    """One claim (a ``claims_table`` row) as the strings the markdown shows."""
    ours = _fmt(r.ours_diff, 2, sign=True)
    if ours and not math.isnan(r.low):
        ours += f" [{r.low:+.2f}, {r.high:+.2f}]"
    equivalence = r.kind == EQUIVALENCE
    holm = _p(r.p_holm) + (f" (m={int(r.family)})" if not math.isnan(r.family) else "")
    # The data-level reason is printed once above the table (delta_note), not on every line.
    test = f"TOST ±{EQUIVALENCE_MARGIN:g} pp" if equivalence else "one-sample t" if published else "Welch"
    return {"relation": "≈" if equivalence else ">", "test": test, "paper": _fmt(r.paper_diff, 1, True), "ours": ours,
            "p": _p(r.p_tost if equivalence else r.p_welch), "holm": holm,
            "seeds": f"{r.n_better}" if published else f"{r.n_better}+{r.n_worse}",
            "note": "" if r.note.startswith(ORDERING_ONLY) else r.note, "level": f"{100 * level:g}%"}


def claims_display(claims: pd.DataFrame) -> pd.DataFrame:
    """``claims_table`` as strings: ours with its interval, the test and its p, the uncorrected verdict, Holm's
    adjusted p with the family's size and the verdict after it, the power columns, seeds as ``n_better+n_worse``
    (one number against a published constant); the verdict from the other BN evaluation where it was recorded."""
    level = claims.attrs.get("level", 0.95)
    tbl = ex.table(claims.attrs["table"]) if "table" in claims.attrs else None
    # A worse side that is not one of the table's runnable rows is a published number (the paper's, or one on the
    # dataset itself: slnl.report.tables.DATASET_PUBLISHED).
    ours_rows = {x for row in tbl.rows if row.runnable for x in (row.slug, row.label)} if tbl is not None else set()
    other_bn = bool(claims["verdict_other_bn"].astype(str).str.len().gt(0).any()) if len(claims) else False
    rows = []
    for r in claims.itertuples(index=False):
        s = _claim_strings(r, tbl is not None and r.worse not in ours_rows, level)
        row = {"better": r.better, "": s["relation"], "worse": r.worse, "column": r.column, "test": s["test"],
               "paper": s["paper"], f"ours [{s['level']} interval]": s["ours"], "p": s["p"],
               "uncorrected": r.verdict_uncorrected, "Holm p (m)": s["holm"], "verdict (Holm)": r.verdict,
               "detectable (80% power)": _fmt(r.detectable_80, 2), "seeds for 1 pp": _fmt(r.seeds_for_1pp, 0),
               "seeds": s["seeds"], "ours − paper": _fmt(r.delta_vs_paper, 2, True), "note": s["note"]}
        if other_bn:
            row["verdict (other BN)"] = r.verdict_other_bn
        rows.append(row)
    return pd.DataFrame(rows)


def claims_summary(claims: Sequence[pd.DataFrame]) -> str:
    """Every claim of several tables (``claims_table`` frames) as one markdown line each: the paper's difference,
    ours with its interval and seeds, the test's p and Holm's, and the verdict after Holm in bold (the uncorrected
    one beside it). Claims on a split the dataset does not define are counted in one closing line instead of one
    line each; then the sensitivity of the verdicts to the BN evaluation, one line."""
    lines, untestable, bn = [], {}, {}
    for frame in claims:
        name = f"Table {ex.table(frame.attrs['table']).number}"
        tbl = ex.table(frame.attrs["table"])
        ours_rows = {x for row in tbl.rows if row.runnable for x in (row.slug, row.label)}
        runs = set(frame.attrs.get("replicated_by_runs") or ())

        def unit(column: str) -> str:  # folds or splits × seeds are runs
            return "runs" if column in runs else "seeds"

        if frame.attrs.get("bn_sensitivity"):
            bn.setdefault(frame.attrs["bn_sensitivity"], []).append(name)
        for r in frame.itertuples(index=False):
            if r.verdict == NO_SUCH_SPLIT:
                untestable.setdefault(r.note, []).append(name)
                continue
            s = _claim_strings(r, r.worse not in ours_rows, frame.attrs.get("level", 0.95))
            tested = f", p {s['p']} ({s['test']}), Holm p {s['holm']}" if s["holm"] else ""
            raw = f" (uncorrected: {r.verdict_uncorrected})" if s["holm"] else ""
            lines.append(f"- {name} ({r.column}): {r.better} {s['relation']} {r.worse} — paper {s['paper'] or '—'}; "
                         f"ours {s['ours'] or '—'} ({s['seeds']} {unit(r.column)}){tested}: "
                         f"**{r.verdict or 'no comparison'}**"
                         + raw + (f" ({s['note']})" if s["note"] else ""))
    for note, names in untestable.items():
        lines.append(f"- {len(names)} claim(s) of {', '.join(sorted(set(names)))}: **{NO_SUCH_SPLIT}** — {note}")
    for line, names in bn.items():
        where = "" if len(bn) == 1 else f" ({', '.join(names)})"
        lines.append(f"\nSensitivity to the BN evaluation{where}: {line}")
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


def claims_legend(claims: pd.DataFrame) -> str:
    """What the columns of ``claims_display`` mean, and the rule of the family Holm's correction runs over."""
    level = claims.attrs.get("level", 0.95)
    return (f"paper: the paper's difference better − worse (points). ours: the difference of our means with its "
            f"{100 * level:g}% Welch interval over seeds (against a published number: the one-sample t interval). "
            "test and p: Welch's two-sided t test of the ordering (>; against a published number the one-sample t "
            f"test), or for rows the paper says are level (≈) TOST equivalence within ±{EQUIVALENCE_MARGIN:g} point. "
            "uncorrected: that test's verdict alone, before "
            "any correction (*interval above 0*, *interval below 0*, *not resolved at n seeds*; TOST: *equivalent "
            "within ±1 pp*, *not shown equivalent*). Holm p (m): the p-value after Holm's correction within its "
            "family — one table's claims on one column (split) of this study, m of them with a p-value (claims not "
            f"run, without spread or without a comparison are not in it); the family-wise error is at most "
            f"{100 * (1 - level):g}%. verdict (Holm): *holds* (the claimed ordering or equivalence survives Holm), "
            "*reversed* (the other ordering survives Holm), *not resolved* (it does not), *no such split* (the "
            "dataset does not define that split: untestable). detectable (80% power): the true difference a "
            f"two-sided t test at {100 * (1 - level):g}% detects with 80% power at these seeds, with the SD of the "
            "two rows' seeds (pooled); seeds for 1 pp: the seeds per row that a true difference of one point needs "
            "for that power. ours − paper: only on the paper's dataset.\n")


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
        parts += ["\n## The paper's claimed improvements, tested on our seeds\n", claims_legend(claims),
                  to_markdown(claims_display(claims), index=False)]
        if claims.attrs.get("bn_sensitivity"):
            parts += [f"\nSensitivity to the BN evaluation: {claims.attrs['bn_sensitivity']}\n"]
    if resolution is not None and len(resolution):
        r = resolution.reset_index()
        if "seeds_for_1pp" in r:
            r["seeds_for_1pp"] = [_fmt(v, 0) for v in r["seeds_for_1pp"]]
        parts += ["\n## Resolution of our seeds\n",
                  "pooled_sd: seed-to-seed standard deviation (points) pooled over the rows with ≥ 2 seeds (df "
                  "degrees of freedom); resolvable: the smallest difference a row of `seeds` seeds resolves against "
                  f"`against` ({100 * resolution.attrs.get('level', 0.95):g}% interval half-width, "
                  "t · pooled_sd · √(1/n₁ + 1/n₂)); detectable_80: the true difference a two-sided t test at "
                  f"{100 * (1 - resolution.attrs.get('level', 0.95)):g}% detects with 80% power at these seeds and "
                  "this SD; seeds_for_1pp: the seeds per row a true difference of one point needs for that power. "
                  "The paper's claimed margins below them cannot be checked with these seeds.\n",
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
