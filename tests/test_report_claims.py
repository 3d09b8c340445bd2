"""slnl.report.claims on constructed result files: Welch's p and Holm's correction within each family (one table's
claims on one column) against textbook values, TOST where the paper says two rows are level, the power columns
against Cohen's table, the verdicts from the other BN evaluation, and a k-fold dataset's folds as one column."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from slnl import experiments as ex
from slnl import report as rp
from slnl import study
from slnl.data import sbu
from slnl.report import claims as cl
from slnl.report import stats as st

# Student's sleep data (R's `sleep`) and the `clinic` data of R's equivalence package: see test_report_stats.py.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
CLINIC_VAR1 = ([2.84, 2.51, 2.41, 2.95, 3.14, 3.79, 4.14, 3.85, 3.02, 3.45, 5.37, 3.81, 4.19, 3.16, 3.84],
               [2.60, 2.82, 2.18, 3.46, 4.01, 3.04, 3.47, 4.06, 2.91, 3.59, 4.51, 3.16, 3.86, 3.31, 3.02])


def _write(results, table, row, split, seed, top1, dataset="msr3d", scale="small", **extra):
    """A result file; ``top1`` in % (written as the fraction a result file holds)."""
    rec = {"table": table, "row": row, "split": split, "seed": seed, "top1": top1 / 100, "top5": top1 / 100,
           "dataset": dataset, "scale": scale, "epochs": 1, "run_dir": None, **extra}
    p = study.result_path(results, table, row, split, seed)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(rec))
    return p


def _rows(results, table, row, values, split="CS", **kw):
    for seed, v in enumerate(values):
        _write(results, table, row, split, seed, v, **kw)


# --------------------------------------------------------------------------------------------------------------------
# Holm within a family
# --------------------------------------------------------------------------------------------------------------------
def test_family_verdicts_on_the_holm_textbook_example():
    """The Holm–Bonferroni example (p = 0.01, 0.04, 0.03, 0.005 → adjusted 0.03, 0.06, 0.06, 0.02): the claim at raw
    p = 0.03 with the worse row ahead is *not* reversed — it does not survive Holm — while the one at 0.005 is.
    Another column is another family; a record without a p-value is not in either."""
    recs = [{"column": "CS", "kind": cl.ORDERING, "p_welch": p, "p_tost": math.nan, "ours_diff": d, "verdict": "",
             "verdict_uncorrected": "x"} for p, d in ((0.01, 1.0), (0.04, 1.0), (0.03, -1.0), (0.005, -2.0))]
    recs.append({"column": "CS", "kind": cl.ORDERING, "p_welch": math.nan, "p_tost": math.nan, "ours_diff": math.nan,
                 "verdict": cl.NOT_RUN, "verdict_uncorrected": ""})
    recs.append({"column": "CV", "kind": cl.EQUIVALENCE, "p_welch": 0.9, "p_tost": 0.03, "ours_diff": 0.1,
                 "verdict": "", "verdict_uncorrected": "equivalent within ±1 pp"})
    cl.family_verdicts(recs)
    assert [r["p_holm"] for r in recs[:4]] == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-12)
    assert [r["verdict"] for r in recs[:4]] == ["holds", "not resolved after Holm over 4 claims",
                                                "not resolved after Holm over 4 claims", "reversed"]
    assert [r["family"] for r in recs[:4]] == [4] * 4
    assert recs[4]["verdict"] == cl.NOT_RUN and "p_holm" not in recs[4]  # left out of the family
    # CV: a family of one equivalence claim, corrected on its TOST p (not its Welch p): it holds.
    assert recs[5]["p_holm"] == pytest.approx(0.03) and recs[5]["family"] == 1 and recs[5]["verdict"] == "holds"


def test_claims_table_welch_p_and_holm_on_textbook_data(tmp_path):
    """Table 5 on R's sleep data (rFA = drug 2, none = drug 1, + 80 points): Welch's p is R's 0.07939 and its
    interval R's; the family of CS has this one claim tested (the others are not run), so Holm's p is the same and
    the verdict is not resolved. With a second claim tested the family is two: Holm's p of the smaller is twice it."""
    _rows(tmp_path, "table5", "rfa", [80 + v for v in SLEEP_2])
    _rows(tmp_path, "table5", "none", [80 + v for v in SLEEP_1])
    c = rp.claims_table("table5", tmp_path).set_index(["better", "worse", "column"])
    row = c.loc[("Residual FA (rFA)", "No Frequency Attention", "CS")]
    assert row["p_welch"] == pytest.approx(0.07939, abs=5e-6)  # R: t.test(extra ~ group, data = sleep)
    assert (row["low"], row["high"]) == pytest.approx((-0.2054832, 3.3654832), abs=1e-6)
    assert row["p_holm"] == pytest.approx(row["p_welch"]) and row["family"] == 1
    assert row["verdict"] == "not resolved after Holm over 1 claim"
    assert row["verdict_uncorrected"] == "not resolved at 10+10 seeds"
    _rows(tmp_path, "table5", "afa", [60 + v for v in SLEEP_1])  # none > aFA by 20 points: p tiny
    c = rp.claims_table("table5", tmp_path).set_index(["better", "worse", "column"])
    p = [c.loc[(b, w, "CS"), "p_welch"] for b, w in (("Residual FA (rFA)", "No Frequency Attention"),
                                                     ("No Frequency Attention", "Amplitude FA (aFA)"))]
    assert p[1] == pytest.approx(sps.ttest_ind([80 + v for v in SLEEP_1], [60 + v for v in SLEEP_1],
                                               equal_var=False).pvalue)
    assert c.loc[("No Frequency Attention", "Amplitude FA (aFA)", "CS"), "p_holm"] == pytest.approx(2 * p[1])
    assert c.loc[("Residual FA (rFA)", "No Frequency Attention", "CS"), "p_holm"] == pytest.approx(p[0])  # max(1·p)
    assert c.loc[("No Frequency Attention", "Amplitude FA (aFA)", "CS"), "verdict"] == "holds"
    assert set(c.xs("CS", level="column")["family"].dropna()) == {2}


