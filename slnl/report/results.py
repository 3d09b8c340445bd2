"""What the report reads: result files (one per table, row, split, seed) and the run directories they point to.

Inputs are only files: the result JSONs that ``slnl.study.run_table`` writes under ``<results_dir>/<table>/``,
and in each run directory ``metrics.csv`` (per-epoch metrics), ``result.json`` (final evaluation) and the final
checkpoint ``last.pt`` (the paper reports the model of the last epoch, so every analysis loads that one). Nothing
here needs to know how a run was launched.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slnl import experiments as ex
from slnl.data import msr3d, sbu
from slnl.engine.checkpoint import FILE as FINAL_CHECKPOINT  # the model of the final epoch: the one the paper reports
# Column names of a run's metrics.csv, defined where it is written. The paper has no validation split: the per-epoch
# evaluation is on the test subset.
from slnl.engine.metrics import TEST_LOSS, TEST_TOP1, TEST_TOP5, TRAIN_LOSS_HEAD  # noqa: F401 (slnl.report exports)
from slnl.utils import resolve_path

RESULT_KEYS = ("table", "row", "split", "seed", "top1", "top5")
# What every run of one table must share for its rows to be compared: the data (the store's content fingerprint),
# the schedule and how evaluation's BN statistics were estimated. A result file that does not record one of the first
# four (None) is not held against the others; one without bn_stats predates their recomputation: "running".
TRAINED_ALIKE = ("store_fingerprint", "epochs", "batch_size", "max_steps_per_epoch", "bn_stats")
METRIC_COLUMNS = ("epoch", TEST_TOP1, TRAIN_LOSS_HEAD["c"])  # what the learning curves need
# The final model evaluated with each BN statistics (runs of the current protocol record both; ``bn_stats`` names the
# headline): top-level ``top1_running`` / ``top1_recomputed`` (and top-5), or the run's ``by_bn_stats`` block.
BN_EVALUATIONS = ("running", "recomputed")
BN_HEADLINE = {"running": "running", "recompute": "recomputed"}  # bn_stats -> the evaluation top1 / top5 are
# k-fold cross-validation: a store's splits fold1 ... foldK are folds of one column, whose number is the mean over
# folds. Datasets whose folds are known (a seed missing one of them is incomplete); elsewhere the folds found.
FOLD_SPLIT = re.compile(r"fold(\d+)")
DATASET_FOLDS: dict[str, tuple[str, ...]] = {"sbu": tuple(s for s in sbu.SPLITS if FOLD_SPLIT.fullmatch(s))}
# Repeated random splits of one protocol (MSR Action3D: the ten subject splits of the Lie group release's
# tr_te_splits.mat, lie1 ... lie10): one column whose replicates are the (split, seed) results, so its interval is
# over splits — what a number published as the mean over those splits is compared with.
DATASET_REPEATS: dict[str, tuple[str, ...]] = {"msr3d": msr3d.LIE_SPLITS}


def read_result(path: str | Path) -> dict[str, Any]:
    """One result file, validated: it must name its table, row, split, seed and hold top1/top5 fractions."""
    path = Path(path)
    try:
        rec = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}") from e
    if not isinstance(rec, dict):
        raise ValueError(f"{path}: expected a JSON object at top level, got {type(rec).__name__}")
    missing = [k for k in RESULT_KEYS if k not in rec]
    if missing:
        raise ValueError(f"{path}: missing field(s) {missing}; a result file has {list(RESULT_KEYS)} at top level")
    for k in ("top1", "top5"):
        v = rec[k]
        if not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
            raise ValueError(f"{path}: field {k!r} must be an accuracy fraction in [0, 1], got {v!r}")
    rec["path"] = str(path)
    return rec


def collect(results_dir: str | Path = "results") -> pd.DataFrame:
    """Every result file under ``<results_dir>/table*/`` as one DataFrame row (accuracies in %)."""
    results_dir = resolve_path(results_dir)
    recs = [read_result(p) for p in sorted(results_dir.glob("table*/*__*__seed*.json"))]
    bn_cols = [f"{m}_{e}" for e in BN_EVALUATIONS for m in ("top1", "top5")]
    cols = ["table", "row", "split", "seed", "top1", "top5", "dataset", "scale", "epochs", "store_fingerprint",
            "bn_stats", "run_dir", "path", "run_path", *bn_cols]
    if not recs:
        return pd.DataFrame(columns=cols)
    for rec in recs:  # the other BN evaluation, where the run recorded it (nested in by_bn_stats, or top level)
        nested = rec.get("by_bn_stats") if isinstance(rec.get("by_bn_stats"), dict) else {}
        for e in BN_EVALUATIONS:
            for m in ("top1", "top5"):
                v = rec.get(f"{m}_{e}", (nested.get(e) or {}).get(m))
                rec[f"{m}_{e}"] = 100.0 * float(v) if isinstance(v, (int, float)) else math.nan
    df = pd.DataFrame.from_records(recs)
    for c in cols:
        if c not in df:
            df[c] = None
    # run_dir is stored relative to the repository when inside it; run_path is where it is on this machine.
    df["run_path"] = [str(resolve_path(r)) if isinstance(r, str) and r else None for r in df["run_dir"]]
    df["bn_stats"] = df["bn_stats"].fillna("running")  # written before BN statistics were recomputed
    df["top1"] = 100.0 * df["top1"].astype(float)
    df["top5"] = 100.0 * df["top5"].astype(float)
    return df


def as_frame(results: str | Path | pd.DataFrame) -> pd.DataFrame:
    """``collect(results)`` unless ``results`` already is a collected DataFrame."""
    return results if isinstance(results, pd.DataFrame) else collect(results)


def table_runs(table: str | int | ex.Table, results: str | Path | pd.DataFrame = "results", dataset: str | None = None,
               scale: str | None = None) -> tuple[ex.Table, pd.DataFrame]:
    """``(table, its runs)``: the runs of ``table`` in ``results`` (a results folder or a collected DataFrame),
    restricted to ``dataset``/``scale``; refuses to mix several combinations, and runs that were not trained alike
    (``TRAINED_ALIKE``: another store under the same dataset name, another number of epochs, ...), naming two files
    that differ."""
    tbl = ex.table(table)
    df = as_frame(results)
    d = df[df["table"] == tbl.name]
    if dataset is not None:
        d = d[d["dataset"] == dataset]
    if scale is not None:
        d = d[d["scale"] == scale]
    combos = d[["dataset", "scale"]].drop_duplicates()
    if len(combos) > 1:
        raise ValueError(
            f"{tbl.name}: results from several (dataset, scale) combinations "
            f"{[tuple(r) for r in combos.itertuples(index=False)]}; pass dataset= and scale= to pick one "
            "(or keep each combination in its own results_dir)")
    for col in TRAINED_ALIKE:
        if col not in d:
            continue
        known = d[d[col].notna()]
        first = known.drop_duplicates(col)
        if len(first) > 1:
            a, b = first.iloc[0], first.iloc[1]
            va, vb = (int(v) if isinstance(v, float) and v.is_integer() else v for v in (a[col], b[col]))
            raise ValueError(
                f"{tbl.name}: its runs were not trained alike: {col} {va!r} in {a['path']} but {vb!r} in "
                f"{b['path']}; a table compares rows trained on the same data with the same schedule (keep each in "
                "its own results_dir)")
    return tbl, d


def with_bn(runs: pd.DataFrame, evaluation: str, metrics: tuple[str, ...] = ("top1",)) -> pd.DataFrame | None:
    """``runs`` with ``metrics`` (``top1``; ``top5`` too for a top-1/top-5 table) those of the final model evaluated
    with BN statistics ``evaluation`` (``running`` or ``recomputed``), or None when a run did not record them (runs
    under the earlier protocol)."""
    cols = {m: f"{m}_{evaluation}" for m in metrics}
    if not len(runs) or any(c not in runs for c in cols.values()) or runs[list(cols.values())].isna().any().any():
        return None
    return runs.assign(**{m: runs[c].astype(float) for m, c in cols.items()})


def fold_number(split: str) -> int | None:
    """``fold3`` -> 3; None for a split that is not a fold."""
    m = FOLD_SPLIT.fullmatch(str(split).strip().lower())
    return int(m.group(1)) if m else None


def folds_of(runs: pd.DataFrame) -> tuple[str, ...]:
    """The folds of a k-fold dataset's runs: its known folds (``DATASET_FOLDS``) when the runs are of one such
    dataset, otherwise the ``fold<k>`` splits found; empty when no run is on a fold."""
    found = sorted({s for s in runs["split"] if fold_number(s) is not None}, key=fold_number) if len(runs) else []
    if not found:
        return ()
    datasets = set(runs["dataset"].dropna())
    known = DATASET_FOLDS.get(next(iter(datasets))) if len(datasets) == 1 else None
    return tuple(known) if known else tuple(found)


def fold_label(folds: tuple[str, ...]) -> str:
    """The column of k folds: ``"5-fold"``."""
    return f"{len(folds)}-fold"


def repeats_of(runs: pd.DataFrame) -> tuple[str, ...]:
    """The repeated splits of the runs' dataset (``DATASET_REPEATS``, all of them) when the runs are of one such
    dataset and any is among their splits; empty otherwise."""
    datasets = set(runs["dataset"].dropna()) if len(runs) else set()
    known = DATASET_REPEATS.get(next(iter(datasets)), ()) if len(datasets) == 1 else ()
    return known if set(known) & set(runs["split"]) else ()


def repeats_label(splits: tuple[str, ...]) -> str:
    """The column of repeated splits: ``"lie1-lie10"``."""
    return f"{splits[0]}-{splits[-1]}"


def fold_means(runs: pd.DataFrame, folds: tuple[str, ...], metric: str = "top1") -> pd.DataFrame:
    """DataFrame(row, seed, value, <fold>...): per (row, seed) that has every fold, the mean of ``metric`` over the
    folds (the dataset's number) and each fold's value. A (row, seed) missing a fold is left out; ``attrs
    ["incomplete"]`` lists them as ``(row, seed, missing folds)``."""
    sub = runs[runs["split"].isin(folds)]
    recs, incomplete = [], []
    for (row, seed), g in sub.groupby(["row", "seed"], sort=False):
        per = dict(zip(g["split"], g[metric].astype(float)))
        missing = [f for f in folds if f not in per]
        if missing:
            incomplete.append((row, seed, missing))
            continue
        recs.append({"row": row, "seed": seed, "value": float(np.mean([per[f] for f in folds])),
                     **{f: per[f] for f in folds}})
    out = pd.DataFrame(recs, columns=["row", "seed", "value", *folds])
    out.attrs["incomplete"] = incomplete
    return out


def fold_replicates(means: pd.DataFrame, folds: tuple[str, ...]) -> pd.DataFrame:
    """``fold_means`` with one row per (row, fold, seed): ``value`` that fold's result, ``seed`` ``"fold3/0"`` — the
    replicates a k-fold column's statistics are over (seeds × folds). The per-fold columns stay, so a row's mean of
    one is that fold's mean over seeds; the mean of ``value`` is the mean of the seeds' means over folds."""
    recs = [{**r, "seed": f"{f}/{r['seed']}", "value": r[f]} for r in means.to_dict("records") for f in folds]
    out = pd.DataFrame(recs, columns=means.columns)
    out.attrs = dict(means.attrs)
    return out


def column_values(tbl: ex.Table, runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """column -> DataFrame(row, seed, value) of our runs for that column of the table.

    The folds of a k-fold dataset (``folds_of``) are one column, ``fold_label`` ("5-fold"), with one value per (fold,
    seed) of every seed that has all the folds (``fold_replicates``; a seed missing a fold is left out), so that its
    statistics are over seeds × folds, and its frame also holds each fold's value. Repeated splits
    (``repeats_of``: MSR Action3D's lie1 ... lie10) are one column, ``repeats_label`` ("lie1-lie10"), with one
    value per (split, seed) — its seed column reads ``"lie3/0"`` — so statistics over it are over splits."""
    out: dict[str, pd.DataFrame] = {}
    folds = folds_of(runs)
    repeats = repeats_of(runs)
    if tbl.metric_by_split:
        splits = list(tbl.columns) + sorted(set(runs["split"]) - set(tbl.columns) - set(folds) - set(repeats))
        for s in splits:
            sub = runs[runs["split"] == s]
            if s in tbl.columns or len(sub):
                out[s] = sub[["row", "seed"]].assign(value=sub["top1"].values)
        if folds:
            out[fold_label(folds)] = fold_replicates(fold_means(runs, folds), folds)
        if repeats:  # every (split, seed) a replicate: the column's "seed" names both
            sub = runs[runs["split"].isin(repeats)]
            out[repeats_label(repeats)] = pd.DataFrame({
                "row": sub["row"].values, "seed": [f"{a}/{b}" for a, b in zip(sub["split"], sub["seed"])],
                "value": sub["top1"].astype(float).values})
    elif folds and set(runs["split"]) <= set(folds):  # top-1 / top-5 of a k-fold dataset: each the mean over folds
        for col in ("top1", "top5"):
            out[col] = fold_replicates(fold_means(runs, folds, col), folds)
    else:
        # Kinetics-style: top-1 and top-5 of one split (the store's only one, or a stand-in split).
        found = sorted(runs["split"].unique()) if len(runs) else []
        if len(found) > 1:  # never pick one silently: the others' results would vanish from the table
            raise ValueError(f"{tbl.name}: results on several splits {found}; a top-1/top-5 table shows one split — "
                             "keep one split per results_dir for this table")
        split = found[0] if found else None
        sub = runs[runs["split"] == split] if split is not None else runs
        for col in ("top1", "top5"):
            out[col] = sub[["row", "seed"]].assign(value=sub[col].values)
    return out


def row_values(values: dict[str, pd.DataFrame], column: str, slug: str) -> list[float]:
    """Our per-seed values (%) of row ``slug`` in ``column`` (empty when not run)."""
    vals = values.get(column)
    return [] if vals is None else vals[vals["row"] == slug]["value"].astype(float).tolist()


def read_metrics(run_dir: str | Path) -> pd.DataFrame:
    """A run's per-epoch metrics (``metrics.csv``: ``slnl.engine.metrics.CSV_COLUMNS``)."""
    path = Path(run_dir) / "metrics.csv"
    try:
        m = pd.read_csv(path)
    except pd.errors.EmptyDataError as e:
        raise ValueError(f"{path}: empty file; expected a header with {list(METRIC_COLUMNS)} and one row per epoch") \
            from e
    missing = [c for c in METRIC_COLUMNS if c not in m]
    if missing:
        # A run of an earlier slnl named the per-epoch test metrics val_*; its model is not this slnl's either.
        old = " (val_* columns: a run of an earlier slnl; train it again)" if "val_top1" in m else ""
        raise ValueError(f"{path}: missing column(s) {missing}; expected {list(METRIC_COLUMNS)} (found "
                         f"{list(m.columns)}){old}")
    return m
