"""What the report reads: result files (one per table, row, split, seed) and the run directories they point to.

Inputs are only files: the result JSONs that ``slnl.study.run_table`` writes under ``<results_dir>/<table>/``,
and in each run directory ``metrics.csv`` (per-epoch metrics), ``result.json`` (final evaluation) and the final
checkpoint ``last.pt`` (the paper reports the model of the last epoch, so every analysis loads that one). Nothing
here needs to know how a run was launched.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from slnl import experiments as ex
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
    cols = ["table", "row", "split", "seed", "top1", "top5", "dataset", "scale", "epochs", "store_fingerprint",
            "bn_stats", "run_dir", "path", "run_path"]
    if not recs:
        return pd.DataFrame(columns=cols)
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


def column_values(tbl: ex.Table, runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """column -> DataFrame(row, seed, value) of our runs for that column of the table."""
    out: dict[str, pd.DataFrame] = {}
    if tbl.metric_by_split:
        splits = list(tbl.columns) + sorted(set(runs["split"]) - set(tbl.columns))
        for s in splits:
            sub = runs[runs["split"] == s]
            if s in tbl.columns or len(sub):
                out[s] = sub[["row", "seed"]].assign(value=sub["top1"].values)
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