def test_a_reversal_is_printed_only_when_it_survives_holm(tmp_path):
    """Table 3: S-T below PosVel-N by 5 points at 3+3 seeds survives Holm over the family's 5 tested claims and is
    *reversed*; Table 5's rFA below none at raw p ≈ 0.02 does not survive Holm over 3: *not resolved*, its raw
    interval (below 0) kept beside it, and 'reversed' printed nowhere for it."""
    for seed, v in enumerate((90.0, 91.0, 92.0)):
        _write(tmp_path / "t3", "table3", "cs-t", "CS", seed, v)
        _write(tmp_path / "t3", "table3", "posvel-n", "CS", seed, v - 20)
        _write(tmp_path / "t3", "table3", "s-t", "CS", seed, v - 25)
        _write(tmp_path / "t3", "table3", "cnn-v", "CS", seed, 85.5 + 5 * (seed - 1))
    c = rp.claims_table("table3", tmp_path / "t3").set_index(["better", "worse", "column"])
    assert c.loc[("S-T", "PosVel-N", "CS"), "verdict"] == "reversed"
    assert c.loc[("S-T", "PosVel-N", "CS"), "verdict_uncorrected"] == "interval below 0"
    assert c.loc[("S-T", "PosVel-N", "CS"), "family"] == 5  # CS-T>PosVel-N, S-T>PosVel-N, CS-T>S-T, CS-T>CNN-V, ≈
    t5 = tmp_path / "t5"
    _rows(t5, "table5", "rfa", [80.0, 81.0, 82.0, 80.5])
    _rows(t5, "table5", "none", [81.8, 82.8, 83.8, 82.3])  # rFA below: Welch p = 0.0246, Holm 3 × 0.0246 = 0.074
    _rows(t5, "table5", "afa", [81.0, 83.0, 82.0, 82.5])
    _rows(t5, "table5", "dfa", [81.0, 82.5, 83.0, 80.5])
    claims = rp.claims_table("table5", t5)
    c = claims.set_index(["better", "worse", "column"])
    row = c.loc[("Residual FA (rFA)", "No Frequency Attention", "CS")]
    assert row["p_welch"] == pytest.approx(0.024602145328, abs=1e-9) and row["family"] == 3
    assert row["verdict_uncorrected"] == "interval below 0"
    assert row["p_holm"] == pytest.approx(3 * row["p_welch"])
    assert row["verdict"] == "not resolved after Holm over 3 claims"
    assert "reversed" not in set(claims["verdict"]) | set(claims["verdict_uncorrected"])
    line = [ln for ln in rp.claims_summary([claims]).splitlines()
            if ln.startswith("- Table 5 (CS): Residual FA (rFA) > No Frequency")]
    assert len(line) == 1 and "reversed" not in line[0] and "(uncorrected: interval below 0)" in line[0]


