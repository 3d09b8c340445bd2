"""slnl.report.stats: Welch's interval (against the Welch–Satterthwaite formula, SciPy's t-test and the numbers of
the earlier hand-written Student's t), its coverage, the verdict on an ordering, and the resolution of seeds; the
p-values, Holm's correction, equivalence (TOST) and power against published values (R's sleep and clinic examples,
the Holm–Bonferroni example, Cohen's power table) and the identities that tie them to the interval."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from slnl.report import stats as st


def _welch_df(a, b):
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    return (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))


def test_welch_interval_is_scipys_welch_t_test():
    rng = np.random.default_rng(1)
    for na, nb, sa, sb in ((3, 3, 1.0, 1.0), (3, 5, 0.5, 2.0), (2, 7, 3.0, 0.2), (10, 4, 1.0, 1.5)):
        a, b = rng.normal(80, sa, na), rng.normal(79, sb, nb)
        for level in (0.9, 0.95, 0.99):
            w = st.welch_interval(a, b, level)
            ref = sps.ttest_ind(a, b, equal_var=False)
            ci = ref.confidence_interval(level)
            assert w["df"] == pytest.approx(_welch_df(a, b), rel=1e-12) == pytest.approx(ref.df, rel=1e-12)
            assert (w["low"], w["high"]) == pytest.approx((ci.low, ci.high), rel=1e-12, abs=1e-12)
            assert w["diff"] == pytest.approx(a.mean() - b.mean())
            assert w["half"] == pytest.approx((ci.high - ci.low) / 2)


def test_welch_interval_by_hand():
    # var(a)/n = 1/3, var(b)/n = 1; Welch–Satterthwaite df = (4/3)^2 / ((1/3)^2/2 + 1^2/1) = 32/19
    w = st.welch_interval([1.0, 2.0, 3.0], [4.0, 6.0])
    assert w["diff"] == pytest.approx(-3.0) and w["df"] == pytest.approx(32 / 19)
    assert w["half"] == pytest.approx(sps.t.ppf(0.975, 32 / 19) * math.sqrt(4 / 3))
    # Against a published constant: one-sample t, df = n - 1; 4.30265273 is t_{0.975, 2} from any statistics table.
    one = st.welch_interval([80.0, 82.0, 84.0], 79.0)
    assert one["df"] == 2 and one["low"] == pytest.approx(3.0 - 4.30265273 * 2 / math.sqrt(3), abs=1e-7)
    ci = sps.ttest_1samp([80.0, 82.0, 84.0], 79.0).confidence_interval(0.95)  # an interval for mean(a)
    assert (one["low"], one["high"]) == pytest.approx((ci.low - 79.0, ci.high - 79.0))


# The earlier implementation (regularised incomplete beta by continued fraction, quantile by bisection) gave these;
# the SciPy version must agree to within that bisection's tolerance (1e-10 on t).
PREVIOUS = [
    (([1.0, 2.0, 3.0], [4.0, 6.0], 0.95), (-8.976997448257537, 2.9769974482575368, 1.6842105263157894)),
    (([1.0, 2.0, 3.0], [4.0, 6.0], 0.9), (-6.845002710551849, 0.8450027105518498, 1.6842105263157894)),
    (([80.0, 82.0, 84.0], 79.0, 0.95), (-1.9682754235156974, 7.968275423515697, 2.0)),
    (([85.1, 85.9, 86.4], [84.2, 85.0, 84.7], 0.95), (-0.1729461983255156, 2.5062795316588584, 3.327801701501919)),
    (([85.1, 85.9, 86.4], [84.2, 85.0, 84.7], 0.9), (0.16079413552982547, 2.172539197803517, 3.327801701501919)),
    (([88.3, 88.9, 87.6, 88.1, 88.8], [87.7, 87.5], 0.95), (0.07349955885577342, 1.4065004411442448,
                                                            4.923531174727221)),
    (([70.0, 71.0, 72.0], [65.0, 66.0, 67.0], 0.95), (2.733042064489363, 7.2669579355106375, 4.0)),
]


@pytest.mark.parametrize("args,expected", PREVIOUS)
def test_welch_interval_equals_the_previous_numbers(args, expected):
    w = st.welch_interval(*args)
    assert (w["low"], w["high"], w["df"]) == pytest.approx(expected, abs=1e-8)


def test_welch_interval_edge_cases():
    assert math.isnan(st.welch_interval([1.0], [2.0, 3.0])["low"])  # one seed: no spread to compare with
    assert math.isnan(st.welch_interval([1.0], 0.5)["half"])
    same = st.welch_interval([5.0, 5.0], [4.0, 4.0])  # identical seeds: the interval is a point
    assert (same["low"], same["high"], same["half"]) == (1.0, 1.0, 0.0)
    half_zero = st.welch_interval([5.0, 5.0, 5.0], [4.0, 4.5, 5.0])  # one side without spread: df = n_b - 1
    assert half_zero["df"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="at least one value"):
        st.welch_interval([], [1.0])
    with pytest.raises(ValueError, match="level"):
        st.welch_interval([1.0, 2.0], [1.0, 2.0], level=95)


def test_welch_interval_properties():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 4), rng.normal(0.5, 2, 6)
    w, r = st.welch_interval(a, b), st.welch_interval(b, a)
    assert (w["low"], w["high"]) == pytest.approx((-r["high"], -r["low"]))  # swapping the rows negates it
    wide = st.welch_interval(a, b, 0.99)
    assert wide["low"] < w["low"] < w["diff"] < w["high"] < wide["high"]  # nested in the level
    shifted = st.welch_interval(a + 10.0, b)
    assert shifted["half"] == pytest.approx(w["half"]) and shifted["diff"] == pytest.approx(w["diff"] + 10.0)


def test_welch_interval_coverage():
    # Unequal variances and small samples, as for seeds: the 95% interval covers the true difference ~95% of the time.
    rng = np.random.default_rng(3)
    trials, true = 4000, 1.5
    hits = 0
    for _ in range(trials):
        w = st.welch_interval(rng.normal(true, 1.0, 3), rng.normal(0.0, 3.0, 5))
        hits += w["low"] <= true <= w["high"]
    assert abs(hits / trials - 0.95) < 0.02  # binomial sd at 4000 trials: 0.0034


def test_verdict():
    assert st.verdict({"low": 0.1, "high": 2.0}, "3+3") == "holds"
    assert st.verdict({"low": -2.0, "high": -0.1}, "3+3") == "reversed"
    assert st.verdict({"low": -0.5, "high": 2.0}, "3+3") == "not resolved at 3+3 seeds"
    assert st.verdict({"low": math.nan, "high": math.nan}, "1+1") == "not resolved at 1+1 seeds (no spread)"
    assert st.verdict({"low": 0.0, "high": 0.0}, "2+2") == "not resolved at 2+2 seeds"  # equal identical seeds
    assert st.verdict({"low": math.nan, "high": math.nan}, "1") == "not resolved at 1 seed (no spread)"
    # On constructed data: a clear gap holds, the same gap the other way round is reversed, overlap is not resolved.
    a, b = [80.0, 80.5, 81.0], [75.0, 75.4, 75.9]
    assert st.verdict(st.welch_interval(a, b), "3+3") == "holds"
    assert st.verdict(st.welch_interval(b, a), "3+3") == "reversed"
    assert st.verdict(st.welch_interval([80.0, 85.0, 75.0], [79.0, 81.0, 80.0]), "3+3").startswith("not resolved")


def test_pooled_sd():
    g = [[1.0, 2.0, 3.0], [10.0, 14.0], [7.0]]  # the single value carries no spread
    sd, df = st.pooled_sd(g)
    assert df == 3 and sd == pytest.approx(math.sqrt((2.0 + 8.0) / 3))
    assert st.pooled_sd([[4.0, 6.0, 8.0]]) == pytest.approx((2.0, 2))
    sd, df = st.pooled_sd([[1.0], [2.0]])
    assert math.isnan(sd) and df == 0


def test_resolvable_difference_is_the_interval_half_width():
    # Two rows with equal sample spread and equal n: Welch's df is 2(n - 1), the pooled df too, so the resolvable
    # difference equals the interval's half-width; a gap just above it holds, just below it is not resolved.
    a = np.array([80.0, 81.0, 82.0, 83.0])
    b = a - 0.3
    sd, df = st.pooled_sd([a, b])
    res = st.resolvable_difference(sd, df, 4, 4)
    assert df == 6 and res == pytest.approx(st.welch_interval(a, b)["half"])
    assert res == pytest.approx(sps.t.ppf(0.975, 6) * sd * math.sqrt(0.5))
    for eps, want in ((+1e-6, "holds"), (-1e-6, "not resolved at 4+4 seeds")):
        shifted = b - (b.mean() - a.mean()) - res - eps  # mean(a) - mean(shifted) = res + eps
        assert st.verdict(st.welch_interval(a, shifted), "4+4") == want
    assert st.resolvable_difference(sd, df, 4) == pytest.approx(sps.t.ppf(0.975, 6) * sd / 2)  # vs a constant
    assert math.isnan(st.resolvable_difference(math.nan, 0, 3, 3))
    assert st.resolvable_difference(1.0, 10, 9, 9) < st.resolvable_difference(1.0, 10, 3, 3)  # more seeds: finer


# --- p-values, Holm's correction, equivalence (TOST), power -----------------------------------------------------

# Student's sleep data (Cushny & Peebles; Student 1908), R's `sleep`: extra hours of sleep under two drugs.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]

# The `clinic` data of R's equivalence package (Robinson), as in statsmodels' TOST tests
# (statsmodels/stats/tests/test_tost.py): var1 and var2 of the two groups of 15 patients.
CLINIC_VAR1 = ([2.84, 2.51, 2.41, 2.95, 3.14, 3.79, 4.14, 3.85, 3.02, 3.45, 5.37, 3.81, 4.19, 3.16, 3.84],
               [2.60, 2.82, 2.18, 3.46, 4.01, 3.04, 3.47, 4.06, 2.91, 3.59, 4.51, 3.16, 3.86, 3.31, 3.02])
CLINIC_VAR2 = ([4.00, 3.26, 4.14, 3.42, 3.25, 4.34, 4.97, 4.31, 3.11, 3.41, 5.02, 4.21, 4.59, 5.30, 4.32],
               [3.76, 3.66, 3.65, 3.60, 3.48, 2.87, 3.24, 3.92, 3.99, 4.21, 4.21, 3.31, 3.61, 2.97, 2.73])


def _holm_by_hand(p):
    """Holm's adjusted p-values by their definition: min(1, max_{j <= i} (m - j + 1) p_(j)) in the sorted order."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(p)
    m = len(p)
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return out


