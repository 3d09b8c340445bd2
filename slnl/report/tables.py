"""The paper's tables with ours beside them, and the resolution of our seeds (the paper's claims tested on our seeds
are ``slnl.report.claims``).

* ``paper_table``: one row per paper row (published reference rows included); per column (CS/CV, or top-1/top-5 on
  Kinetics) the paper's number, ours (mean and standard deviation over seeds, in %), the number of seeds and
  Δ = ours − paper. The folds of a dataset evaluated by k-fold cross-validation (SBU Kinect Interaction: store
  splits ``fold1`` … ``fold5``) are one column, ``5-fold``: ours is the mean over its (fold, seed) results (the
  dataset's number), its std and n over them, and each fold's mean over seeds is beside it (stats ``fold1`` …).
  Repeated random splits (MSR Action3D's ``lie1`` … ``lie10``) are one column likewise.
* ``seed_resolution``: per column, the seed standard deviation pooled over the table's rows, the smallest
  difference that the typical number of seeds per row resolves, the difference they detect with 80 % power and the
  seeds a difference of one point would need.

One function serves every dataset. On the dataset of the paper's numbers (``Table.paper_dataset``: NTU RGB+D 60 for
Tables 1 and 3–6, Kinetics for Table 2) ours is also compared with the paper's: Δ per cell, and per claim
``delta_vs_paper`` = our difference − the paper's. On any other data (the built-in synthetic set, MSR Action3D,
NTU-120, or Table 2 run on NTU-format data) those comparisons are left blank and the reason is given
(``delta_note``): 12 synthetic classes and 400 Kinetics classes give accuracies on different scales.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slnl import experiments as ex
from slnl.data import kinetics, msr3d, ntu, nwucla, sbu
from slnl.report.results import (DATASET_FOLDS, column_values, fold_label, repeats_label, repeats_of, row_values,
                                 table_runs)
from slnl.report.stats import detectable_difference, pooled_sd, resolvable_difference, seeds_needed


def _evaluation_splits(splits: tuple[str, ...]) -> tuple[str, ...]:
    """A dataset's splits that a table reports (``xsub-val``, ``fold1-val``: for choosing a recipe, not reported)."""
    return tuple(s for s in splits if not s.endswith("-val"))


# The splits of the datasets whose protocol is fixed by their format (user .npz, CTR-GCN and PYSKL stores vary).
DATASET_SPLITS: dict[str, tuple[str, ...]] = {
    **{k: _evaluation_splits(v) for k, v in ntu.SPLITS.items()}, "msr3d": _evaluation_splits(msr3d.SPLITS),
    "kinetics": kinetics.SPLITS, "nwucla": _evaluation_splits(nwucla.SPLITS), "sbu": _evaluation_splits(sbu.SPLITS)}
# Published results on a dataset other than the paper's, per column of our table (a split's label, or the k-fold
# column for a number that is the mean over folds, the repeated-splits column for one that is the mean over such
# splits): where the paper's claims against published numbers (Table 1)
# are on another dataset, our final model is compared with these instead.
DATASET_PUBLISHED: dict[str, dict[str, dict[str, float]]] = {
    "msr3d": {repeats_label(msr3d.LIE_SPLITS): dict(msr3d.PUBLISHED[msr3d.MEAN_OVER_LIE])},
    "nwucla": {ex.split_label(s): dict(v) for s, v in nwucla.PUBLISHED.items()},
    "sbu": {fold_label(DATASET_FOLDS["sbu"]): dict(sbu.PUBLISHED[sbu.MEAN_OVER_FOLDS])},
}
ORDERING_ONLY = "ordering only"  # the note of a claim tested on data other than the paper's
POWER = 0.8  # the power at which seed_resolution and the claims give the detectable difference
ONE_POINT = 1.0  # the difference (points of accuracy) whose seeds needed they give


def against_published(tbl: ex.Table) -> bool:
    """Whether every claim of ``tbl`` is against a published number, not one of our rows (Tables 1–2)."""
    return bool(tbl.claims) and all(not tbl.row(c.worse).runnable for c in tbl.claims)