# --------------------------------------------------------------------------------------------------------------------
# TOST where the paper says "level"; power
# --------------------------------------------------------------------------------------------------------------------
def test_level_rows_are_tested_for_equivalence_by_tost(tmp_path):
    """Table 3's "the improvement of CNN-V is insignificant" is an equivalence of CNN-V and PosVel-N within ±1
    point: on R's clinic data scaled so that R's margin 0.6 is our 1 point, TOST's p is R's 0.04853 (equivalent);
    in a family of one, Holm leaves it: holds."""
    a, b = ([70 + v / 0.6 for v in x] for x in CLINIC_VAR1)
    _rows(tmp_path, "table3", "cnn-v", a)
    _rows(tmp_path, "table3", "posvel-n", b)
    assert [(c.better, c.worse) for c in rp.equivalence_claims(ex.table("table3"))] == [("cnn-v", "posvel-n")]
    assert all(not rp.equivalence_claims(ex.table(t)) for t in ("table1", "table2", "table4", "table5", "table6"))
    c = rp.claims_table("table3", tmp_path)
    row = c[(c["kind"] == cl.EQUIVALENCE) & (c["column"] == "CS")].iloc[0]
    assert (row["better"], row["worse"]) == ("CNN-V", "PosVel-N") and "insignificant" in row["claim"]
    assert row["p_tost"] == pytest.approx(0.04853083976236974, abs=1e-9)  # R: equivalence::tost(..., epsilon=0.6)
    assert row["verdict_uncorrected"] == "equivalent within ±1 pp"
    assert row["family"] == 1 and row["p_holm"] == pytest.approx(row["p_tost"]) and row["verdict"] == "holds"
    assert row["p_welch"] == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue)
    ordering = c[c["kind"] == cl.ORDERING]
    assert (ordering["verdict"].isin([cl.NOT_RUN, cl.NO_SUCH_SPLIT])).all()  # the other rows were not run
    md = rp.table_markdown(rp.paper_table("table3", tmp_path), c)
    assert "| CNN-V | ≈ | PosVel-N | CS | TOST ±1 pp |" in md and "one table's claims on one column" in md


def test_power_columns_follow_cohens_table(tmp_path):
    """Rows with a seed SD of exactly 2 points: a 1-point difference is Cohen's d = 0.5, which needs 64 seeds per
    row at 80 % power (Cohen 1988, Table 2.4.1); the detectable difference at 3+3 seeds is statsmodels' solution;
    against a published number (Table 1 on MSR Action3D) the one-sample versions."""
    _rows(tmp_path, "table5", "rfa", [88.0, 90.0, 92.0])
    _rows(tmp_path, "table5", "none", [70.0, 72.0, 74.0])
    row = rp.claims_table("table5", tmp_path).iloc[0]
    assert row["seeds_for_1pp"] == 64
    assert row["detectable_80"] == pytest.approx(st.detectable_difference(2.0, 3, 3))
    assert "resolvable" not in row.index
    res = rp.seed_resolution("table5", tmp_path).loc["CS"]
    assert res["pooled_sd"] == pytest.approx(2.0) and res["seeds_for_1pp"] == 64
    assert res["detectable_80"] == pytest.approx(st.detectable_difference(2.0, 3, 3))
    for k, v in enumerate([88.0, 90.0, 92.0]):  # MSR's anchor is a mean over its subject splits: one each
        _write(tmp_path, "table1", "slnl-rfa", f"lie{k + 1}", 0, v)
    ref = [r for r in rp.claims_table("table1", tmp_path).itertuples() if "published number on msr3d" in r.note][0]
    assert ref.seeds_for_1pp == 34  # one-sample t, d = 0.5 (G*Power)
    assert ref.detectable_80 == pytest.approx(st.detectable_difference(2.0, 3, None))
    assert ref.p_welch == pytest.approx(sps.ttest_1samp([88.0, 90.0, 92.0], 89.48).pvalue)