def test_holm_textbook_example():
    # The example of the Holm–Bonferroni method (Wikipedia, "Holm–Bonferroni method"; R: p.adjust(p, "holm")):
    # p = (0.01, 0.04, 0.03, 0.005), alpha 0.05. Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06,
    # max(0.04·1, 0.06) = 0.06; H1 and H4 are rejected, H2 and H3 are not.
    res = st.holm([0.01, 0.04, 0.03, 0.005])
    assert res.adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-12)
    assert res.reject.tolist() == [True, False, False, True]
    adjusted, reject = st.holm([0.01, 0.04, 0.03, 0.005], alpha=0.1)  # unpacks; at 0.1 all four are rejected
    assert reject.all() and adjusted == pytest.approx(res.adjusted)


def test_holm_leaves_nan_out_of_the_family():
    # Claims not run have no p-value: the family is the four that were run, so the others' adjustment is unchanged.
    res = st.holm([math.nan, 0.01, 0.04, math.nan, 0.03, 0.005])
    assert np.isnan(res.adjusted[[0, 3]]).all() and not res.reject[[0, 3]].any()
    assert res.adjusted[[1, 2, 4, 5]] == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-12)
    none = st.holm([math.nan, math.nan])
    assert np.isnan(none.adjusted).all() and not none.reject.any()
    assert st.holm([]).adjusted.size == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        st.holm([0.5, 1.2])
    with pytest.raises(ValueError, match="alpha"):
        st.holm([0.5], alpha=0.0)


