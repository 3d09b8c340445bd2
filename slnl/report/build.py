"""The whole report (``report.ipynb``): every table's files and every figure, written under
``<results_dir>/tables`` and ``<results_dir>/figures``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from slnl import experiments as ex
from slnl.report.figures import accuracy_figure, claims_figure, fig4, learning_curves
from slnl.report.markdown import claims_summary, write_table
from slnl.report.model_figures import confusion_figure, frequency_figure, skeleton_figure
from slnl.report.results import FINAL_CHECKPOINT, collect, fold_number
from slnl.utils import atomic_write_text, resolve_path

# Which row the analysis figures use: Table 1's model first (the paper's full model), then Tables 6 … 2; within a
# table the paper's row order, then the splits in the table's order. Never by accuracy.
ANALYSIS_PREFERENCE = ("table1", "table6", "table5", "table4", "table3", "table2")
NO_RUN_FOLDERS = "run folders are not in the repository"  # why a committed study's figures of models are skipped


def pick_runs(df: pd.DataFrame, attention: bool = False, spatial_nonlocal: bool = False,
              needs: Sequence[str] = (FINAL_CHECKPOINT, "config.yaml")) -> pd.DataFrame:
    """Every seed of one (table, row, column) whose run folder holds ``needs``, for the figures of trained models:
    the first such group in the order of ``ANALYSIS_PREFERENCE``, then the table's rows, then its splits (the folds
    of a k-fold dataset are one column: all their runs). ``attention``: the row must have frequency attention;
    ``spatial_nonlocal``: a spatial non-local block (SLnL or sSLnL with M1 ≥ 1). Test accuracy plays no part.
    Returns those result records (empty when none qualifies)."""
    order = {t: i for i, t in enumerate(ANALYSIS_PREFERENCE)}
    keep = []
    for i, rec in df.iterrows():
        if not rec.get("run_path") or not all((Path(rec["run_path"]) / n).is_file() for n in needs):
            continue
        tbl = ex.table(rec["table"])
        row = tbl.row(rec["row"])
        s = row.settings_for(rec["split"])
        if attention and s.get("attention", "none") == "none":
            continue
        if spatial_nonlocal and (s.get("affinity") not in ("SLnL", "sSLnL") or int(s.get("m1", 0)) < 1):
            continue
        column = "folds" if fold_number(rec["split"]) is not None else rec["split"]
        split_rank = tbl.columns.index(rec["split"]) if rec["split"] in tbl.columns else len(tbl.columns)
        keep.append((order.get(rec["table"], len(order)), tbl.rows.index(row), split_rank, column, i))
    if not keep:
        return df.iloc[0:0]
    first = min(keep)[:4]
    return df.loc[[k[4] for k in keep if k[:4] == first]].sort_values("seed")


def _absent(runs: pd.DataFrame) -> str:
    """`` (run folders are not in the repository)`` when none of ``runs``' run folders is on this machine."""
    there = [p for p in runs["run_path"] if isinstance(p, str) and Path(p).is_dir()] if len(runs) else []
    return f" ({NO_RUN_FOLDERS})" if len(runs) and not there else ""


def _write_index(fdir: Path, built: dict[str, Any]) -> None:
    """``figures/index.md``: each figure the report wrote, and each it could not draw with the reason."""
    lines = ["# Figures\n", "Written by `slnl.report.build_report` from this folder's result files.\n"]
    lines += [f"- `{Path(p).name}`" for p in sorted(built["figures"].values(), key=lambda p: Path(p).name)]
    if built["skipped"]:
        lines += ["\n## Not drawn\n"] + [f"- {k}: {v}" for k, v in sorted(built["skipped"].items())]
    atomic_write_text(fdir / "index.md", "\n".join(lines) + "\n")