# --------------------------------------------------------------------------------------------------------------------
# The other BN evaluation
# --------------------------------------------------------------------------------------------------------------------
def test_verdicts_are_recomputed_from_the_other_bn_evaluation(tmp_path):
    """Runs that record both evaluations (top-level top1_running, or the run's by_bn_stats): the verdicts from the
    one that is not the headline sit beside the headline's, and the sentence names each change. Runs under the
    earlier protocol: not recorded."""
    rfa, none = [90.0, 91.0, 92.0], [80.0, 81.0, 82.0]
    for seed in range(3):  # headline: recomputed statistics, rFA well ahead; running: level
        _write(tmp_path, "table5", "rfa", "CS", seed, rfa[seed], bn_stats="recompute",
               top1_running=none[seed] / 100, top1_recomputed=rfa[seed] / 100)
        _write(tmp_path, "table5", "none", "CS", seed, none[seed], bn_stats="recompute",
               by_bn_stats={"running": {"top1": none[seed] / 100, "top5": 0.9},
                            "recomputed": {"top1": none[seed] / 100, "top5": 0.9}})
    df = rp.collect(tmp_path)
    assert sorted(df["top1_running"]) == pytest.approx(sorted(none * 2))  # both fields read, in %
    c = rp.claims_table("table5", tmp_path)
    first = c.iloc[0]
    assert first["verdict"] == "holds" and first["verdict_other_bn"].startswith("not resolved")
    line = c.attrs["bn_sensitivity"]
    assert line.startswith("verdicts recomputed with BN statistics running (the headline: recomputed): 1 change: ")
    assert "Residual FA (rFA) > No Frequency Attention (CS): holds → not resolved" in line
    assert "verdict (other BN)" in rp.claims_display(c).columns
    md = rp.table_markdown(rp.paper_table("table5", tmp_path), c)
    assert f"Sensitivity to the BN evaluation: {line}" in md
    assert rp.claims_summary([c]).endswith(f"\nSensitivity to the BN evaluation: {line}\n")
    old = tmp_path / "old"
    _rows(old, "table5", "rfa", rfa)
    _rows(old, "table5", "none", none)
    c = rp.claims_table("table5", old)
    assert c.attrs["bn_sensitivity"] == "not recorded (runs under the earlier protocol)"
    assert (c["verdict_other_bn"] == "").all() and "verdict (other BN)" not in rp.claims_display(c).columns
    assert rp.with_bn(rp.collect(old), "running") is None
    assert rp.claims_table("table5", tmp_path / "none").attrs["bn_sensitivity"] == ""  # no runs: nothing to say


# --------------------------------------------------------------------------------------------------------------------
# k-fold cross-validation: the folds are one column
# --------------------------------------------------------------------------------------------------------------------
FOLDS = [f"fold{k}" for k in range(1, 6)]


def _sbu(results, row, base, seeds=(0, 1, 2), table="table3", skip=()):
    """Per seed s and fold k: base + k + s/2 (so each seed's mean over folds is base + 3 + s/2)."""
    for s in seeds:
        for k, f in enumerate(FOLDS, start=1):
            if (s, f) not in skip:
                _write(results, table, row, f, s, base + k + s / 2, dataset="sbu")


def _replicates(base, seeds):
    """The (fold, seed) values _sbu writes, in %."""
    return [base + k + s / 2 for s in seeds for k in range(1, 6)]


def test_folds_are_one_column_of_per_fold_and_mean_values(tmp_path):
    """SBU's folds are one column whose replicates are seeds × folds: ours is the mean over the (fold, seed) results
    of the seeds that have every fold, std and n over them; each fold's mean over seeds beside it; a claim is
    Welch's test over those replicates."""
    _sbu(tmp_path, "cs-t", 80.0)
    _sbu(tmp_path, "posvel-n", 70.0, skip={(2, "fold4")})  # seed 2 lacks fold 4: left out, and said so
    assert rp.folds_of(rp.collect(tmp_path)) == tuple(FOLDS) == tuple(f for f in sbu.SPLITS if "val" not in f)
    frame = rp.paper_table("table3", tmp_path)
    assert list(dict.fromkeys(frame.columns.get_level_values(0))) == ["CS", "CV", "5-fold"]
    cst = frame.loc["CS-T"]
    assert cst[("5-fold", "n")] == 15 and cst[("5-fold", "ours")] == pytest.approx(80 + 3 + 0.5)
    assert cst[("5-fold", "std")] == pytest.approx(np.std(_replicates(80.0, (0, 1, 2)), ddof=1))
    assert [cst[("5-fold", f)] for f in FOLDS] == pytest.approx([80 + k + 0.5 for k in range(1, 6)])
    assert math.isnan(cst[("5-fold", "paper")]) and cst[("CS", "n")] == 0
    pv = frame.loc["PosVel-N"]
    assert pv[("5-fold", "n")] == 10 and pv[("5-fold", "fold1")] == pytest.approx(71.25)
    assert any("PosVel-N seed 2 has no result on fold4" in n for n in frame.attrs["notes"])
    md = rp.table_markdown(frame)
    assert "5-fold per fold" in md and "| fold1 81.5 · fold2 82.5 · fold3 83.5 · fold4 84.5 · fold5 85.5 |" in md
    assert "83.5 ± 1.5 (15 runs)" in md
    # the paper's CS claims are tested on the (fold, seed) replicates, its CV claims have no such split
    c = rp.claims_table("table3", tmp_path)
    row = c[(c["better"] == "CS-T") & (c["worse"] == "PosVel-N")].set_index("column")
    assert list(row.index) == ["5-fold", "CV"] and row.loc["5-fold", "paper_diff"] == pytest.approx(1.0)
    a, b = _replicates(80.0, (0, 1, 2)), _replicates(70.0, (0, 1))
    w = st.welch_interval(a, b)
    assert row.loc["5-fold", "ours_diff"] == pytest.approx(w["diff"]) and row.loc["5-fold", "low"] == \
        pytest.approx(w["low"]) and (row.loc["5-fold", "n_better"], row.loc["5-fold", "n_worse"]) == (15, 10)
    assert row.loc["5-fold", "p_welch"] == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue)
    assert row.loc["CV", "verdict"] == cl.NO_SUCH_SPLIT and "5-fold cross-validation" in row.loc["CV", "note"]
    res = rp.seed_resolution("table3", tmp_path)
    assert res.loc["5-fold", "seeds"] == 10 and res.loc["5-fold", "pooled_sd"] == pytest.approx(
        st.pooled_sd([a, b])[0])