def test_holm_invariants():
    rng = np.random.default_rng(4)
    for m in (1, 2, 5, 12):
        for _ in range(6):  # few: statsmodels' Holm runs gc.collect() on every call
            p = rng.uniform(0, 1, m) ** 3  # many small ones
            res = st.holm(p)
            adj = res.adjusted
            assert (adj >= p - 1e-15).all() and (adj <= 1.0).all()
            order = np.argsort(p, kind="stable")
            assert (np.diff(adj[order]) >= -1e-15).all()  # monotone in the raw order
            assert adj == pytest.approx(_holm_by_hand(p), rel=1e-12, abs=1e-15)
            assert res.reject.tolist() == (adj <= 0.05).tolist()
            assert (adj <= np.minimum(1.0, m * p) + 1e-15).all()  # never more than Bonferroni


def test_welch_pvalue_textbook_sleep():
    # R, example(t.test): t.test(extra ~ group, data = sleep) — Welch Two Sample t-test: t = -1.8608,
    # df = 17.776, p-value = 0.07939, 95 percent confidence interval -3.3654832 0.2054832.
    assert st.welch_pvalue(SLEEP_1, SLEEP_2) == pytest.approx(0.07939, abs=5e-6)
    w = st.welch_interval(SLEEP_1, SLEEP_2)
    assert w["df"] == pytest.approx(17.776, abs=5e-4)
    assert (w["low"], w["high"]) == pytest.approx((-3.3654832, 0.2054832), abs=5e-8)
    # One-sided: t < 0, so P(T < t) is half the two-sided p and P(T > t) the rest.
    assert st.welch_pvalue(SLEEP_1, SLEEP_2, "less") == pytest.approx(0.07939 / 2, abs=5e-6)
    assert st.welch_pvalue(SLEEP_1, SLEEP_2, "greater") == pytest.approx(1 - 0.07939 / 2, abs=5e-6)
    # R: t.test(extra ~ group, data = sleep, paired = TRUE) — the one-sample t test of the differences against 0:
    # t = -4.0621, df = 9, p-value = 0.002833, 95 percent confidence interval -2.4598858 -0.7001142.
    d = np.subtract(SLEEP_1, SLEEP_2)
    assert st.welch_pvalue(d, 0.0) == pytest.approx(0.002833, abs=5e-7)
    one = st.welch_interval(d, 0.0)
    assert one["df"] == 9 and (one["low"], one["high"]) == pytest.approx((-2.4598858, -0.7001142), abs=5e-8)
    # Against a published number c the test is that of the differences to c: the sleep differences against -1.58
    # (their own mean) give t = 0 and p = 1.
    assert st.welch_pvalue(d, float(d.mean())) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="alternative"):
        st.welch_pvalue(SLEEP_1, SLEEP_2, "larger")


