"""Seed statistics: the interval of a difference of means, the verdict on an ordering, and the smallest difference
a set of seeds can resolve.

Every comparison here is between accuracies (in %) of runs that differ only in their seed. The paper reports one
number per cell; an ordering between two of our rows is a claim only with its interval over seeds:

* ``welch_interval``: mean(a) − mean(b) with a two-sided interval from Welch's t (unequal variances; the
  Welch–Satterthwaite degrees of freedom ``df = (v_a + v_b)² / (v_a²/(n_a−1) + v_b²/(n_b−1))`` with
  ``v = s²/n``). Welch rather than Student's pooled t because the rows of a table are different models whose seed
  spreads need not be equal. Against a published constant (no seeds) it is the one-sample t interval.
* ``verdict``: ``holds`` (interval above 0), ``reversed`` (below 0), ``not resolved at <n> seeds`` (contains 0, or
  no spread to measure).
* ``pooled_sd`` and ``resolvable_difference``: the *resolution* of an experiment. With the seed-to-seed standard
  deviation ``s`` pooled over a table's rows (``df = Σ(n_i − 1)``), two rows of ``n_a`` and ``n_b`` seeds resolve a
  difference only when it exceeds the half-width of the equal-variance ``level`` interval,
  ``t_{(1+level)/2, df} · s · sqrt(1/n_a + 1/n_b)``. That half-width is what we call the smallest difference these
  seeds can resolve; claims whose stated margin is below it cannot be checked at this number of seeds.

What a reviewer can cite, each computed by SciPy or statsmodels:

* ``welch_pvalue`` / ``welch_test``: the p-value of Welch's t test (``scipy.stats.ttest_ind(equal_var=False)``;
  against a published number the one-sample ``scipy.stats.ttest_1samp``), two-sided or one-sided; ``welch_test``
  is ``welch_interval`` with both p-values, one record per claim. The two-sided p is below ``1 − level`` exactly
  when the ``level`` interval excludes 0.
* ``holm`` and ``holm_verdicts``: Holm's step-down correction of a family of claims' p-values
  (``statsmodels.stats.multitest.multipletests``), and the verdict of each claim after it.
* ``tost``: equivalence within ±margin by two one-sided Welch tests (statsmodels ``ttost_ind``, ``ttost_mean``).
* ``detectable_difference`` and ``seeds_needed``: the power of the two-sample t test (statsmodels
  ``TTestIndPower``; ``TTestPower`` against a published number) — the difference that given seeds detect, and the
  seeds a difference needs.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Iterable, Literal, Mapping, NamedTuple, Sequence

import numpy as np
from scipy import optimize
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower
from statsmodels.stats.weightstats import DescrStatsW, ttost_ind
from statsmodels.tools.sm_exceptions import ConvergenceWarning

HOLDS = "holds"
REVERSED = "reversed"
NOT_RESOLVED = "not resolved"  # followed by " at <n> seeds" (see ``verdict``) or " after Holm over <m> claims"
EQUIVALENT = "equivalent within"  # followed by " ±<margin> pp" (see ``tost``)
NOT_EQUIVALENT = "not shown equivalent"
ALTERNATIVES = ("two-sided", "greater", "less")

Alternative = Literal["two-sided", "greater", "less"]


def _samples(a: Sequence[float], b: Sequence[float] | float, name: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(a, b, const)`` as float arrays (a constant ``b`` as one value, ``const`` True); ValueError when empty."""
    aa = np.asarray(a, dtype=float)
    const = np.isscalar(b)
    bb = np.asarray([b] if const else b, dtype=float)
    if aa.size == 0 or bb.size == 0:
        raise ValueError(f"{name}: both samples need at least one value")
    return aa, bb, const


def _no_spread(a: np.ndarray, b: np.ndarray, const: bool) -> bool:
    """True when a side has fewer than two values: no standard error to test with."""
    return a.size < 2 or (not const and b.size < 2)


def _se2(a: np.ndarray, b: np.ndarray, const: bool) -> float:
    """Welch's squared standard error of ``mean(a) − mean(b)`` (``b`` a constant: of ``mean(a)`` alone)."""
    return float(a.var(ddof=1) / a.size + (0.0 if const else b.var(ddof=1) / b.size))