def build_report(results_dir: str | Path = "results", tables: str | Sequence[str] = "all",
                 fig4_pairs: str = "2,0.4;2,0.6;0,0.4", max_samples: int = 512) -> dict[str, Any]:
    """Everything ``report.ipynb`` shows, written under ``<results_dir>/tables`` and ``<results_dir>/figures``.

    Tables (``write_table``: csv, claims csv, md) for each requested table — with the paper's numbers even before any
    run —; every claim of those tables, one line each, in ``claims.md``; the claims figure (``claims.png``); for each
    table with runs, its accuracy per row (every seed, mean and interval) and its learning curves; Fig. 4; and for
    every seed of the row ``pick_runs`` names: the confusion matrix summed over the seeds, the frequency gates per
    class and the non-local affinities averaged over them. A figure that cannot be drawn (no run folder — a
    committed study keeps its result files only —, or a run's file is unreadable) is listed under ``skipped`` with
    the reason, and in ``figures/index.md``. Results of several (dataset, scale) combinations get one set of tables
    and figures each, suffixed ``__<dataset>-<scale>``. ``max_samples``: test samples the checkpoint analyses look
    at, per seed.
    """
    results_dir = resolve_path(results_dir)
    names = [t.name for t in ex.TABLES.values()] if tables in (None, "all") else [
        ex.table(t).name for t in ex.parse_list(tables)]
    df = collect(results_dir)
    combos = [tuple(c) for c in df[["dataset", "scale"]].drop_duplicates().itertuples(index=False)] if len(df) else []
    tdir, fdir = results_dir / "tables", results_dir / "figures"
    built: dict[str, Any] = {"results_dir": str(results_dir), "tables": {}, "claims": {}, "figures": {},
                             "skipped": {}}
    for combo in (combos or [(None, None)]):
        suffix = f"__{combo[0]}-{combo[1]}" if len(combos) > 1 else ""
        sub = df if combo == (None, None) else df[(df["dataset"] == combo[0]) & (df["scale"] == combo[1])]
        for name in names:
            stem = f"{name}{suffix}"
            built["tables"][stem] = write_table(name, sub, out_dir=tdir, stem=stem, dataset=combo[0], scale=combo[1])
            if len(sub[sub["table"] == name]):
                p = fdir / f"{stem}_accuracy.png"
                if accuracy_figure(name, sub, path=p)[0] is not None:
                    built["figures"][f"{stem}_accuracy"] = p
                p = fdir / f"{stem}_curves.png"
                try:
                    fig, _ = learning_curves(name, sub, path=p)
                except ValueError as e:  # an unreadable metrics.csv: the message names the file
                    built["skipped"][f"{stem}_curves"] = str(e)
                    continue
                if fig is not None:
                    built["figures"][f"{stem}_curves"] = p
                else:
                    built["skipped"][f"{stem}_curves"] = "no run folder with metrics.csv" + _absent(
                        sub[sub["table"] == name])
        claims = [built["tables"][f"{name}{suffix}"]["claims"] for name in names]
        where = "" if combo == (None, None) else f" on {combo[0]} ({combo[1]} scale)"
        built["claims"][f"claims{suffix}"] = p = tdir / f"claims{suffix}.md"
        atomic_write_text(p, (
            f"# The paper's claims{where}\n\nOne line per claim and column: the paper's difference, ours with its "
            "95% Welch interval over seeds and the seeds (better+worse), the test's p-value (Welch's t for an "
            "ordering, TOST within ±1 point where the paper says two rows are level) and Holm's adjusted p over the "
            "family (one table's claims on one column), and the verdict after Holm in bold — holds, reversed or not "
            "resolved — with the uncorrected one beside it. Details, power and the resolution of the seeds: "
            "tableN.md.\n\n" + claims_summary(claims)))
        p = fdir / f"claims{suffix}.png"
        if claims_figure(sub, path=p, tables=names)[0] is not None:
            built["figures"][f"claims{suffix}"] = p
        else:
            built["skipped"][f"claims{suffix}"] = "no claim could be tested on these runs"
        sel = sub[sub["table"].isin(names)] if len(sub) else sub
        analyses = (("confusion", confusion_figure, {"needs": ("result.json",)}, {}),
                    ("frequency_attention", frequency_figure, {"attention": True}, {"max_samples": max_samples}),
                    ("nonlocal_affinity", skeleton_figure, {"spatial_nonlocal": True}, {"max_samples": max_samples}))
        for key, fn, kw, fkw in analyses:
            recs = pick_runs(sel, **kw) if len(sel) else sel
            if not len(recs):
                needs = kw.get("needs", (FINAL_CHECKPOINT, "config.yaml"))
                built["skipped"][key + suffix] = (f"no run folder with {' and '.join(needs)}" + (
                    " and frequency attention" if kw.get("attention") else "") + (
                    " and a spatial non-local block (SLnL/sSLnL, M1 >= 1)" if kw.get("spatial_nonlocal") else "")
                    + _absent(sel))
                continue
            p = fdir / f"{key}{suffix}.png"
            try:
                fn(list(recs["run_path"]), path=p, **fkw)
                built["figures"][key + suffix] = p
            except (ValueError, FileNotFoundError, RuntimeError) as e:  # RuntimeError: an unreadable checkpoint
                built["skipped"][key + suffix] = f"{recs['path'].iloc[0]}: {e}"
    fig4(fig4_pairs, path=fdir / "fig4.png")
    built["figures"]["fig4"] = fdir / "fig4.png"
    _write_index(fdir, built)
    return built