def test_welch_pvalue_is_scipys():
    rng = np.random.default_rng(5)
    a, b = rng.normal(80, 1, 4), rng.normal(79, 2, 6)
    for alt in ("two-sided", "greater", "less"):
        assert st.welch_pvalue(a, b, alt) == sps.ttest_ind(a, b, equal_var=False, alternative=alt).pvalue
        assert st.welch_pvalue(a, 79.0, alt) == sps.ttest_1samp(a, 79.0, alternative=alt).pvalue


@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_interval_excludes_zero_iff_two_sided_p_below_alpha(level):
    # The interval and the p-value are one test: 0 outside the `level` interval <=> two-sided p < 1 - level, and
    # the verdict (holds / reversed) follows the sign of the difference.
    rng = np.random.default_rng(6)
    seen = set()
    for _ in range(400):
        na, nb = rng.integers(2, 7, size=2)
        a = rng.normal(rng.normal(0, 1.5), rng.uniform(0.2, 2), na)
        b: object = float(rng.normal(0, 1)) if rng.uniform() < 0.3 else rng.normal(0, rng.uniform(0.2, 2), nb)
        rec = st.welch_test(a, b, level)
        excludes = rec["low"] > 0 or rec["high"] < 0
        assert excludes == (rec["p_two_sided"] < 1 - level)
        seen.add(excludes)
        if rec["diff"] > 0:
            assert rec["p_greater"] == pytest.approx(rec["p_two_sided"] / 2)
        v = st.verdict(rec, "x")
        assert v == ("holds" if excludes and rec["diff"] > 0 else "reversed" if excludes else "not resolved at x seeds")
    assert seen == {True, False}