def welch_interval(a: Sequence[float], b: Sequence[float] | float, level: float = 0.95) -> dict[str, Any]:
    """Difference of means ``mean(a) − mean(b)`` with a ``level`` interval by Welch's t.

    ``b`` may be a constant (a published number): then it is the one-sample t interval of ``mean(a) − b``. Returns
    ``diff``, ``low``, ``high``, ``half`` (the half-width) and ``df``. ``low``/``high``/``half`` are NaN when a side
    has fewer than two values (no spread to measure). When both sample variances are zero (identical seeds) the
    interval is the point ``[diff, diff]`` with ``df = inf``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"welch_interval: level must be in (0, 1), got {level}")
    a, bb, const = _samples(a, b, "welch_interval")
    diff = float(a.mean() - bb.mean())
    if a.size < 2 or (not const and bb.size < 2):
        return {"diff": diff, "low": math.nan, "high": math.nan, "half": math.nan, "df": math.nan}
    va = a.var(ddof=1) / a.size
    vb = 0.0 if const else bb.var(ddof=1) / bb.size
    se2 = va + vb
    if se2 == 0.0:
        return {"diff": diff, "low": diff, "high": diff, "half": 0.0, "df": math.inf}
    # Welch–Satterthwaite; a side with zero variance contributes nothing (its term is 0, not 0/0).
    df = se2 ** 2 / (va ** 2 / (a.size - 1) + (vb ** 2 / (bb.size - 1) if vb else 0.0))
    half = float(sps.t.ppf(0.5 + level / 2.0, df)) * math.sqrt(se2)
    return {"diff": diff, "low": diff - half, "high": diff + half, "half": half, "df": float(df)}


def seeds_label(n_a: int, n_b: int | None = None) -> str:
    """``"3+3"`` (two rows' seeds) or ``"3"`` (one row against a published constant)."""
    return f"{n_a}" if n_b is None else f"{n_a}+{n_b}"


def verdict(interval: dict[str, Any], seeds: str) -> str:
    """The ordering ``a > b`` as the interval says it: ``holds`` when the interval lies above 0, ``reversed`` below
    0, otherwise ``not resolved at <seeds> seeds`` (``seeds``: ``seeds_label``), with ``(no spread)`` appended when
    a side had one seed and so no interval."""
    low, high = interval["low"], interval["high"]
    at = f"{NOT_RESOLVED} at {seeds} seed" + ("" if seeds == "1" else "s")
    if math.isnan(low) or math.isnan(high):
        return f"{at} (no spread)"
    if low > 0:
        return HOLDS
    if high < 0:
        return REVERSED
    return at


def pooled_sd(groups: Sequence[Sequence[float]]) -> tuple[float, int]:
    """``(s, df)``: the within-group standard deviation pooled over every group with at least two values,
    ``s² = Σ (n_i − 1) s_i² / Σ (n_i − 1)``, and its degrees of freedom ``Σ (n_i − 1)``. ``(nan, 0)`` when no group
    has two values."""
    ss, df = 0.0, 0
    for g in groups:
        g = np.asarray(g, dtype=float)
        if g.size >= 2:
            ss += float(((g - g.mean()) ** 2).sum())
            df += g.size - 1
    return (math.sqrt(ss / df), df) if df else (math.nan, 0)


def resolvable_difference(sd: float, df: int, n_a: int, n_b: int | None = None, level: float = 0.95) -> float:
    """The smallest difference of means that two rows of ``n_a`` and ``n_b`` seeds (``n_b`` None: one row against
    a published constant) resolve at ``level``, given a seed standard deviation ``sd`` estimated with ``df`` degrees
    of freedom: ``t_{(1+level)/2, df} · sd · sqrt(1/n_a + 1/n_b)``. NaN when ``df`` is 0 (no spread measured)."""
    if df <= 0 or n_a < 1 or (n_b is not None and n_b < 1) or math.isnan(sd):
        return math.nan
    scale = math.sqrt(1.0 / n_a + (1.0 / n_b if n_b is not None else 0.0))
    return float(sps.t.ppf(0.5 + level / 2.0, df)) * sd * scale


def welch_pvalue(a: Sequence[float], b: Sequence[float] | float, alternative: Alternative = "two-sided") -> float:
    """The p-value of Welch's t test of ``mean(a) − mean(b)`` against 0 (Welch 1947, *Biometrika* 34: 28–35),
    by ``scipy.stats.ttest_ind(a, b, equal_var=False, alternative=...)``.

    ``b`` may be a constant (a published number): then it is the one-sample t test of ``mean(a)`` against it,
    ``scipy.stats.ttest_1samp(a, b, alternative=...)``. ``alternative``: ``"two-sided"`` (any ordering),
    ``"greater"`` (the ordering ``a > b``, the claim "better > worse") or ``"less"``. NaN when a side has fewer than
    two values (no spread, as for ``welch_interval``). When neither side has any spread the test statistic is ±∞
    and the p-value is 0 for an ordering the means show, 1 otherwise — the point interval of ``welch_interval``.
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"welch_pvalue: alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    a, bb, const = _samples(a, b, "welch_pvalue")
    if _no_spread(a, bb, const):
        return math.nan
    if _se2(a, bb, const) == 0.0:
        diff = float(a.mean() - bb.mean())
        shown = {"two-sided": diff != 0.0, "greater": diff > 0.0, "less": diff < 0.0}[alternative]
        return 0.0 if shown else 1.0
    with warnings.catch_warnings():  # seeds equal up to rounding: the test is defined (as is welch_interval)
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        if const:
            return float(sps.ttest_1samp(a, float(bb[0]), alternative=alternative).pvalue)
        return float(sps.ttest_ind(a, bb, equal_var=False, alternative=alternative).pvalue)


def welch_test(a: Sequence[float], b: Sequence[float] | float, level: float = 0.95) -> dict[str, Any]:
    """One claim's record: ``welch_interval(a, b, level)`` (``diff``, ``low``, ``high``, ``half``, ``df``) with
    ``p_two_sided`` (Welch's test of any ordering, ``welch_pvalue``) and ``p_greater`` (one-sided, of ``a > b``).

    The interval and ``p_two_sided`` are the same test: the interval excludes 0 exactly when
    ``p_two_sided < 1 − level``. ``p_two_sided`` is the one ``holm_verdicts`` corrects over a family of claims.
    """
    rec = welch_interval(a, b, level)
    rec.update(p_two_sided=welch_pvalue(a, b, "two-sided"), p_greater=welch_pvalue(a, b, "greater"))
    return rec


class Holm(NamedTuple):
    """Holm-adjusted p-values and which hypotheses are rejected at the family-wise level ``alpha``."""

    adjusted: np.ndarray
    reject: np.ndarray


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> Holm:
    """Holm's step-down correction (Holm 1979, *Scand. J. Statist.* 6: 65–70) of a family of p-values, by
    ``statsmodels.stats.multitest.multipletests(method="holm")``: the family-wise error rate is at most ``alpha``
    under any dependence between the tests.

    NaN p-values (claims not run, or without spread) are left out of the family — they do not count in its size —
    and come back NaN, not rejected. Returns ``Holm(adjusted, reject)``, arrays in the order given.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"holm: alpha must be in (0, 1), got {alpha}")
    p = np.asarray(pvalues, dtype=float).reshape(-1)
    tested = ~np.isnan(p)
    if ((p[tested] < 0.0) | (p[tested] > 1.0)).any():
        raise ValueError(f"holm: p-values must be in [0, 1], got {p[tested].tolist()}")
    adjusted, reject = np.full(p.shape, math.nan), np.zeros(p.shape, dtype=bool)
    if tested.any():
        rej, adj, _, _ = multipletests(p[tested], alpha=alpha, method="holm")
        adjusted[tested], reject[tested] = adj, rej
    return Holm(adjusted, reject)


def holm_verdicts(records: Iterable[Mapping[str, Any]], alpha: float = 0.05, *, diff_key: str = "diff",
                  p_key: str = "p_two_sided") -> list[dict[str, Any]]:
    """The verdict on each claim of one family after Holm's correction (``holm``) of their two-sided p-values.

    ``records``: one mapping per claim (``welch_test`` records, or a frame's ``to_dict("records")``) with the
    difference better − worse under ``diff_key`` and the two-sided p-value under ``p_key``. Returns, in the same
    order, ``{"p_holm": adjusted p, "verdict_holm": ...}``: ``holds`` (rejected, better ahead), ``reversed``
    (rejected, worse ahead), ``not resolved after Holm over <m> claims`` (``m``: the family's size), or ``""`` for a
    claim without a p-value (left out of the family; its own verdict says why).
    """
    recs = list(records)
    pvals = [float(r.get(p_key, math.nan)) for r in recs]
    res = holm(pvals, alpha)
    m = int(np.sum(~np.isnan(res.adjusted)))
    unresolved = f"{NOT_RESOLVED} after Holm over {m} claim" + ("" if m == 1 else "s")
    out = []
    for r, p_adj, rejected in zip(recs, res.adjusted, res.reject):
        diff = float(r.get(diff_key, math.nan))
        if math.isnan(p_adj):
            v = ""
        elif rejected and diff > 0:
            v = HOLDS
        elif rejected and diff < 0:
            v = REVERSED
        else:
            v = unresolved
        out.append({"p_holm": float(p_adj), "verdict_holm": v})
    return out


def tost(a: Sequence[float], b: Sequence[float] | float, margin: float, alpha: float = 0.05) -> dict[str, Any]:
    """Equivalence of ``mean(a)`` and ``mean(b)`` within ±``margin`` (percentage points) by two one-sided tests
    (TOST; Schuirmann 1987, *J. Pharmacokinet. Biopharm.* 15: 657–680): ``diff > −margin`` and ``diff < margin``,
    each a one-sided Welch t test, by ``statsmodels.stats.weightstats.ttost_ind(a, b, −margin, margin,
    usevar="unequal")``. ``b`` a constant (a published number): the one-sample t tests of ``mean(a)`` within
    ``b ± margin``, ``DescrStatsW(a).ttost_mean(b − margin, b + margin)``.

    Returns ``diff``, ``p`` (the larger of the two one-sided p-values), ``p_lower`` (of ``diff > −margin``),
    ``p_upper`` (of ``diff < margin``), ``df``, ``margin`` and ``verdict``: ``equivalent within ±<margin> pp`` when
    ``p < alpha`` — equivalently, when the ``1 − 2·alpha`` Welch interval lies inside ±margin — otherwise
    ``not shown equivalent`` (with ``(no spread)`` when a side has one value, ``p`` then NaN). Without any spread the
    tests are decided by the means: ``p`` is 0 strictly inside ±margin, 1 otherwise.
    """
    if not margin > 0:
        raise ValueError(f"tost: margin must be > 0, got {margin}")
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"tost: alpha must be in (0, 0.5), got {alpha}")
    a, bb, const = _samples(a, b, "tost")
    diff = float(a.mean() - bb.mean())
    rec: dict[str, Any] = {"diff": diff, "p": math.nan, "p_lower": math.nan, "p_upper": math.nan, "df": math.nan,
                           "margin": float(margin)}
    if _no_spread(a, bb, const):
        return {**rec, "verdict": f"{NOT_EQUIVALENT} (no spread)"}
    if _se2(a, bb, const) == 0.0:
        lower, upper = float(not diff > -margin), float(not diff < margin)
        rec.update(p=max(lower, upper), p_lower=lower, p_upper=upper, df=math.inf)
    else:
        if const:
            p, (_, p1, df1), (_, p2, _) = DescrStatsW(a).ttost_mean(float(bb[0]) - margin, float(bb[0]) + margin)
        else:
            p, (_, p1, df1), (_, p2, _) = ttost_ind(a, bb, -margin, margin, usevar="unequal")
        rec.update(p=float(p), p_lower=float(p1), p_upper=float(p2), df=float(df1))
    verdict_ = f"{EQUIVALENT} ±{margin:g} pp" if rec["p"] < alpha else NOT_EQUIVALENT
    return {**rec, "verdict": verdict_}


