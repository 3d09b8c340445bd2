"""slnl.report.stats: Welch's interval (against the Welch–Satterthwaite formula, SciPy's t-test and the numbers of
the earlier hand-written Student's t), its coverage, the verdict on an ordering, and the resolution of seeds."""
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
