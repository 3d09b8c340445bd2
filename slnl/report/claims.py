"""The paper's claims tested on our seeds: one row per (claim, column), the protocol a reviewer can cite.

Each improvement the paper claims between two rows (``slnl.experiments.Claim``) is tested as an ordering of our rows:
the difference of our means with its Welch interval over seeds and Welch's two-sided p-value (against a published
number: the one-sample t test). Where the paper says two rows are *level* (its words for Table 3: "the improvement
of CNN-V is insignificant"), the claim is an equivalence, tested by TOST within ±``EQUIVALENCE_MARGIN`` points.

**Families and Holm's correction.** A *family* is one table's claims on one column (split) of one study — one
results folder, one (dataset, scale). Its p-values (Welch's two-sided p for an ordering, TOST's p for an
equivalence; claims without a p-value — not run, no spread, no comparison — are not in it) are corrected together
by Holm's step-down method (``slnl.report.stats.holm``), which keeps the probability of any false verdict in the
family at most 1 − level (5 %). The verdict a reviewer cites is the one after Holm: ``holds`` (rejected, the
claimed ordering or equivalence), ``reversed`` (rejected, the other ordering; never printed otherwise) or ``not
resolved after Holm over <m> claims``. The uncorrected verdict stays beside it, worded by the interval alone
(``interval above 0`` / ``interval below 0`` / ``not resolved at <n> seeds``; TOST's ``equivalent within ±1 pp``
/ ``not shown equivalent``).

**Power.** Per claim, with the seed SD of its two rows (pooled; one row's SD against a published number):
``detectable_80``, the true difference a two-sided t test at 5 % detects with 80 % power at these seeds, and
``seeds_for_1pp``, the seeds per row a true difference of one point would need (``stats.detectable_difference``,
``stats.seeds_needed``).

**BN evaluation.** Runs of the current protocol record the final model evaluated with both BN statistics
(``slnl.report.results.with_bn``); the verdicts are computed again from the evaluation that is not the headline
(``verdict_other_bn``), and ``attrs["bn_sensitivity"]`` says whether any changes. Runs that recorded one
evaluation only: "not recorded (runs under the earlier protocol)".

**k-fold datasets.** On a dataset evaluated by cross-validation (SBU: folds ``fold1`` … ``fold5``) the replicates
are seeds × folds: every (fold, seed) result of a seed that has all folds (``results.column_values``), and the
paper's CS claims are tested on that column (``5-fold``; a fold trains with CS's settings); its CV claims are
``no such split``. The fold-to-fold spread is then part of the interval (folds test different clips): wider than a
paired design, never narrower. MSR Action3D's repeated subject splits (``lie1-lie10``) are one column likewise.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from slnl import experiments as ex
from slnl.data.store import canonical_split
from slnl.report.results import (BN_HEADLINE, DATASET_FOLDS, column_values, fold_label, folds_of, repeats_label,
                                 repeats_of, row_values, table_runs, with_bn)
from slnl.report.stats import (HOLDS, NOT_RESOLVED, REVERSED, detectable_difference, holm, pooled_sd,
                               seeds_label, seeds_needed, tost, verdict, welch_test)
from slnl.report.tables import (DATASET_SPLITS, ONE_POINT, ORDERING_ONLY, POWER, dataset_references, delta_note)
from slnl.studies import planned

#: The note of a claim whose rows the study's declared plan leaves out, after the rows' labels joined by " and "
#: (``slnl.report.findings`` reads it back to name those rows once).
OUTSIDE_PLAN = ": not in the {ds} study's declared plan (results/{ds}/protocol.md)"

CLAIM_COLUMNS = ["better", "worse", "column", "kind", "paper_diff", "ours_diff", "low", "high", "p_welch",
                 "p_tost", "verdict_uncorrected", "p_holm", "family", "verdict", "detectable_80", "seeds_for_1pp",
                 "n_better", "n_worse", "delta_vs_paper", "verdict_other_bn", "note", "claim"]
ORDERING, EQUIVALENCE = "ordering", "equivalence"
NOT_RUN = "not run"
NO_SUCH_SPLIT = "no such split"  # a claim on a split the dataset does not define (CV on MSR Action3D): untestable
NOT_RECORDED = "not recorded (runs under the earlier protocol)"
EQUIVALENCE_MARGIN = 1.0  # points of accuracy: "level" means within ±1 point
# The claims the paper makes as "level" (no better, comparable), keyed by (table, better, worse) — ``better`` the
# row the paper prints higher — with the paper's sentence. Kept here, not as a field of ``experiments.Claim``: the
# claim ``CS-T > CNN-V`` of Table 3 quotes it, but the rows it says are level are CNN-V and PosVel-N.
EQUIVALENCE_CLAIMS: dict[tuple[str, str, str], str] = {
    ("table3", "cnn-v", "posvel-n"): "Even with the same depth, the improvement of CNN-V is insignificant, "
                                     "indicating that our improvement is not just induced by adding depth",
}
UNCORRECTED = {HOLDS: "interval above 0", REVERSED: "interval below 0"}  # the raw Welch verdict, in other words


def equivalence_claims(tbl: ex.Table) -> list[ex.Claim]:
    """The claims of ``tbl`` that two rows are level (``EQUIVALENCE_CLAIMS``), on the table's columns."""
    return [ex.Claim(b, w, tbl.columns, quote) for (t, b, w), quote in EQUIVALENCE_CLAIMS.items() if t == tbl.name]


