"""The whole report (``report.ipynb``): every table's files and every figure, written under
``<results_dir>/tables`` and ``<results_dir>/figures``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from slnl import experiments as ex
from slnl.report.figures import (accuracy_figure, confusion_figure, fig4, frequency_figure, learning_curves,
                                 skeleton_figure)
from slnl.report.markdown import claims_summary, write_table
from slnl.report.results import FINAL_CHECKPOINT, collect
from slnl.utils import atomic_write_text, resolve_path

# Which finished run the analysis figures use: Table 1's model first (the paper's full model), then Tables 6 … 2.
ANALYSIS_PREFERENCE = ("table1", "table6", "table5", "table4", "table3", "table2")


def pick_run(df: pd.DataFrame, attention: bool = False, spatial_nonlocal: bool = False) -> pd.Series | None:
    """A finished run (``config.yaml`` and the final checkpoint present) for the analysis figures, in the order of
    ``ANALYSIS_PREFERENCE``, then by highest top-1; ``attention``: it must have frequency attention;
    ``spatial_nonlocal``: a spatial non-local block (SLnL or sSLnL with M1 ≥ 1)."""
    order = {t: i for i, t in enumerate(ANALYSIS_PREFERENCE)}
    cands = []
    for _, rec in df.iterrows():
        if not rec.get("run_path"):
            continue
        rd = Path(rec["run_path"])
        if not (rd / FINAL_CHECKPOINT).is_file() or not (rd / "config.yaml").is_file():
            continue
        s = ex.table(rec["table"]).row(rec["row"]).settings_for(rec["split"])
        if attention and s.get("attention", "none") == "none":
            continue
        if spatial_nonlocal and (s.get("affinity") not in ("SLnL", "sSLnL") or int(s.get("m1", 0)) < 1):
            continue
        cands.append((order.get(rec["table"], len(order)), -float(rec["top1"]), rec["path"], rec))
    if not cands:
        return None
    return sorted(cands, key=lambda c: c[:3])[0][3]


def build_report(results_dir: str | Path = "results", tables: str | Sequence[str] = "all",
                 fig4_pairs: str = "2,0.4;2,0.6;0,0.4", max_samples: int = 512) -> dict[str, Any]:
    """Everything ``report.ipynb`` shows, written under ``<results_dir>/tables`` and ``<results_dir>/figures``.

    Tables (``write_table``: csv, claims csv, md) for each requested table — with the paper's numbers even before any
    run —; every claim of those tables, one line each, in ``claims.md``; for each table with runs, its accuracy per
    row (every seed, mean and interval) and its learning curves; Fig. 4; and for the best-placed finished run (``pick_run``): its confusion matrix, its frequency gates per class,
    and its non-local affinities on the skeleton. A figure that cannot be drawn (no suitable run, or a run's file is
    unreadable) is listed under ``skipped`` with the reason. Results of several (dataset, scale) combinations get one
    set of tables and figures each, suffixed ``__<dataset>-<scale>``. ``max_samples``: test samples the checkpoint
    analyses look at.
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
            built["tables"][stem] = write_table(name, sub, out_dir=tdir, stem=stem)
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
        claims = [built["tables"][f"{name}{suffix}"]["claims"] for name in names]
        where = "" if combo == (None, None) else f" on {combo[0]} ({combo[1]} scale)"
        built["claims"][f"claims{suffix}"] = p = tdir / f"claims{suffix}.md"
        atomic_write_text(p, (
            f"# The paper's claims{where}\n\nOne line per claimed improvement and column: the paper's difference, "
            "ours with its 95% Welch interval over seeds, the seeds (better+worse), the verdict. Details and the "
            "resolution of the seeds: tableN.md.\n\n" + claims_summary(claims)))
        sel = sub[sub["table"].isin(names)] if len(sub) else sub
        analyses = (("confusion", confusion_figure, {}, {}),
                    ("frequency_attention", frequency_figure, {"attention": True}, {"max_samples": max_samples}),
                    ("nonlocal_affinity", skeleton_figure, {"spatial_nonlocal": True}, {"max_samples": max_samples}))
        for key, fn, kw, fkw in analyses:
            rec = pick_run(sel, **kw) if len(sel) else None
            if rec is None:
                built["skipped"][key + suffix] = (f"no finished run with {FINAL_CHECKPOINT}" + (
                    " and frequency attention" if kw.get("attention") else "") + (
                    " and a spatial non-local block (SLnL/sSLnL, M1 >= 1)" if kw.get("spatial_nonlocal") else ""))
                continue
            p = fdir / f"{key}{suffix}.png"
            try:
                fn(rec["run_path"], path=p, **fkw)
                built["figures"][key + suffix] = p
            except (ValueError, FileNotFoundError, RuntimeError) as e:  # RuntimeError: an unreadable checkpoint
                built["skipped"][key + suffix] = f"{rec['path']}: {e}"
    fig4(fig4_pairs, path=fdir / "fig4.png")
    built["figures"]["fig4"] = fdir / "fig4.png"
    return built
