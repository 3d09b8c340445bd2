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
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import stats as sps

HOLDS = "holds"
REVERSED = "reversed"
NOT_RESOLVED = "not resolved"  # followed by " at <n> seeds" (see ``verdict``)


def welch_interval(a: Sequence[float], b: Sequence[float] | float, level: float = 0.95) -> dict[str, Any]:
    """Difference of means ``mean(a) − mean(b)`` with a ``level`` interval by Welch's t.

    ``b`` may be a constant (a published number): then it is the one-sample t interval of ``mean(a) − b``. Returns
    ``diff``, ``low``, ``high``, ``half`` (the half-width) and ``df``. ``low``/``high``/``half`` are NaN when a side
    has fewer than two values (no spread to measure). When both sample variances are zero (identical seeds) the
    interval is the point ``[diff, diff]`` with ``df = inf``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"welch_interval: level must be in (0, 1), got {level}")
    a = np.asarray(a, dtype=float)
    const = np.isscalar(b)
    bb = np.asarray([b] if const else b, dtype=float)
    if a.size == 0 or bb.size == 0:
        raise ValueError("welch_interval: both samples need at least one value")
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
