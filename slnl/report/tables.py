"""The paper's tables with ours beside them, the paper's claimed improvements checked against seed spread, and the
resolution of our seeds.

* ``paper_table``: one row per paper row (published reference rows included); per column (CS/CV, or top-1/top-5 on
  Kinetics) the paper's number, ours (mean and standard deviation over seeds, in %), the number of seeds and
  Δ = ours − paper.
* ``claims_table``: each improvement the paper claims between two rows (``slnl.experiments.Claim``) tested as an
  ordering of our rows: our difference of means, its Welch interval over seeds, the half-width of that interval (the
  smallest difference these seeds resolve) and a verdict (``slnl.report.stats.verdict``).
* ``seed_resolution``: per column, the seed standard deviation pooled over the table's rows and the smallest
  difference that the typical number of seeds per row resolves.

One function serves every dataset. On the dataset of the paper's numbers (``Table.paper_dataset``: NTU RGB+D 60 for
Tables 1 and 3–6, Kinetics for Table 2) ours is also compared with the paper's: Δ per cell, and per claim
``delta_vs_paper`` = our difference − the paper's. On any other data (the built-in synthetic set, MSR Action3D,
NTU-120, or Table 2 run on NTU-format data) those comparisons are left blank and the reason is given
(``delta_note``): 12 synthetic classes and 400 Kinetics classes give accuracies on different scales. The orderings
between our own rows are still tested; an ordering against a *published* number (Tables 1–2) needs the paper's
dataset and is left blank otherwise.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slnl import experiments as ex
from slnl.data import kinetics, msr3d, ntu
from slnl.data.store import canonical_split
from slnl.report.results import column_values, row_values, table_runs
from slnl.report.stats import pooled_sd, resolvable_difference, seeds_label, verdict, welch_interval

CLAIM_COLUMNS = ["better", "worse", "column", "paper_diff", "ours_diff", "low", "high", "resolvable", "n_better",
                 "n_worse", "verdict", "delta_vs_paper", "note", "claim"]
NOT_RUN = "not run"
NO_SUCH_SPLIT = "no such split"  # a claim on a split the dataset does not define (CV on MSR Action3D): untestable
# The splits of the datasets whose protocol is fixed by their format (user .npz, CTR-GCN and PYSKL stores vary).
DATASET_SPLITS: dict[str, tuple[str, ...]] = {**ntu.SPLITS, "msr3d": msr3d.SPLITS, "kinetics": kinetics.SPLITS}
# Published results on a dataset other than the paper's, per split (``msr3d.PUBLISHED``): where the paper's claims
# against published numbers (Table 1) are on another dataset, our final model is compared with these instead.
DATASET_PUBLISHED: dict[str, dict[str, dict[str, float]]] = {"msr3d": msr3d.PUBLISHED}
ORDERING_ONLY = "ordering only"  # the note of a claim tested on data other than the paper's


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
    Reference rows have no ours. ``attrs`` carries the dataset, scale, epochs, ``delta_note`` and notes (stand-in
    warnings included)."""
    tbl, runs = table_runs(table, results, dataset, scale)
    values = column_values(tbl, runs)
    note = delta_note(tbl, runs)
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
    frame.attrs.update(table=tbl.name, title=tbl.title, dataset=",".join(ds), scale=",".join(sc),
                       epochs=",".join(map(str, ep)), warnings=warnings, notes=list(tbl.notes), delta_note=note)
    return frame


def claims_table(table: str | int | ex.Table, results: str | Path | pd.DataFrame = "results", *,
                 dataset: str | None = None, scale: str | None = None, level: float = 0.95) -> pd.DataFrame:
    """The paper's claimed improvements tested on our runs: one row per (claim, column).

    Columns: ``paper_diff`` (the paper's better − worse), ``ours_diff`` (difference of our means), ``low``/``high``
    (its ``level`` Welch interval over seeds; a one-sample interval when the worse row is a published number),
    ``resolvable`` (the interval's half-width: the smallest difference these seeds, with the spread they show,
    resolve), ``n_better``/``n_worse`` (seeds; 0 for a published number), ``verdict`` (``holds``, ``reversed``,
    ``not resolved at <n> seeds``, ``not run``, ``no such split`` — a split the dataset does not define, such as
    CV on MSR Action3D — or blank), ``delta_vs_paper`` (ours_diff − paper_diff, only on the paper's dataset),
    ``note`` (why a field is blank) and ``claim`` (the paper's sentence).

    On data other than the paper's, a claim against a published number (Tables 1–2) has no ours_diff and no verdict:
    the published number is on another dataset. ``attrs['delta_note']`` says why delta_vs_paper is blank. Where that
    dataset has published results of its own (``DATASET_PUBLISHED``, e.g. MSR Action3D), the same claim — our final
    model ahead of published methods — is tested against each of them, one row per result (no paper_diff).
    """
    tbl, runs = table_runs(table, results, dataset, scale)
    values = column_values(tbl, runs)
    note = delta_note(tbl, runs)
    datasets = set(runs["dataset"].dropna())
    ds = next(iter(datasets)) if len(datasets) == 1 else None  # table_runs allows one (dataset, scale) at most
    out = []
    for c in tbl.claims:
        better, worse = tbl.row(c.better), tbl.row(c.worse)
        published = not worse.runnable
        for col in c.columns:
            paper_diff = round(better.paper[col] - worse.paper[col], 6)
            a = row_values(values, col, better.slug)
            b: Any = worse.paper[col] if published else row_values(values, col, worse.slug)
            rec = {k: math.nan for k in CLAIM_COLUMNS}
            rec.update(better=better.label, worse=worse.label, column=col, paper_diff=paper_diff, n_better=len(a),
                       n_worse=0 if published else len(b), verdict="", note="", claim=c.quote)
            if not a or (not published and not b):
                missing = [r.label for r, v in ((better, a), (worse, b)) if r.runnable and not v]
                rec.update(verdict=NOT_RUN, note=f"no result for {' and '.join(missing)} on {col}")
                if ds in DATASET_SPLITS and canonical_split(col) not in DATASET_SPLITS[ds]:
                    rec.update(verdict=NO_SUCH_SPLIT, note=f"{ds} defines no {col} split (its splits: "
                               f"{', '.join(ex.split_label(s) for s in DATASET_SPLITS[ds])})")
            elif published and note:
                rec.update(note=f"{worse.label} is a published number on {tbl.paper_dataset}; our runs are on "
                                f"{', '.join(sorted(datasets)) or 'an unnamed dataset'}: "
                                "no comparison")
            else:
                w = welch_interval(a, b, level)
                rec.update(ours_diff=w["diff"], low=w["low"], high=w["high"], resolvable=w["half"],
                           verdict=verdict(w, seeds_label(len(a), None if published else len(b))))
                if note:
                    rec["note"] = f"{ORDERING_ONLY}: our runs are not on the paper's {tbl.paper_dataset}"
                else:
                    rec["delta_vs_paper"] = w["diff"] - paper_diff
            out.append(rec)
    out += _against_dataset_published(tbl, values, ds, level) if note else []
    frame = pd.DataFrame(out, columns=CLAIM_COLUMNS)
    frame.attrs.update(table=tbl.name, level=level, delta_note=note)
    return frame