def test_welch_test_edge_cases():
    one = st.welch_test([80.0], [79.0, 78.0])  # one seed: no spread, no p
    assert math.isnan(one["p_two_sided"]) and math.isnan(one["p_greater"]) and math.isnan(one["low"])
    same = st.welch_test([5.0, 5.0], [4.0, 4.0])  # identical seeds: the point interval [1, 1] excludes 0, p = 0
    assert (same["low"], same["p_two_sided"], same["p_greater"]) == (1.0, 0.0, 0.0)
    assert st.welch_pvalue([4.0, 4.0], [5.0, 5.0], "greater") == 1.0
    assert st.welch_pvalue([4.0, 4.0], [4.0, 4.0]) == 1.0  # [0, 0] does not exclude 0
    assert st.welch_pvalue([4.0, 4.0, 4.0], 3.5) == 0.0
    with pytest.raises(ValueError, match="at least one value"):
        st.welch_pvalue([], [1.0])


def test_holm_verdicts():
    # Two orderings that hold one by one (p = 0.03, 0.04 < 0.05) are not resolved as a family of two (Holm: 0.06,
    # 0.06); a claim without a p-value stays out of the family.
    recs = [{"diff": 1.0, "p_two_sided": 0.03}, {"diff": 0.5, "p_two_sided": 0.04},
            {"diff": 2.0, "p_two_sided": math.nan}]
    out = st.holm_verdicts(recs)
    assert [r["verdict_holm"] for r in out] == ["not resolved after Holm over 2 claims"] * 2 + [""]
    assert [r["p_holm"] for r in out][:2] == pytest.approx([0.06, 0.06]) and math.isnan(out[2]["p_holm"])
    # The classic family, with signs: the two rejected are holds / reversed by the sign of their difference.
    recs = [{"ours_diff": d, "p": p} for d, p in ((0.8, 0.01), (0.3, 0.04), (-0.2, 0.03), (-1.5, 0.005))]
    out = st.holm_verdicts(recs, diff_key="ours_diff", p_key="p")
    assert [r["verdict_holm"] for r in out] == ["holds", "not resolved after Holm over 4 claims",
                                                "not resolved after Holm over 4 claims", "reversed"]
    assert st.holm_verdicts([{"diff": 1.0, "p_two_sided": 0.2}])[0]["verdict_holm"] == \
        "not resolved after Holm over 1 claim"
    assert st.holm_verdicts([]) == []


def test_holm_verdicts_on_welch_records():
    # On seed records: what holds after correction holds before it, with the same direction; the adjusted p-values
    # are holm() of the two-sided ones.
    rng = np.random.default_rng(7)
    recs = [st.welch_test(rng.normal(mu, 0.5, 3), rng.normal(0.0, 0.5, 3)) for mu in (2.0, -2.0, 0.3, 0.0, 1.0)]
    recs.append(st.welch_test([80.0], [79.0, 78.0]))  # one seed: no p-value
    out = st.holm_verdicts(recs)
    assert [r["p_holm"] for r in out] == pytest.approx(list(st.holm([r["p_two_sided"] for r in recs]).adjusted),
                                                       nan_ok=True)
    for rec, o in zip(recs, out):
        if o["verdict_holm"] in ("holds", "reversed"):
            assert st.verdict(rec, "3+3") == o["verdict_holm"]
    assert out[0]["verdict_holm"] == "holds" and out[1]["verdict_holm"] == "reversed" and out[-1]["verdict_holm"] == ""


def test_tost_published_r_example():
    # R: equivalence::tost(clinic$var1[1:15], clinic$var1[16:30], epsilon = 0.6) — Welch TOST: mean difference
    # 0.1646667, df 26.74848, p-value 0.04853084, "rejected" (equivalent); on var2: mean difference 0.5626667,
    # df 24.11000, p-value 0.4317937, "not rejected".
    r1 = st.tost(*CLINIC_VAR1, margin=0.6)
    assert r1["p"] == pytest.approx(0.04853083976236974, abs=1e-12)
    assert r1["df"] == pytest.approx(26.7484787582315, abs=1e-10) and r1["diff"] == pytest.approx(0.1646666666666667)
    assert r1["verdict"] == "equivalent within ±0.6 pp"
    r2 = st.tost(*CLINIC_VAR2, margin=0.6)
    assert r2["p"] == pytest.approx(0.4317936812594803, abs=1e-12) and r2["df"] == pytest.approx(24.11000151062728)
    assert r2["verdict"] == "not shown equivalent"