def test_a_row_outside_the_declared_plan_is_not_run_with_that_reason(tmp_path):
    """A study with a declared plan (slnl.studies): a claim whose rows the plan leaves out says so, on the study's
    own column (SBU: 5-fold), even for a table the study has no run of."""
    _sbu(tmp_path, "slnl-rfa", 90.0, table="table1")
    c = rp.claims_table("table3", tmp_path, dataset="sbu")
    row = c[(c["better"] == "CS-T") & (c["worse"] == "PosVel-N")].set_index("column")
    assert list(row.index) == ["5-fold", "CV"] and row.loc["5-fold", "verdict"] == cl.NOT_RUN
    assert row.loc["5-fold", "note"] == "CS-T and PosVel-N: not in the sbu study's declared plan " \
                                        "(results/sbu/protocol.md)"
    assert row.loc["CV", "verdict"] == cl.NO_SUCH_SPLIT
    c = rp.claims_table("table6", tmp_path, dataset="sbu")  # Local and SLnL (M1 = 5) are planned; SLnL (M1 = 3) not
    notes = dict(zip(c["better"] + " > " + c["worse"] + " " + c["column"], c["note"]))
    assert notes["SLnL (M1=5, M2=1) > Local (M1=0, M2=6) 5-fold"].startswith("no result for")
    assert "not in the sbu study's declared plan" in notes["SLnL (M1=3, M2=3) > Local (M1=0, M2=6) 5-fold"]


def test_folds_of_tables_1_and_2_use_the_mean_over_folds(tmp_path):
    """Table 1 on SBU: the final model against SBU's published results (each a mean over the five folds) in the
    5-fold column, one-sample t over the (fold, seed) results; Table 2 (top-1 / top-5): each the mean over them."""
    _sbu(tmp_path, "slnl-rfa", 90.0, table="table1")
    c = rp.claims_table("table1", tmp_path)
    refs = c[c["note"].str.contains("published number on sbu")]
    assert set(refs["worse"]) == set(sbu.PUBLISHED[sbu.MEAN_OVER_FOLDS]) and set(refs["column"]) == {"5-fold"}
    hcn = refs[refs["worse"] == "HCN (Li et al. 2018)"].iloc[0]
    assert hcn["ours_diff"] == pytest.approx(93.5 - 98.6) and hcn["family"] == 3 and hcn["n_better"] == 15
    assert hcn["p_welch"] == pytest.approx(sps.ttest_1samp(_replicates(90.0, (0, 1, 2)), 98.6).pvalue)
    _sbu(tmp_path, "slnl-rfa", 50.0, table="table2")
    frame = rp.paper_table("table2", tmp_path)
    assert frame.loc["SLnL-rFA (Ours)", ("top1", "ours")] == pytest.approx(53.5)
    assert frame.loc["SLnL-rFA (Ours)", ("top5", "fold5")] == pytest.approx(55.5)