def _blank(**kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {k: math.nan for k in CLAIM_COLUMNS}
    rec.update(kind=ORDERING, verdict="", verdict_uncorrected="", verdict_other_bn="", note="")
    rec.update(kw)
    return rec


def _test(rec: dict[str, Any], a: list[float], b: list[float] | float, level: float) -> None:
    """Fill ``rec`` with the tests of ``a`` against ``b`` (a list of seeds, or a published number)."""
    published = not isinstance(b, list)
    alpha = 1.0 - level
    w = welch_test(a, b, level)
    raw = verdict(w, seeds_label(len(a), None if published else len(b)))
    rec.update(ours_diff=w["diff"], low=w["low"], high=w["high"], p_welch=w["p_two_sided"],
               verdict_uncorrected=UNCORRECTED.get(raw, raw))
    if rec["kind"] == EQUIVALENCE:
        t = tost(a, b, EQUIVALENCE_MARGIN, alpha)
        rec.update(p_tost=t["p"], verdict_uncorrected=t["verdict"])
    sd, _ = pooled_sd([a] if published else [a, b])
    rec.update(detectable_80=detectable_difference(sd, len(a), None if published else len(b), alpha, POWER),
               seeds_for_1pp=seeds_needed(ONE_POINT, sd, alpha, POWER, one_sample=published))


def _column(col: str, tbl: ex.Table, runs: pd.DataFrame, ds: str | None) -> tuple[str, str]:
    """``(the column a claim on ``col`` is tested on, why it cannot be)``: on a k-fold dataset the paper's CS claims
    are tested on the mean over folds and the others have no such split."""
    folds = folds_of(runs) or DATASET_FOLDS.get(ds or "", ())
    if not (folds and tbl.metric_by_split):
        return col, ""
    if col == "CS":
        return fold_label(folds), ""
    return col, (f"{ds or 'these runs'} is evaluated by {fold_label(folds)} cross-validation: its mean over folds "
                 "stands for CS (a fold trains with CS's settings); it has no " + col)


def _records(tbl: ex.Table, runs: pd.DataFrame, level: float, dataset: str | None = None) -> list[dict[str, Any]]:
    """The uncorrected tests of every claim of ``tbl`` on ``runs``, one record per (claim, column); ``dataset``: the
    study's, when it has no run of this table."""
    values = column_values(tbl, runs)
    note = delta_note(tbl, runs)
    datasets = set(runs["dataset"].dropna())
    ds = next(iter(datasets)) if len(datasets) == 1 else dataset  # table_runs allows one (dataset, scale) at most
    plan = planned(ds) if ds else set()
    out = []
    claims = [(c, ORDERING) for c in tbl.claims] + [(c, EQUIVALENCE) for c in equivalence_claims(tbl)]
    folds, repeats = folds_of(runs) or DATASET_FOLDS.get(ds or "", ()), repeats_of(runs)
    pooled = {fold_label(folds)} if folds else set()  # columns made of several splits: not a split of the store
    pooled |= {repeats_label(repeats)} if repeats else set()
    for c, kind in claims:
        better, worse = tbl.row(c.better), tbl.row(c.worse)
        published = not worse.runnable
        for paper_col in c.columns:
            col, untestable = _column(paper_col, tbl, runs, ds)
            a = row_values(values, col, better.slug)
            b: Any = worse.paper[paper_col] if published else row_values(values, col, worse.slug)
            rec = _blank(better=better.label, worse=worse.label, column=col, kind=kind, n_better=len(a),
                         n_worse=0 if published else len(b), claim=c.quote,
                         paper_diff=round(better.paper[paper_col] - worse.paper[paper_col], 6))
            if untestable:
                rec.update(verdict=NO_SUCH_SPLIT, note=untestable, n_better=0, n_worse=0)
            elif not a or (not published and not b):
                missing = [r.label for r, v in ((better, a), (worse, b)) if r.runnable and not v]
                every = " (a seed counts once it has every fold)" if folds and col == fold_label(folds) else ""
                rec.update(verdict=NOT_RUN, note=f"no result for {' and '.join(missing)} on {col}{every}")
                undeclared = [r.label for r in (better, worse) if r.runnable
                              and not {(tbl.name, r.slug), (tbl.name, None)} & {(t, w) for t, w, _, _ in plan}]
                if plan and undeclared:  # a study with a declared plan: the reason is the plan (and its budget)
                    rec["note"] = f"{' and '.join(undeclared)}{OUTSIDE_PLAN.format(ds=ds)}"
                if (tbl.metric_by_split and ds in DATASET_SPLITS and canonical_split(col) not in DATASET_SPLITS[ds]
                        and col not in pooled):  # top-1 / top-5 columns (Table 2) are not splits
                    rec.update(verdict=NO_SUCH_SPLIT, note=f"{ds} defines no {col} split (its splits: "
                               f"{', '.join(ex.split_label(s) for s in DATASET_SPLITS[ds])})")
            elif published and note:
                rec.update(note=f"{worse.label} is a published number on {tbl.paper_dataset}; our runs are on "
                                f"{', '.join(sorted(datasets)) or 'an unnamed dataset'}: no comparison")
            else:
                _test(rec, a, b, level)
                if note:
                    rec["note"] = f"{ORDERING_ONLY}: our runs are not on the paper's {tbl.paper_dataset}"
                else:
                    rec["delta_vs_paper"] = rec["ours_diff"] - rec["paper_diff"]
            out.append(rec)
    if note:  # the final model against the published results on the dataset itself
        ours = tbl.row(tbl.claims[0].better) if tbl.claims else None
        repeats = repeats_of(runs)
        for col, refs in dataset_references(tbl, ds).items():
            a = row_values(values, col, ours.slug)
            for label, ref in refs.items():
                over = (f", the mean over its splits {col}: ours over the same splits, n counts splits"
                        if repeats and col == repeats_label(repeats) else "")
                rec = _blank(better=ours.label, worse=label, column=col, n_better=len(a), n_worse=0,
                             note=f"{label} is a published number on {ds}{over}",
                             claim=f"the paper's model ahead of published methods, against a published result on {ds}")
                if a:
                    _test(rec, a, float(ref), level)
                else:
                    rec.update(verdict=NOT_RUN, note=f"no result for {ours.label} on {col}")
                out.append(rec)
    return out


def family_verdicts(records: list[dict[str, Any]], level: float = 0.95) -> None:
    """Holm's correction within each family — the records of one table's claims on one ``column`` — and the verdict
    after it, in place: ``p_holm``, ``family`` (its size m: the records with a p-value) and ``verdict``. The p-value
    corrected is ``p_tost`` for an equivalence (``kind``), ``p_welch`` otherwise; a record without one keeps its
    verdict (not run, no such split, no comparison) or takes its uncorrected one (no spread)."""
    for col in dict.fromkeys(r["column"] for r in records):
        family = [r for r in records if r["column"] == col]
        p = [r["p_tost"] if r["kind"] == EQUIVALENCE else r["p_welch"] for r in family]
        res = holm(p, 1.0 - level)
        m = int(sum(not math.isnan(x) for x in res.adjusted))
        for r, p_adj, rejected in zip(family, res.adjusted, res.reject):
            if math.isnan(p_adj):
                if not r["verdict"]:  # tested but without a p-value (one seed: no spread)
                    r["verdict"] = r["verdict_uncorrected"]
                continue
            r.update(p_holm=float(p_adj), family=m)
            if rejected and (r["kind"] == EQUIVALENCE or r["ours_diff"] > 0):
                r["verdict"] = HOLDS
            elif rejected:
                r["verdict"] = REVERSED
            else:
                r["verdict"] = f"{NOT_RESOLVED} after Holm over {m} claim" + ("" if m == 1 else "s")


def _frame(tbl: ex.Table, runs: pd.DataFrame, level: float, dataset: str | None = None) -> pd.DataFrame:
    records = _records(tbl, runs, level, dataset)
    family_verdicts(records, level)
    return pd.DataFrame(records, columns=CLAIM_COLUMNS)


def claims_table(table: str | int | ex.Table, results: str | Path | pd.DataFrame = "results", *,
                 dataset: str | None = None, scale: str | None = None, level: float = 0.95) -> pd.DataFrame:
    """The paper's claims tested on our runs: one row per (claim, column); see the module docstring for the rules.

    Columns: ``kind`` (``ordering``, or ``equivalence`` for rows the paper says are level), ``paper_diff`` (the
    paper's better − worse), ``ours_diff`` (difference of our means), ``low``/``high`` (its ``level`` Welch
    interval over seeds; a one-sample interval against a published number), ``p_welch`` (Welch's two-sided p),
    ``p_tost`` (TOST within ±1 point, equivalence rows), ``verdict_uncorrected``, ``p_holm`` and ``family`` (the
    Holm-adjusted p and the family's size), ``verdict`` (after Holm: ``holds``, ``reversed``, ``not resolved after
    Holm over <m> claims``; or ``not resolved at <n> seeds (no spread)``, ``not run``, ``no such split``, or blank for
    no comparison), ``detectable_80``, ``seeds_for_1pp``, ``n_better``/``n_worse`` (seeds; 0 for a published number),
    ``delta_vs_paper`` (ours_diff − paper_diff, only on the paper's dataset), ``verdict_other_bn`` (the verdict from
    the other BN evaluation, where recorded), ``note`` and ``claim`` (the paper's sentence).

    On data other than the paper's, a claim against a published number (Tables 1–2) has no test: the published
    number is on another dataset. Where that dataset has published results of its own
    (``tables.DATASET_PUBLISHED``), the final model is tested against each of them (one row per result, in the same
    family). ``attrs``: ``table``, ``level``, ``delta_note``, ``bn_sensitivity`` (one sentence, blank without runs).
    """
    tbl, runs = table_runs(table, results, dataset, scale)
    frame = _frame(tbl, runs, level, dataset)
    line = ""
    if len(runs):
        headline = BN_HEADLINE.get(str(runs["bn_stats"].iloc[0]), "running")
        other = next(e for e in BN_HEADLINE.values() if e != headline)
        other_runs = with_bn(runs, other, ("top1",) if tbl.metric_by_split else ("top1", "top5"))
        if other_runs is None:
            line = NOT_RECORDED
        else:
            frame["verdict_other_bn"] = _frame(tbl, other_runs, level, dataset)["verdict"].values
            changed = frame[frame["verdict"] != frame["verdict_other_bn"]]
            line = (f"verdicts recomputed with BN statistics {other} (the headline: {headline}): "
                    + ("no verdict changes." if not len(changed) else f"{len(changed)} change: " + "; ".join(
                        f"{r.better} {'≈' if r.kind == EQUIVALENCE else '>'} {r.worse} ({r.column}): {r.verdict} → "
                        f"{r.verdict_other_bn}" for r in changed.itertuples(index=False)) + "."))
    folds, repeats = folds_of(runs) or DATASET_FOLDS.get(dataset or "", ()), repeats_of(runs)
    by_runs = ([fold_label(folds)] if folds else []) + ([repeats_label(repeats)] if repeats else [])
    frame.attrs.update(table=tbl.name, level=level, delta_note=delta_note(tbl, runs), bn_sensitivity=line,
                       replicated_by_runs=by_runs)
    return frame