def delta_note(tbl: ex.Table, runs: pd.DataFrame) -> str:
    """Empty when our runs are on the dataset of the paper's numbers (so ours − paper means something); otherwise
    the reason it is left blank. No runs: empty (there is nothing to compare)."""
    if not len(runs):
        return ""
    if runs["dataset"].isna().any():
        return ("Δ against the paper is left blank: some result files do not name their dataset, so they cannot be "
                f"matched with the paper's {tbl.paper_dataset} numbers.")
    ds = sorted(set(runs["dataset"]))
    if not any(ex.stand_in_note(tbl, d) for d in ds):
        return ""
    if against_published(tbl):
        claims = "The paper's claims here are against published numbers on its dataset: they are not tested."
    else:
        claims = "The paper's claims are tested below as orderings between our own rows."
    return (f"Δ against the paper is left blank: our runs are on {', '.join(ds)}, the paper's numbers on "
            f"{tbl.paper_dataset} — another dataset (other classes, subjects and difficulty), so a difference of "
            f"accuracies says nothing. {claims}")


def paper_table(table: str | int | ex.Table, results: str | Path | pd.DataFrame = "results", *,
                dataset: str | None = None, scale: str | None = None) -> pd.DataFrame:
    """The paper's table with ours beside it: index = the paper's row labels (paper order), columns a MultiIndex
    (column, stat) with stats ``paper``, ``ours`` (mean over seeds, %), ``std`` (over seeds; NaN for one seed),
    ``n`` (seeds), ``diff`` (ours − paper; NaN when our data is not the paper's dataset, see ``delta_note``).
    Reference rows have no ours.

    A k-fold column (``5-fold``: the folds of a cross-validated dataset, ``slnl.report.results.column_values``)
    has no paper number (the paper has no such column); ours is the mean over every (fold, seed) result, std and n
    are over them (seeds × folds), and one more stat per fold (``fold1`` …) holds that fold's mean over the same
    seeds — their mean is ours. A seed that lacks a fold is left out, and ``attrs["notes"]`` says which.

    ``attrs`` carries the dataset, scale, epochs, ``delta_note``, ``folds`` ({column: folds}) and notes (stand-in
    warnings included)."""
    tbl, runs = table_runs(table, results, dataset, scale)
    values = column_values(tbl, runs)
    note = delta_note(tbl, runs)
    folds = {c: [f for f in v.columns if f not in ("row", "seed", "value")] for c, v in values.items()}
    records = []
    for r in tbl.rows:
        rec: dict[tuple[str, str], Any] = {}
        for col in values:
            v = row_values(values, col, r.slug)
            paper = r.paper.get(col, math.nan)
            mean = float(np.mean(v)) if v else math.nan
            rec[(col, "paper")] = paper
            rec[(col, "ours")] = mean
            rec[(col, "std")] = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
            rec[(col, "n")] = len(v)
            rec[(col, "diff")] = math.nan if note else mean - paper
            vals = values[col][values[col]["row"] == r.slug]
            for f in folds[col]:
                rec[(col, f)] = float(vals[f].astype(float).mean()) if len(vals) else math.nan
        records.append(rec)
    frame = pd.DataFrame.from_records(records, index=pd.Index([r.label for r in tbl.rows], name=f"Table {tbl.number}"))
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["column", "stat"])
    ds = sorted(set(runs["dataset"].dropna())) if len(runs) else []
    sc = sorted(set(runs["scale"].dropna())) if len(runs) else []
    ep = sorted(set(int(e) for e in runs["epochs"].dropna())) if len(runs) else []
    warnings = [w for w in (ex.stand_in_note(tbl, d) for d in ds) if w]
    if "cpu" in sc:
        warnings.append("Scale cpu: a small model trained a few epochs — checks the pipeline end to end; the numbers "
                        "are not expected to approach the paper's.")
    notes = list(tbl.notes)
    repeats = repeats_of(runs)
    repeats_cols = {repeats_label(repeats)} if repeats else set()
    for col, v in values.items():
        if folds[col]:
            notes.append(f"{col}: {len(folds[col])}-fold cross-validation ({', '.join(folds[col])}); ours is the mean "
                         "over every (fold, seed) result of the seeds that have all folds, its std and n over them; per "
                         "fold, that fold's mean over the same seeds. The paper's CS claims are tested on it, with "
                         "seeds × folds as the replicates.")
        if col in repeats_cols:
            notes.append(f"{col}: the dataset's repeated subject splits, one column; ours and its std are over every "
                         "(split, seed) result, n counts them — a number published as the mean over these splits is "
                         "compared with it.")
        for row, seed, missing in v.attrs.get("incomplete", []):
            notes.append(f"{col}: {tbl.row(row).label} seed {seed} has no result on {', '.join(missing)}: left out "
                         "(the mean over folds needs every fold).")
    frame.attrs.update(table=tbl.name, title=tbl.title, dataset=",".join(ds), scale=",".join(sc),
                       epochs=",".join(map(str, ep)), warnings=warnings, notes=notes, delta_note=note,
                       folds={c: f for c, f in folds.items() if f},
                       replicated_by_runs=sorted({c for c, f in folds.items() if f} | repeats_cols))
    return frame