def detectable_difference(sd: float, n1: int, n2: int | None, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true difference of means (in the data's units) that a two-sided t test at level ``alpha``
    detects with probability ``power``, with ``n1`` and ``n2`` seeds and seed standard deviation ``sd`` (Cohen 1988,
    *Statistical Power Analysis for the Behavioral Sciences*, ch. 2): the effect size from
    ``statsmodels.stats.power.TTestIndPower().solve_power(effect_size=None, nobs1=n1, ratio=n2/n1, ...)`` times
    ``sd`` (the pooled SD, ``pooled_sd``). ``n2`` None: one row against a published number, the one-sample
    ``TTestPower`` at ``n1``.

    The power is that of the pooled-variance (Student) t test, df = n1 + n2 − 2; the Welch test's is close to it
    for equal n (its df is at most that, so it detects slightly less at very few seeds). statsmodels' root finder
    solves the effect size to about 1e-5; where its answer does not give the power asked for (it can stop on a wrong
    root at two or three seeds and high power, where SciPy's noncentral t is NaN), the same power equation is solved
    by ``scipy.optimize.brentq``. NaN when ``sd`` is NaN or the test has no degrees of freedom; 0 when ``sd`` is 0.
    """
    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0):
        raise ValueError(f"detectable_difference: alpha and power must be in (0, 1), got {alpha}, {power}")
    df = n1 - 1 if n2 is None else n1 + n2 - 2
    if math.isnan(sd) or n1 < 1 or (n2 is not None and n2 < 1) or df < 1:
        return math.nan
    if sd == 0.0:
        return 0.0
    analysis: TTestIndPower | TTestPower = TTestPower() if n2 is None else TTestIndPower()
    ratio = 1.0 if n2 is None else n2 / n1
    nobs = {"nobs": n1} if n2 is None else {"nobs1": n1, "ratio": ratio}
    with warnings.catch_warnings():  # a failed root finder is caught by the check below
        warnings.simplefilter("ignore", ConvergenceWarning)
        d = float(np.ravel(analysis.solve_power(effect_size=None, alpha=alpha, power=power, **nobs))[0])

    def short(x: float) -> float:
        return _power(analysis, x, n1, alpha, ratio) - power

    if not (math.isfinite(d) and abs(short(d)) < _POWER_TOL):
        # statsmodels' root finder can stop on a wrong root where the noncentral t is NaN (few seeds, high power):
        # solve the same power equation with SciPy's brentq, bracketed from d = 0 (power alpha) upwards.
        hi = 1.0
        while short(hi) < 0 and hi < 1e6:
            hi *= 2.0
        if short(0.0) >= 0:  # power asked for at most alpha: a difference of 0 reaches it
            d = 0.0
        else:
            d = float(optimize.brentq(short, 0.0, hi, xtol=1e-12)) if short(hi) >= 0 else math.nan
    return d * float(sd)


_MAX_SEED_SEARCH = 10_000
_POWER_TOL = 1e-4  # how close to the power asked for statsmodels' effect size must come to be taken


def _power(analysis: TTestIndPower | TTestPower, d: float, n: int, alpha: float, ratio: float = 1.0) -> float:
    """The two-sided t test's power at effect size ``d`` > 0 and ``n`` seeds (``n`` and ``ratio·n`` for two
    samples), by statsmodels. Where SciPy's noncentral t gives NaN for the tail away from the true difference (far
    out, at very large effects), the tail toward it alone: the other is negligible there (below 1e-15 where SciPy
    still computes it)."""
    kw = {} if isinstance(analysis, TTestPower) else {"ratio": ratio}
    pw = float(analysis.power(d, n, alpha, **kw))
    return pw if not math.isnan(pw) else float(analysis.power(d, n, alpha / 2.0, alternative="larger", **kw))


def seeds_needed(diff: float, sd: float, alpha: float = 0.05, power: float = 0.8, *,
                 one_sample: bool = False) -> float:
    """Seeds per row for a two-sided t test at level ``alpha`` to detect a true difference ``diff`` with
    probability ``power``, given the seed standard deviation ``sd`` (Cohen 1988, ch. 2): ``nobs1`` from
    ``statsmodels.stats.power.TTestIndPower().solve_power(effect_size=|diff|/sd, nobs1=None, ratio=1, ...)``,
    rounded up, at least 2 (a spread needs two seeds). ``one_sample``: one row against a published number
    (``TTestPower``).

    Pooled-variance t, as ``detectable_difference``: at the returned n, ``detectable_difference(sd, n, n) ≤
    |diff|``. The root finder's n is checked on the integers against the power itself (``power(n) ≥ power >
    power(n − 1)``), and replaced by a search up from 2 seeds where the root finder fails (very large effects, for
    which the power at two seeds is near ``power`` already). A whole number as a float, to sit in a table column:
    NaN when ``diff`` or ``sd`` is NaN, ∞ when ``diff`` is 0, 2 when ``sd`` is 0.
    """
    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0):
        raise ValueError(f"seeds_needed: alpha and power must be in (0, 1), got {alpha}, {power}")
    if math.isnan(diff) or math.isnan(sd):
        return math.nan
    if diff == 0.0:
        return math.inf
    if sd == 0.0:
        return 2.0
    d = abs(diff) / sd
    analysis: TTestIndPower | TTestPower = TTestPower() if one_sample else TTestIndPower()
    with warnings.catch_warnings():  # a failed root finder returns NaN, handled below
        warnings.simplefilter("ignore", ConvergenceWarning)
        root = float(np.ravel(analysis.solve_power(effect_size=d, **{"nobs" if one_sample else "nobs1": None},
                                                   alpha=alpha, power=power))[0])
    n = 2 if not math.isfinite(root) else max(2, math.ceil(root))
    while n > 2 and _power(analysis, d, n - 1, alpha) >= power:
        n -= 1
    for _ in range(_MAX_SEED_SEARCH):
        if _power(analysis, d, n, alpha) >= power:
            return float(n)
        n += 1
    return math.nan