def dataset_references(tbl: ex.Table, ds: str | None) -> dict[str, dict[str, float]]:
    """``{column: {method: top-1 %}}``: the published results on the dataset ``ds`` itself that ``tbl``'s final model
    is compared with (``DATASET_PUBLISHED``), for a table whose claims are all against published numbers (Table 1)
    and whose columns are splits; empty for any other table or dataset. The claims table tests them, the accuracy
    figure draws them."""
    published = DATASET_PUBLISHED.get(ds or "", {})
    if not (published and tbl.metric_by_split and against_published(tbl)):
        return {}
    return {ex.split_label(split): dict(refs) for split, refs in published.items()}


def _against_dataset_published(tbl: ex.Table, values: dict[str, pd.DataFrame], ds: str | None,
                               level: float) -> list[dict[str, Any]]:
    """Claim rows of ``tbl``'s model against the published results on ``ds`` itself (``dataset_references``)."""
    references = dataset_references(tbl, ds)
    if not references:
        return []
    ours = tbl.row(tbl.claims[0].better)
    out = []
    for col, refs in references.items():
        a = row_values(values, col, ours.slug)
        for label, ref in refs.items():
            rec = {k: math.nan for k in CLAIM_COLUMNS}
            rec.update(better=ours.label, worse=label, column=col, n_better=len(a), n_worse=0,
                       note=f"{label} is a published number on {ds}", verdict="",
                       claim=f"the paper's model ahead of published methods, against a published result on {ds}")
            if not a:
                rec.update(verdict=NOT_RUN, note=f"no result for {ours.label} on {col}")
            else:
                w = welch_interval(a, ref, level)
                rec.update(ours_diff=w["diff"], low=w["low"], high=w["high"], resolvable=w["half"],
                           verdict=verdict(w, seeds_label(len(a), None)))
            out.append(rec)
    return out


def seed_resolution(table: str | int | ex.Table, results: str | Path | pd.DataFrame = "results", *,
                    dataset: str | None = None, scale: str | None = None, level: float = 0.95) -> pd.DataFrame:
    """How fine an ordering our seeds can resolve, per column of the table.

    ``pooled_sd``: the seed-to-seed standard deviation pooled over every row with at least two seeds (``df`` degrees
    of freedom, ``rows`` such rows); ``seeds``: the smallest number of seeds among the rows run; ``resolvable``: the
    smallest difference that a row of ``seeds`` seeds resolves at ``level`` against ``against`` (another row of as
    many seeds in Tables 3–6, a published number in Tables 1–2) — see ``slnl.report.stats.resolvable_difference``.
    A claim whose size is below it cannot be checked at this number of seeds."""
    tbl, runs = table_runs(table, results, dataset, scale)
    values = column_values(tbl, runs)
    published = against_published(tbl)
    recs = []
    for col in values:
        groups = [g for g in (row_values(values, col, r.slug) for r in tbl.rows if r.runnable) if g]
        sd, df = pooled_sd(groups)
        n = min((len(g) for g in groups), default=0)
        res = resolvable_difference(sd, df, n, None if published else n, level) if n else math.nan
        recs.append({"column": col, "pooled_sd": sd, "df": df, "rows": sum(len(g) >= 2 for g in groups),
                     "seeds": n, "against": "published number" if published else "another row", "resolvable": res})
    frame = pd.DataFrame(recs, columns=["column", "pooled_sd", "df", "rows", "seeds", "against", "resolvable"])
    frame = frame.set_index("column")
    frame.attrs.update(table=tbl.name, level=level)
    return frame