def dataset_references(tbl: ex.Table, ds: str | None) -> dict[str, dict[str, float]]:
    """``{column: {method: top-1 %}}``: the published results on the dataset ``ds`` itself that ``tbl``'s final model
    is compared with (``DATASET_PUBLISHED``; a number that is the mean over folds under the k-fold column), for a
    table whose claims are all against published numbers (Table 1) and whose columns are splits; empty for any other
    table or dataset. The claims table tests them, the accuracy figure draws them."""
    published = DATASET_PUBLISHED.get(ds or "", {})
    if not (published and tbl.metric_by_split and against_published(tbl)):
        return {}
    return {col: dict(refs) for col, refs in published.items()}


def seed_resolution(table: str | int | ex.Table, results: str | Path | pd.DataFrame = "results", *,
                    dataset: str | None = None, scale: str | None = None, level: float = 0.95) -> pd.DataFrame:
    """How fine an ordering our seeds can resolve, per column of the table.

    ``pooled_sd``: the seed-to-seed standard deviation pooled over every row with at least two seeds (``df`` degrees
    of freedom, ``rows`` such rows); ``seeds``: the smallest number of seeds among the rows run; ``resolvable``: the
    smallest difference that a row of ``seeds`` seeds resolves at ``level`` against ``against`` (another row of as
    many seeds in Tables 3–6, a published number in Tables 1–2) — see ``slnl.report.stats.resolvable_difference``.
    ``detectable_80``: the true difference that a two-sided t test at 1 − ``level`` detects with 80 % power at those
    seeds and that SD (``stats.detectable_difference``); ``seeds_for_1pp``: the seeds per row a true difference of
    one point needs for that power (``stats.seeds_needed``). A claim whose size is below them cannot be checked at
    this number of seeds."""
    tbl, runs = table_runs(table, results, dataset, scale)
    values = column_values(tbl, runs)
    published = against_published(tbl)
    alpha = 1.0 - level
    recs = []
    for col in values:
        groups = [g for g in (row_values(values, col, r.slug) for r in tbl.rows if r.runnable) if g]
        sd, df = pooled_sd(groups)
        n = min((len(g) for g in groups), default=0)
        other = None if published else n
        res = resolvable_difference(sd, df, n, other, level) if n else math.nan
        det = detectable_difference(sd, n, other, alpha, POWER) if n else math.nan
        need = seeds_needed(ONE_POINT, sd, alpha, POWER, one_sample=published) if n else math.nan
        recs.append({"column": col, "pooled_sd": sd, "df": df, "rows": sum(len(g) >= 2 for g in groups),
                     "seeds": n, "against": "published number" if published else "another row", "resolvable": res,
                     "detectable_80": det, "seeds_for_1pp": need})
    frame = pd.DataFrame(recs, columns=["column", "pooled_sd", "df", "rows", "seeds", "against", "resolvable",
                                        "detectable_80", "seeds_for_1pp"])
    frame = frame.set_index("column")
    frame.attrs.update(table=tbl.name, level=level)
    return frame