def test_tost_symmetric_cases_by_the_t_table():
    # Equal means: the two one-sided tests are mirror images, so their p-values are equal; with the margin set to
    # t_{0.975, df} standard errors each is exactly 0.025. Two samples [1, 2, 3]: se = sqrt(2/3), Welch df = 4,
    # t_{0.975, 4} = 2.776445 (any t table).
    r = st.tost([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], margin=2.7764451 * math.sqrt(2 / 3))
    assert r["p_lower"] == pytest.approx(r["p_upper"]) and r["df"] == pytest.approx(4.0)
    assert r["p"] == pytest.approx(0.025, abs=1e-8) and r["verdict"] == "equivalent within ±2.26696 pp"
    # One sample [80, 82, 84] against the published 82: se = 2/sqrt(3), df = 2, t_{0.975, 2} = 4.302653.
    r = st.tost([80.0, 82.0, 84.0], 82.0, margin=4.3026527 * 2 / math.sqrt(3))
    assert r["p_lower"] == pytest.approx(r["p_upper"]) and r["df"] == 2
    assert r["p"] == pytest.approx(0.025, abs=1e-8)


def test_tost_is_two_one_sided_welch_tests_and_the_90_interval():
    # TOST at alpha = the two one-sided Welch tests of SciPy, and equivalence at alpha <=> the (1 − 2 alpha) Welch
    # interval inside ±margin (Schuirmann 1987).
    rng = np.random.default_rng(8)
    seen = set()
    for _ in range(300):
        a, b = rng.normal(rng.normal(0, 0.7), 0.5, 4), rng.normal(0.0, rng.uniform(0.2, 1.0), 3)
        m = float(rng.uniform(0.2, 2.0))
        r = st.tost(a, b, m)
        p_lo = sps.ttest_ind(a + m, b, equal_var=False, alternative="greater").pvalue  # diff > -m
        p_up = sps.ttest_ind(a - m, b, equal_var=False, alternative="less").pvalue  # diff < m
        assert (r["p_lower"], r["p_upper"]) == pytest.approx((p_lo, p_up), rel=1e-9, abs=1e-14)
        assert r["p"] == pytest.approx(max(p_lo, p_up), rel=1e-9, abs=1e-14)
        w = st.welch_interval(a, b, 0.90)
        inside = -m < w["low"] and w["high"] < m
        assert inside == (r["p"] < 0.05) == r["verdict"].startswith("equivalent")
        seen.add(inside)
        c = float(rng.normal(0, 0.7))  # one sample against a number: SciPy's one-sample t tests
        r1 = st.tost(a, c, m)
        p1 = max(sps.ttest_1samp(a, c - m, alternative="greater").pvalue,
                 sps.ttest_1samp(a, c + m, alternative="less").pvalue)
        assert r1["p"] == pytest.approx(p1, rel=1e-9, abs=1e-14)
    assert seen == {True, False}


def test_tost_edge_cases():
    assert st.tost([80.0], [80.0, 80.5], 1.0)["verdict"] == "not shown equivalent (no spread)"
    assert math.isnan(st.tost([80.0], 80.0, 1.0)["p"])
    same = st.tost([80.0, 80.0], [80.5, 80.5], 1.0)  # no spread at all: decided by the means
    assert same["p"] == 0.0 and same["verdict"] == "equivalent within ±1 pp"
    assert st.tost([80.0, 80.0], [81.5, 81.5], 1.0)["p"] == 1.0
    with pytest.raises(ValueError, match="margin"):
        st.tost([1.0, 2.0], [1.0, 2.0], 0.0)
    with pytest.raises(ValueError, match="alpha"):
        st.tost([1.0, 2.0], [1.0, 2.0], 1.0, alpha=0.5)


def _power_by_hand(d, n1, n2=None, alpha=0.05):
    """The two-sided t test's power from SciPy's noncentral t: nc = d sqrt(n1 n2 / (n1 + n2)), df = n1 + n2 - 2
    (n2 None: nc = d sqrt(n1), df = n1 - 1)."""
    nc, df = (d * math.sqrt(n1), n1 - 1) if n2 is None else (d * math.sqrt(n1 * n2 / (n1 + n2)), n1 + n2 - 2)
    crit = sps.t.isf(alpha / 2, df)
    return sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc)


def test_seeds_needed_cohens_table():
    # Cohen (1988), Table 2.4.1 (two-sided alpha = 0.05, power 0.80): d = 0.5 needs n = 64 per group, d = 0.8 n = 26.
    assert st.seeds_needed(0.5, 1.0) == 64 and st.seeds_needed(0.8, 1.0) == 26
    assert st.seeds_needed(1.0, 2.0) == 64 and st.seeds_needed(-0.4, 0.5) == 26  # d = |diff| / sd, in any units
    # d = 0.2: 394 per group (G*Power's exact noncentral t, 788 in all; Cohen's table, by an approximation, 393).
    assert st.seeds_needed(0.2, 1.0) == 394
    # One sample (against a published number), d = 0.5, power 0.80: n = 34 (G*Power, one-sample t test).
    assert st.seeds_needed(0.5, 1.0, one_sample=True) == 34
    # Power 0.9 needs more, a stricter alpha needs more.
    assert st.seeds_needed(0.5, 1.0, power=0.9) > 64 and st.seeds_needed(0.5, 1.0, alpha=0.01) > 64


def test_detectable_difference_is_the_power_solution():
    # At the detectable difference the power is the one asked for (SciPy's noncentral t, independent of statsmodels).
    for sd, n1, n2 in ((1.0, 64, 64), (0.5, 3, 3), (2.0, 3, 5), (0.3, 2, 2), (1.0, 5, None), (0.4, 2, None)):
        for power in (0.8, 0.9):
            dd = st.detectable_difference(sd, n1, n2, power=power)
            assert _power_by_hand(dd / sd, n1, n2) == pytest.approx(power, abs=1e-4)
    # Cohen's d = 0.5 row: 64 per group detect just under 0.5 SD, 63 just over it.
    assert st.detectable_difference(1.0, 64, 64) < 0.5 < st.detectable_difference(1.0, 63, 63)
    assert st.detectable_difference(2.0, 64, 64) == pytest.approx(2 * st.detectable_difference(1.0, 64, 64))
    assert st.detectable_difference(1.0, 9, 9) < st.detectable_difference(1.0, 3, 3)  # more seeds: finer
    assert st.detectable_difference(1.0, 3, 3) < st.detectable_difference(1.0, 3, None)  # vs a number: one sample
    assert math.isnan(st.detectable_difference(math.nan, 3, 3))
    assert math.isnan(st.detectable_difference(1.0, 1, None)) and math.isnan(st.detectable_difference(1.0, 1, 1))
    assert st.detectable_difference(0.0, 3, 3) == 0.0


@pytest.mark.parametrize("one_sample", [False, True])
def test_seeds_needed_and_detectable_difference_agree(one_sample):
    # At seeds_needed(diff) the detectable difference is at most diff (up to the root finder's 1e-5 in effect size),
    # at one seed fewer it is above diff; the power at n reaches the target, at n - 1 it does not. Large effects
    # (few seeds, where the noncentral t is far out) included.
    for diff, sd in ((0.5, 1.0), (1.2, 0.7), (3.0, 0.4), (0.3, 0.25), (5.0, 0.3), (8.0, 0.3), (40.0, 1.0)):
        n = st.seeds_needed(diff, sd, one_sample=one_sample)
        assert n == int(n) and n >= 2
        n = int(n)
        n2 = None if one_sample else n
        assert st.detectable_difference(sd, n, n2) <= diff + 2e-5 * sd
        assert np.nan_to_num(_power_by_hand(diff / sd, n, n2), nan=1.0) >= 0.8
        if n > 2:
            assert st.detectable_difference(sd, n - 1, None if one_sample else n - 1) > diff
            assert _power_by_hand(diff / sd, n - 1, None if one_sample else n - 1) < 0.8


def test_seeds_needed_edge_cases():
    assert math.isnan(st.seeds_needed(math.nan, 1.0)) and math.isnan(st.seeds_needed(1.0, math.nan))
    assert st.seeds_needed(0.0, 1.0) == math.inf
    assert st.seeds_needed(1.0, 0.0) == 2
    assert st.seeds_needed(20.0, 1.0) == 2 and st.seeds_needed(20.0, 1.0, one_sample=True) >= 2
    with pytest.raises(ValueError, match="power"):
        st.seeds_needed(1.0, 1.0, power=1.0)
