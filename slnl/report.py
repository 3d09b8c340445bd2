"""Results -> the paper's Tables 1–6 (pandas), seed statistics, and figures.

Inputs are only files: the per-(table, row, split, seed) result JSONs that ``slnl.experiments.run_table`` writes
under ``<results_dir>/<table>/``, and the run directories they point to (``metrics.csv``, ``result.json``,
``best.pt``). Nothing here needs to know how a run was launched.

Tables: one row per paper row (published reference rows included), for each column (CS/CV, or top-1/top-5 on
Kinetics) the paper's number, ours (mean and standard deviation over seeds, in %), the number of seeds and the
difference ours − paper. Claims: for each improvement the paper claims between two rows, our difference with a 95%
interval from Welch's t (unequal variances) over seeds; with one seed per row there is no spread to compare against
and the verdict says so ("n/a (1 seed)") instead of pretending.

Figures (PNG, seaborn style, all quick on CPU): learning curves (``metrics.csv``), Fig. 4 (loss vs p_t from
``slnl.losses``), confusion matrices (``result.json``), frequency-attention gates per class (Eq. 2, from a
checkpoint), non-local affinities drawn on the NTU skeleton (Eq. 8, from a checkpoint).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from slnl import experiments as ex
from slnl.utils import atomic_write_bytes, atomic_write_text

# ----------------------------------------------------------------------------------------------------------------------
# Statistics (no SciPy in the pinned environment: Student's t from the regularised incomplete beta function)
# ----------------------------------------------------------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes §6.4)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc: x must be in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t with ``df`` (> 0, real) degrees of freedom."""
    if df <= 0:
        raise ValueError(f"t_cdf: df must be > 0, got {df}")
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t (bisection on ``t_cdf``; |error| < 1e-10)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"t_ppf: q must be in (0, 1), got {q}")
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10:
            break
    return 0.5 * (lo + hi)


def welch_interval(a: Sequence[float], b: Sequence[float] | float, level: float = 0.95) -> dict[str, Any]:
    """Difference of means ``mean(a) − mean(b)`` with a ``level`` interval by Welch's t.

    ``b`` may be a constant (a published number): then it is a one-sample t interval on ``a``. Returns ``diff``,
    ``low``, ``high``, ``df``; ``low``/``high`` are NaN when a side has fewer than two values (no spread to measure).
    When both sample variances are zero the interval is the point ``[diff, diff]`` (identical seeds).
    """
    a = np.asarray(a, dtype=float)
    const = np.isscalar(b)
    bb = np.asarray([b] if const else b, dtype=float)
    if a.size == 0 or bb.size == 0:
        raise ValueError("welch_interval: both samples need at least one value")
    diff = float(a.mean() - bb.mean())
    if a.size < 2 or (not const and bb.size < 2):
        return {"diff": diff, "low": math.nan, "high": math.nan, "df": math.nan}
    va = a.var(ddof=1) / a.size
    vb = 0.0 if const else bb.var(ddof=1) / bb.size
    se2 = va + vb
    if se2 == 0.0:
        return {"diff": diff, "low": diff, "high": diff, "df": math.inf}
    df = se2 ** 2 / ((va ** 2 / (a.size - 1)) + (0.0 if const else vb ** 2 / (bb.size - 1)))
    half = t_ppf(0.5 + level / 2.0, df) * math.sqrt(se2)
    return {"diff": diff, "low": diff - half, "high": diff + half, "df": df}


# ----------------------------------------------------------------------------------------------------------------------
# Collecting result files
# ----------------------------------------------------------------------------------------------------------------------
RESULT_KEYS = ("table", "row", "split", "seed", "top1", "top5")


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
    results_dir = ex.repo_path(results_dir)
    recs = [read_result(p) for p in sorted(results_dir.glob("table*/*__*__seed*.json"))]
    cols = ["table", "row", "split", "seed", "top1", "top5", "dataset", "scale", "epochs", "run_dir", "path",
            "run_path"]
    if not recs:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame.from_records(recs)
    for c in cols:
        if c not in df:
            df[c] = None
    # run_dir is stored relative to the repository when inside it; run_path is where it is on this machine.
    df["run_path"] = [str(ex.repo_path(r)) if isinstance(r, str) and r else None for r in df["run_dir"]]
    df["top1"] = 100.0 * df["top1"].astype(float)
    df["top5"] = 100.0 * df["top5"].astype(float)
    return df


def _runs_for(tbl: ex.Table, df: pd.DataFrame, dataset: str | None, scale: str | None) -> pd.DataFrame:
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
    return d


def _column_values(tbl: ex.Table, runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
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
        for col, metric in (("top1", "top1"), ("top5", "top5")):
            out[col] = sub[["row", "seed"]].assign(value=sub[metric].values)
    return out


def paper_table(table: str | int | ex.Table, results: str | Path | pd.DataFrame = "results", *,
                dataset: str | None = None, scale: str | None = None) -> pd.DataFrame:
    """The paper's table with ours beside it: index = the paper's row labels (paper order), columns a MultiIndex
    (column, stat) with stats ``paper``, ``ours`` (mean over seeds, %), ``std`` (over seeds; NaN for one seed),
    ``n`` (seeds), ``diff`` (ours − paper). Reference rows have no ours. ``attrs`` carries the dataset, scale,
    epochs and notes (stand-in warnings included)."""
    tbl = ex.table(table)
    df = collect(results) if not isinstance(results, pd.DataFrame) else results
    runs = _runs_for(tbl, df, dataset, scale)
    values = _column_values(tbl, runs)
    records = []
    for r in tbl.rows:
        rec: dict[tuple[str, str], Any] = {}
        for col, vals in values.items():
            v = vals[vals["row"] == r.slug]["value"].astype(float)
            paper = r.paper.get(col, math.nan)
            mean = float(v.mean()) if len(v) else math.nan
            rec[(col, "paper")] = paper
            rec[(col, "ours")] = mean
            rec[(col, "std")] = float(v.std(ddof=1)) if len(v) > 1 else math.nan
            rec[(col, "n")] = int(len(v))
            rec[(col, "diff")] = mean - paper
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
                       epochs=",".join(map(str, ep)), warnings=warnings, notes=list(tbl.notes))
    return frame


def claims_table(table: str | int | ex.Table, results: str | Path | pd.DataFrame = "results", *,
                 dataset: str | None = None, scale: str | None = None, level: float = 0.95) -> pd.DataFrame:
    """The paper's claimed improvements with ours: per (claim, column) the paper's difference, our difference of
    means, its ``level`` Welch interval and a verdict: ``supported`` (interval above 0), ``contradicted`` (below 0),
    ``inconclusive`` (contains 0), ``n/a (1 seed)``, ``not run``, or ``n/a (published number, other dataset)`` when
    the worse row is a published number and our data is not the paper's."""
    tbl = ex.table(table)
    df = collect(results) if not isinstance(results, pd.DataFrame) else results
    runs = _runs_for(tbl, df, dataset, scale)
    values = _column_values(tbl, runs)
    same_data = len(runs) > 0 and all(not ex.stand_in_note(tbl, d) for d in runs["dataset"].dropna().unique())
    out = []
    for c in tbl.claims:
        better, worse = tbl.row(c.better), tbl.row(c.worse)
        for col in c.columns:
            rec = {"better": better.label, "worse": worse.label, "column": col,
                   "paper_diff": round(better.paper[col] - worse.paper[col], 6), "claim": c.quote}
            vals = values.get(col)
            a = vals[vals["row"] == better.slug]["value"].astype(float).tolist() if vals is not None else []
            if worse.runnable:
                b: Any = vals[vals["row"] == worse.slug]["value"].astype(float).tolist() if vals is not None else []
            else:
                b = worse.paper[col]
            if not a or (worse.runnable and not b):
                rec.update(ours_diff=math.nan, low=math.nan, high=math.nan, n_better=len(a),
                           n_worse=len(b) if worse.runnable else 0, verdict="not run")
            elif not worse.runnable and not same_data:
                w = welch_interval(a, b, level)
                rec.update(ours_diff=w["diff"], low=math.nan, high=math.nan, n_better=len(a), n_worse=0,
                           verdict="n/a (published number, other dataset)")
            else:
                w = welch_interval(a, b, level)
                if math.isnan(w["low"]):
                    verdict = "n/a (1 seed)"
                elif w["low"] > 0:
                    verdict = "supported"
                elif w["high"] < 0:
                    verdict = "contradicted"
                else:
                    verdict = "inconclusive"
                rec.update(ours_diff=w["diff"], low=w["low"], high=w["high"], n_better=len(a),
                           n_worse=len(b) if worse.runnable else 0, verdict=verdict)
            out.append(rec)
    cols = ["better", "worse", "column", "paper_diff", "ours_diff", "low", "high", "n_better", "n_worse", "verdict",
            "claim"]
    return pd.DataFrame(out, columns=cols)


# ----------------------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------------------
def _fmt(x: Any, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{x:.{digits}f}"


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``paper_table`` as strings, one column per (column, paper/ours/Δ): ``ours`` is ``mean ± std (n)``."""
    cols = list(dict.fromkeys(frame.columns.get_level_values(0)))
    out = pd.DataFrame(index=frame.index)
    for c in cols:
        out[f"{c} paper"] = [_fmt(v) for v in frame[(c, "paper")]]
        ours = []
        for mean, std, n in zip(frame[(c, "ours")], frame[(c, "std")], frame[(c, "n")]):
            if n == 0:
                ours.append("")
            elif n == 1:
                ours.append(f"{mean:.1f} (1 seed)")
            else:
                ours.append(f"{mean:.1f} ± {std:.1f} ({n} seeds)")
        out[f"{c} ours"] = ours
        out[f"{c} Δ"] = [("" if math.isnan(v) else f"{v:+.1f}") for v in frame[(c, "diff")]]
    return out


def to_markdown(df: pd.DataFrame, index: bool = True) -> str:
    """A GitHub-flavoured markdown table (pandas' ``to_markdown`` needs ``tabulate``, which is not pinned)."""
    d = df.reset_index() if index else df
    header = [str(c) for c in d.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for row in d.itertuples(index=False):
        cells = [(_fmt(v, 2) if isinstance(v, float) else str(v)).replace("|", "\\|") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_markdown(frame: pd.DataFrame, claims: pd.DataFrame | None = None) -> str:
    a = frame.attrs
    parts = [f"# {frame.index.name}: {a.get('title', '')}\n",
             f"Dataset: {a.get('dataset') or '(no runs yet)'} · scale: {a.get('scale') or '-'} · epochs: "
             f"{a.get('epochs') or '-'} · accuracies in %, ours = mean ± std over seeds (n).\n"]
    parts += [f"> **{w}**\n" for w in a.get("warnings") or []]
    parts += [to_markdown(display_frame(frame))]
    if claims is not None and len(claims):
        c = claims.drop(columns=["claim"]).copy()
        parts += ["\n## The paper's claimed improvements\n",
                  "ours_diff: difference of our means; [low, high]: 95% Welch interval over seeds.\n",
                  to_markdown(c, index=False)]
    notes = a.get("notes") or []
    if notes:
        parts += ["\n## Notes\n", "".join(f"- {n}\n" for n in notes)]
    return "\n".join(parts)


def write_table(table: str | int | ex.Table, results_dir: str | Path = "results", *, dataset: str | None = None,
                scale: str | None = None, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write ``tables/tableN.csv`` (numbers, flat columns ``<column>_<stat>``), ``tableN_claims.csv`` and
    ``tableN.md`` (both, with notes) under ``out_dir`` (default ``<results_dir>/tables``)."""
    tbl = ex.table(table)
    out_dir = ex.repo_path(out_dir) if out_dir is not None else ex.repo_path(results_dir) / "tables"
    df = collect(results_dir)
    frame = paper_table(tbl, df, dataset=dataset, scale=scale)
    claims = claims_table(tbl, df, dataset=dataset, scale=scale)
    flat = frame.copy()
    flat.columns = [f"{c}_{s}" for c, s in frame.columns]
    paths = {"csv": out_dir / f"{tbl.name}.csv", "claims": out_dir / f"{tbl.name}_claims.csv",
             "md": out_dir / f"{tbl.name}.md"}
    atomic_write_text(paths["csv"], flat.to_csv())
    atomic_write_text(paths["claims"], claims.to_csv(index=False))
    atomic_write_text(paths["md"], table_markdown(frame, claims))
    return paths


# ----------------------------------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg",) and not _in_notebook():
        matplotlib.use("Agg")  # scripts, tests and papermill kernels without a display
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython

        ip = get_ipython()
        return ip is not None and "IPKernelApp" in ip.config
    except Exception:
        return False


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """PNG, written atomically; the figure is closed (pyplot keeps no reference) but can still be displayed."""
    import io

    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    plt.close(fig)
    return Path(path)


def parse_pairs(pairs: str | Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    """``"2,0.4;2,0.6"`` or ``[(2, 0.4), (2, 0.6)]`` -> ``[(gamma, m), ...]``."""
    if isinstance(pairs, str):
        items = [p for p in pairs.replace(" ", "").split(";") if p]
        out = []
        for p in items:
            parts = p.strip("()").split(",")
            if len(parts) != 2:
                raise ValueError(f"pairs: expected 'gamma,m' separated by ';' (e.g. '2,0.4;2,0.6'), got {p!r}")
            out.append((float(parts[0]), float(parts[1])))
        return out
    return [(float(g), float(m)) for g, m in pairs]


def fig4_curves(pairs: str | Sequence[Sequence[float]] = "2,0.4;2,0.6", num: int = 200,
                pt_min: float = 0.01) -> pd.DataFrame:
    """Fig. 4's curves: CE, FL(γ), SM(m), SMCE(m), SMFL(γ, m) as functions of p_t, computed by ``slnl.losses``.

    Returns a long DataFrame (pair, loss, gamma, m, p_t, value). CE is the same for every pair.
    """
    import torch

    from slnl import losses

    pt = torch.linspace(pt_min, 1.0, num, dtype=torch.float64)
    rows = []
    for g, m in parse_pairs(pairs):
        pair = f"(γ={g:g}, m={m:g})"
        curves = {"CE": losses.ce(pt), f"FL({g:g},)": losses.fl(pt, g), f"SM(,{m:g})": losses.sm(pt, m),
                  f"SMCE(,{m:g})": losses.smce(pt, m), f"SMFL({g:g},{m:g})": losses.smfl(pt, g, m)}
        for name, v in curves.items():
            rows.append(pd.DataFrame({"pair": pair, "loss": name.split("(")[0], "label": name, "gamma": g, "m": m,
                                      "p_t": pt.numpy(), "value": v.numpy()}))
    return pd.concat(rows, ignore_index=True)


def fig4(pairs: str | Sequence[Sequence[float]] = "2,0.4;2,0.6;0,0.4", path: str | Path | None = None):
    """Fig. 4: loss vs p_t for each (γ, m) pair, one panel per pair. Returns ``(figure, curves)``; with ``path``
    saves the PNG and the curves beside it (same name, ``.csv``)."""
    plt = _plt()
    import seaborn as sns

    curves = fig4_curves(pairs)
    pair_names = list(dict.fromkeys(curves["pair"]))
    fig, axes = plt.subplots(1, len(pair_names), figsize=(4.2 * len(pair_names), 3.6), squeeze=False, sharey=True)
    for ax, pair in zip(axes[0], pair_names):
        d = curves[curves["pair"] == pair]
        sns.lineplot(data=d, x="p_t", y="value", hue="label", style="label", ax=ax)
        ax.set(title=pair, xlabel="probability of ground truth class $p_t$", ylabel="loss", ylim=(0, 5), xlim=(0, 1))
        ax.legend(fontsize=8, title=None)
    fig.suptitle("Fig. 4: CE, FL, SM, SMCE and SMFL (Eq. 13, 14, 18, 19)")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
        atomic_write_text(Path(path).with_suffix(".csv"), curves.to_csv(index=False))
    return fig, curves


def learning_curves(table: str | int | ex.Table, results: str | Path | pd.DataFrame = "results", *,
                    dataset: str | None = None, scale: str | None = None, path: str | Path | None = None):
    """Validation top-1 and training loss per epoch for every run of a table (from each run's ``metrics.csv``).

    Returns ``(figure or None, long DataFrame)``; None when no run has metrics yet.
    """
    tbl = ex.table(table)
    df = collect(results) if not isinstance(results, pd.DataFrame) else results
    runs = _runs_for(tbl, df, dataset, scale)
    parts = []
    for rec in runs.itertuples(index=False):
        mpath = Path(rec.run_path) / "metrics.csv" if rec.run_path else None
        if mpath is None or not mpath.is_file():
            continue
        m = pd.read_csv(mpath)
        label = tbl.row(rec.row).label
        parts.append(m.assign(row=label, split=rec.split, seed=rec.seed))
    if not parts:
        return None, pd.DataFrame()
    data = pd.concat(parts, ignore_index=True)
    data["val_top1_%"] = 100.0 * data["val_top1"]
    plt = _plt()
    import seaborn as sns

    splits = list(dict.fromkeys(data["split"]))
    fig, axes = plt.subplots(2, len(splits), figsize=(6 * len(splits), 7), squeeze=False)
    for j, s in enumerate(splits):
        d = data[data["split"] == s]
        sns.lineplot(data=d, x="epoch", y="val_top1_%", hue="row", ax=axes[0, j], marker="o", errorbar="sd")
        axes[0, j].set(title=f"{tbl.name} · {s}: test top-1", ylabel="top-1 (%)")
        sns.lineplot(data=d, x="epoch", y="train_loss", hue="row", ax=axes[1, j], marker="o", errorbar="sd",
                     legend=False)
        axes[1, j].set(title=f"{tbl.name} · {s}: training loss (sum of the three heads, Eq. 21)", ylabel="loss")
        axes[0, j].legend(fontsize=7, title=None)
    from matplotlib.ticker import MaxNLocator

    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig, data


def confusion_figure(run_dir: str | Path, path: str | Path | None = None, normalize: bool = True,
                     title: str | None = None):
    """Confusion matrix of a run's final evaluation (``result.json``: ``confusion[true][predicted]``,
    ``class_names``), rows normalised to recall when ``normalize``. Returns ``(figure, matrix DataFrame)``."""
    run_dir = Path(run_dir)
    rpath = run_dir / "result.json"
    if not rpath.is_file():
        raise FileNotFoundError(f"{rpath}: no result.json (the run has not finished)")
    res = json.loads(rpath.read_text())
    for k in ("confusion", "class_names"):
        if k not in res:
            raise ValueError(f"{rpath}: missing field {k!r}")
    cm = np.asarray(res["confusion"], dtype=float)
    names = [str(n) for n in res["class_names"]]
    if cm.shape != (len(names), len(names)):
        raise ValueError(f"{rpath}: confusion is {cm.shape} but there are {len(names)} class names")
    if normalize:
        tot = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, tot, out=np.full_like(cm, np.nan), where=tot > 0)
    mat = pd.DataFrame(cm, index=pd.Index(names, name="true"), columns=pd.Index(names, name="predicted"))
    plt = _plt()
    import seaborn as sns

    n = len(names)
    size = min(max(6.0, 0.3 * n + 3.0), 18.0)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    sns.heatmap(mat, ax=ax, cmap="viridis", vmin=0.0, vmax=1.0 if normalize else None, square=True,
                xticklabels=n <= 60, yticklabels=n <= 60, cbar_kws={"label": "recall" if normalize else "count"})
    ax.tick_params(labelsize=max(4, 9 - n // 15))
    ax.set_title(title or f"Confusion matrix (top-1 {100 * res['top1']:.1f}%)\n{run_dir.name}", fontsize=10)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig, mat


# --- analyses of a trained model --------------------------------------------------------------------------------------
def load_run(run_dir: str | Path, checkpoint: str = "best"):
    """``(model in eval mode on the CPU, TrainConfig)`` of a run directory's ``best.pt`` / ``last.pt``."""
    from slnl.engine import checkpoint as ckpt
    from slnl.engine.config import TrainConfig
    from slnl.models import build

    run_dir = Path(run_dir)
    cfg = TrainConfig.load(run_dir / "config.yaml")
    model = build(cfg.preset, **dict(cfg.model))
    state = ckpt.load(run_dir / f"{checkpoint}.pt")
    model.load_state_dict(state["model"])
    return model.eval(), cfg


def _test_batches(cfg, T: int, max_samples: int, batch_size: int = 64):
    """Test-subset batches (central crop), at most ``max_samples`` samples spread evenly over the subset."""
    import torch

    from slnl import data as sdata

    ds = sdata.load(cfg.data, split=cfg.split, subset="test", T=T, train=False, seed=cfg.seed)
    n = len(ds)
    if n == 0:
        raise ValueError(f"{cfg.data} split {cfg.split!r}: empty test subset")
    idx = np.unique(np.linspace(0, n - 1, min(n, max_samples)).round().astype(int))
    for s in range(0, len(idx), batch_size):
        items = [ds[int(i)] for i in idx[s:s + batch_size]]
        yield torch.stack([torch.as_tensor(x) for x, _ in items]), torch.as_tensor([int(y) for _, y in items]), ds


def attention_gates(fa, x):
    """The gates ``(M_cos, M_sin)``, each ``(B, 1, T', N')``, that ``FrequencyAttention`` ``fa`` applies to its input
    ``x`` (Eq. 1–2: the module's own DFT matrices and ``gates()``, in the dtype its forward uses)."""
    from slnl.models.frequency import dft2

    mats = tuple(b.to(x.dtype) for b in (fa.ct, fa.st, fa.cn, fa.sn))
    return fa.gates(*dft2(x, *mats))


def frequency_gates(run_dir: str | Path, checkpoint: str = "best", max_samples: int = 512) -> dict[str, Any]:
    """What the frequency attention learned: the gates ``M_cos``, ``M_sin`` of Eq. 2 averaged per class over the test
    subset, for each stream. Returns {``gates``: {stream: {"cos"|"sin": array (num_classes, T', N')}}, ``count``:
    samples per class, ``class_names``, ``attention``}. Frequencies are in DFT order (u = 0 … T'−1 over time,
    v = 0 … N'−1 over joints); the figure shifts zero frequency to the centre.

    The gates are recomputed from the module's input with its own ``gates()`` method (a forward hook on
    ``FrequencyAttention`` captures the input; ``dft2`` gives F_cos, F_sin exactly as in its forward)."""
    import torch

    from slnl.models import FrequencyAttention

    model, cfg = load_run(run_dir, checkpoint)
    if model.config.attention == "none":
        raise ValueError(f"{run_dir}: the model has no frequency attention (attention='none'); pick a run with "
                         "aFA/sFA/dFA/rFA")
    streams = {name: s for name, s in (("position", model.position), ("velocity", model.velocity)) if s is not None}
    C = model.config.num_classes
    sums: dict[str, dict[str, Any]] = {}
    captured: dict[str, Any] = {}
    hooks = []
    for name, s in streams.items():
        fa = s.frequency
        assert isinstance(fa, FrequencyAttention)
        hooks.append(fa.register_forward_hook(lambda mod, inp, out, name=name: captured.__setitem__(name, inp[0])))
        sums[name] = {"cos": np.zeros((C, fa.T, fa.N)), "sin": np.zeros((C, fa.T, fa.N))}
    count = np.zeros(C, dtype=np.int64)
    class_names: list[str] = []
    try:
        with torch.no_grad():
            for x, y, ds in _test_batches(cfg, model.config.T, max_samples):
                class_names = list(ds.class_names)
                model(x)
                for name, s in streams.items():
                    fa = s.frequency
                    # Persons are folded into the batch (B·M, ...); the gates of the first person (the performer;
                    # a second person is often absent, i.e. zero-filled) are the ones that describe the action.
                    h = captured[name].float()
                    h = h.reshape(len(y), model.config.num_persons, *h.shape[1:])[:, 0]
                    m_cos, m_sin = attention_gates(fa, h)
                    for comp, m in (("cos", m_cos), ("sin", m_sin)):
                        np.add.at(sums[name][comp], y.numpy(), m[:, 0].double().numpy())
                np.add.at(count, y.numpy(), 1)
    finally:
        for h in hooks:
            h.remove()
    denom = np.maximum(count, 1)[:, None, None]
    gates = {n: {c: v / denom for c, v in comps.items()} for n, comps in sums.items()}
    return {"gates": gates, "count": count, "class_names": class_names, "attention": model.config.attention}


def frequency_figure(run_dir: str | Path, path: str | Path | None = None, classes: Sequence[int] | None = None,
                     max_classes: int = 6, checkpoint: str = "best", max_samples: int = 512):
    """Heat maps of the per-class frequency gates (``frequency_gates``): one row per class, one column per (stream,
    cos/sin); x = frequency over joints v, y = frequency in time u, zero frequency at the centre. Returns
    ``(figure, gates dict)``."""
    g = frequency_gates(run_dir, checkpoint, max_samples)
    count = g["count"]
    if classes is None:
        classes = [int(c) for c in np.argsort(-count, kind="stable")[:max_classes] if count[c] > 0]
    panels = [(s, c) for s in g["gates"] for c in ("cos", "sin")]
    plt = _plt()
    fig, axes = plt.subplots(len(classes), len(panels), figsize=(2.6 * len(panels), 2.3 * len(classes) + 0.6),
                             squeeze=False, layout="constrained")
    im = None
    for i, k in enumerate(classes):
        for j, (s, comp) in enumerate(panels):
            a = np.fft.fftshift(g["gates"][s][comp][k])
            T, N = a.shape
            im = axes[i, j].imshow(a, aspect="auto", origin="lower", vmin=0.0, vmax=1.0, cmap="magma",
                                   extent=(-N // 2 - 0.5, N - N // 2 - 0.5, -T // 2 - 0.5, T - T // 2 - 0.5))
            axes[i, j].grid(False)
            if i == 0:
                axes[i, j].set_title(f"{s} · M_{comp}", fontsize=9)
            if j == 0:
                import textwrap

                name = g["class_names"][k] if k < len(g["class_names"]) else str(k)
                label = "\n".join(textwrap.wrap(name, 20)[:3])
                axes[i, j].set_ylabel(f"{label}\n(n={count[k]})  u (time)", fontsize=7)
            if i == len(classes) - 1:
                axes[i, j].set_xlabel("v (joints)", fontsize=8)
            axes[i, j].tick_params(labelsize=6)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.6, label="gate (Eq. 2)")
    fig.suptitle(f"Frequency attention ({g['attention']}) per class: mean gates over test samples — "
                 f"{Path(run_dir).name}", fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig, g


# NTU RGB+D's 25 joints (1-based, as in the dataset's documentation) and bones (ST-GCN's list, Yan et al. 2018).
NTU_JOINTS = ("base of spine", "middle of spine", "neck", "head", "left shoulder", "left elbow", "left wrist",
              "left hand", "right shoulder", "right elbow", "right wrist", "right hand", "left hip", "left knee",
              "left ankle", "left foot", "right hip", "right knee", "right ankle", "right foot", "spine",
              "tip of left hand", "left thumb", "tip of right hand", "right thumb")
NTU_BONES = ((1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10), (12, 11),
             (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (22, 23), (23, 8),
             (24, 25), (25, 12))
# A front-view drawing template (the subject faces the viewer; its left is on the right of the picture).
NTU_LAYOUT = {1: (0, 0), 2: (0, .35), 21: (0, .65), 3: (0, .8), 4: (0, .95), 5: (.2, .62), 6: (.3, .35),
              7: (.38, .1), 8: (.4, .02), 22: (.42, -.08), 23: (.32, -.02), 9: (-.2, .62), 10: (-.3, .35),
              11: (-.38, .1), 12: (-.4, .02), 24: (-.42, -.08), 25: (-.32, -.02), 13: (.1, -.05), 14: (.12, -.45),
              15: (.13, -.85), 16: (.2, -.9), 17: (-.1, -.05), 18: (-.12, -.45), 19: (-.13, -.85), 20: (-.2, -.9)}


def map_affinity(new: np.ndarray, W_s: np.ndarray) -> np.ndarray:
    """An affinity among the skeleton transformer's N' new joints mapped to the N original joints: ``R^T A' P`` with
    P = |W_s| normalised per row and R = |W_s| normalised per column (see ``nonlocal_affinity``). Row-stochastic in,
    row-stochastic out; a permutation W_s just permutes A'. An original joint with an all-zero column of W_s (the
    model does not see it) gets a NaN row: its affinity is undefined, not zero."""
    w = np.abs(np.asarray(W_s, dtype=float))  # (N', N)
    if new.shape != (w.shape[0], w.shape[0]):
        raise ValueError(f"map_affinity: affinity {new.shape} does not match W_s {w.shape} (expected N'×N')")
    P = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    col = w.sum(axis=0, keepdims=True)
    R = w / np.where(col > 0, col, np.nan)  # an original joint no new joint carries has no affinity row: NaN
    return R.T @ new @ P


def nonlocal_affinity(run_dir: str | Path, checkpoint: str = "best", max_samples: int = 256,
                      class_index: int | None = None) -> dict[str, Any]:
    """The spatial non-local affinity of the first SLnL block (Eq. 8 normalised as in Eq. 6: φ(x_i, x_j)/Z_i),
    averaged over frames and test samples, mapped back to the original joints.

    The block works on the N' joints of the skeleton transformer (§3.1). An affinity A' among new joints is mapped
    to the original joints as A = R^T A' P, with P = |W_s| normalised per row (new joint j' as a mixture of original
    joints) and R = |W_s| normalised per column (how much of original joint i each new joint carries); A stays
    row-stochastic. Without a skeleton transformer (Pos-N, PosVel-N, C-T) A = A'. CNN-V's transform is non-linear and
    has no such map: ``mapped`` is then None. Returns {``new`` (N'×N'), ``mapped`` (N×N or None), ``stream``,
    ``block``, ``n``}.
    """
    import torch

    from slnl.models import SkeletonTransformer
    from slnl.models.transform import CNNTransform

    model, cfg = load_run(run_dir, checkpoint)
    stream_name, stream = next((n, s) for n, s in (("position", model.position), ("velocity", model.velocity))
                               if s is not None)
    blocks = [b for b in stream.blocks if getattr(b, "s_nonlocal", None) is not None]
    if not blocks:
        raise ValueError(f"{run_dir}: no block with a spatial non-local module (affinity="
                         f"{model.config.affinity!r}, m1={model.config.m1}); pick an SLnL or sSLnL run")
    block = blocks[0]
    captured: dict[str, Any] = {}
    hook = block.s_nonlocal.register_forward_pre_hook(lambda mod, inp: captured.__setitem__("x", inp[0]))
    total, n = None, 0
    try:
        with torch.no_grad():
            for x, y, _ in _test_batches(cfg, model.config.T, max_samples):
                if class_index is not None:
                    keep = y == class_index
                    if not keep.any():
                        continue
                    x = x[keep]
                model(x)
                h = captured["x"]  # (B·M, C, T, N): persons folded into the batch; keep the first (the performer)
                h = h.reshape(len(x), model.config.num_persons, *h.shape[1:])[:, 0]
                B, _, T, N = h.shape
                a = block.s_nonlocal.affinity(h).reshape(B, T, N, N).mean(dim=1).double()  # per sample, mean over t
                total = a.sum(0) if total is None else total + a.sum(0)
                n += B
    finally:
        hook.remove()
    if total is None:
        raise ValueError(f"{run_dir}: no test sample" + ("" if class_index is None else f" of class {class_index}"))
    new = (total / n).numpy()
    mapped = new
    if isinstance(stream.transform, CNNTransform):
        mapped = None
    else:
        sk = [m for m in stream.transform.modules() if isinstance(m, SkeletonTransformer)]
        if sk:
            mapped = map_affinity(new, sk[0].W_s.detach().double().numpy())
    block_no = [b for b in stream.blocks if hasattr(b, "s_local")].index(block)  # 0-based, pooling layers skipped
    return {"new": new, "mapped": mapped, "stream": stream_name, "block": block_no, "n": n,
            "affinity": model.config.affinity}


def skeleton_figure(run_dir: str | Path, path: str | Path | None = None, queries: Sequence[int] = (4, 8, 12, 16),
                    checkpoint: str = "best", max_samples: int = 256, class_index: int | None = None):
    """Non-local affinities on the NTU skeleton: for each query joint (1-based NTU numbering) the affinity to every
    joint as node colour and as lines from the query, plus the full (mapped) matrix. Data that is not 25-joint
    NTU-format, or a CNN-V transform (no joint map), gets the matrix only. Returns ``(figure, affinity dict)``."""
    aff = nonlocal_affinity(run_dir, checkpoint, max_samples, class_index)
    A = aff["mapped"] if aff["mapped"] is not None else aff["new"]
    on_skeleton = aff["mapped"] is not None and A.shape == (25, 25)
    plt = _plt()
    import seaborn as sns

    ncol = 1 + (len(queries) if on_skeleton else 0)
    fig, axes = plt.subplots(1, ncol, figsize=(4.2 + 3.0 * (ncol - 1), 4.2), squeeze=False, layout="constrained")
    ax0 = axes[0, 0]
    sns.heatmap(A, ax=ax0, cmap="viridis", square=True, cbar_kws={"label": "affinity", "shrink": 0.7},
                xticklabels=5, yticklabels=5)
    ax0.set(title=("original joints" if aff["mapped"] is not None else "new joints N'") + " (row = query)",
            xlabel="key joint", ylabel="query joint")
    if on_skeleton:
        xy = np.array([NTU_LAYOUT[j] for j in range(1, 26)])
        for ax, q in zip(axes[0, 1:], queries):
            unseen = bool(np.isnan(A[q - 1]).all())  # a joint the skeleton transformer gives no weight to
            w = np.nan_to_num(A[q - 1])
            for a, b in NTU_BONES:
                ax.plot(*xy[[a - 1, b - 1]].T, color="0.75", lw=2, zorder=1)
            wn = w / max(w.max(), 1e-12)
            for j in range(25):
                if j != q - 1:
                    ax.plot(*xy[[q - 1, j]].T, color="tab:red", lw=3 * wn[j], alpha=0.15 + 0.6 * wn[j], zorder=2)
            sc = ax.scatter(xy[:, 0], xy[:, 1], c=w, cmap="viridis", s=60, zorder=3, edgecolors="k", linewidths=0.5)
            ax.scatter(*xy[q - 1], s=220, facecolors="none", edgecolors="tab:red", linewidths=2, zorder=4)
            ax.set_title(f"query: {NTU_JOINTS[q - 1]}" + (" (not seen by the model)" if unseen else ""), fontsize=9)
            ax.set_aspect("equal")
            ax.axis("off")
        fig.colorbar(sc, ax=list(axes[0, 1:]), shrink=0.7, label="affinity to query")
    what = "all test samples" if class_index is None else f"class {class_index}"
    fig.suptitle(f"Spatial non-local affinity ({aff['affinity']}, {aff['stream']} stream, block {aff['block'] + 1}), "
                 f"mean over frames and {what} (n={aff['n']}) — {Path(run_dir).name}", fontsize=9)
    if path is not None:
        save_figure(fig, path)
    return fig, aff


# ----------------------------------------------------------------------------------------------------------------------
# Notebook views and the whole report
# ----------------------------------------------------------------------------------------------------------------------
def _display(*objs: Any) -> None:
    try:
        from IPython.display import display

        display(*objs)
    except ImportError:  # plain Python: print what can be printed
        for o in objs:
            print(o if not hasattr(o, "data") else o.data)


def show_table(table: str | int | ex.Table, results_dir: str | Path = "results", *, dataset: str | None = None,
               scale: str | None = None, figures_dir: str | Path | None = None) -> dict[str, Any]:
    """What a table notebook shows: the table (ours beside the paper's), the claims against seed spread, the notes,
    and the learning curves (saved as ``<results_dir>/figures/<table>_curves.png``)."""
    from IPython.display import Image, Markdown

    tbl = ex.table(table)
    df = collect(results_dir)
    frame = paper_table(tbl, df, dataset=dataset, scale=scale)
    claims = claims_table(tbl, df, dataset=dataset, scale=scale)
    _display(Markdown(table_markdown(frame, claims)))
    figures_dir = ex.repo_path(figures_dir) if figures_dir is not None else ex.repo_path(results_dir) / "figures"
    curves_path = figures_dir / f"{tbl.name}_curves.png"
    fig, curves = learning_curves(tbl, df, dataset=dataset, scale=scale, path=curves_path)
    if fig is not None:
        _display(Image(filename=str(curves_path)))
    return {"frame": frame, "claims": claims, "curves": curves, "curves_path": curves_path if fig else None}


def _pick_run(df: pd.DataFrame, attention: bool = False, spatial_nonlocal: bool = False) -> pd.Series | None:
    """A finished run for the analysis figures: Table 1's model first, then Tables 6, 5, 4, 3, 2."""
    order = {"table1": 0, "table6": 1, "table5": 2, "table4": 3, "table3": 4, "table2": 5}
    cands = []
    for _, rec in df.iterrows():
        if not rec.get("run_path"):
            continue
        rd = Path(rec["run_path"])
        if not (rd / "best.pt").is_file() or not (rd / "config.yaml").is_file():
            continue
        s = ex.table(rec["table"]).row(rec["row"]).settings_for(rec["split"])
        if attention and s.get("attention", "none") == "none":
            continue
        if spatial_nonlocal and (s.get("affinity") not in ("SLnL", "sSLnL") or int(s.get("m1", 0)) < 1):
            continue
        cands.append((order.get(rec["table"], 9), -float(rec["top1"]), rec["path"], rec))
    if not cands:
        return None
    return sorted(cands, key=lambda c: c[:3])[0][3]


def build_report(results_dir: str | Path = "results", tables: str | Sequence[str] = "all",
                 fig4_pairs: str = "2,0.4;2,0.6;0,0.4", max_samples: int = 512) -> dict[str, Any]:
    """Everything ``report.ipynb`` shows, written under ``<results_dir>/tables`` and ``<results_dir>/figures``.

    Tables (csv, claims csv, md) for each requested table — with the paper's numbers even before any run —, learning
    curves per table with runs, Fig. 4, and for the best-placed finished run: its confusion matrix, its frequency
    gates per class, and its non-local affinities on the skeleton. A figure that cannot be drawn (no suitable run)
    is listed under ``skipped`` with the reason. Results of several (dataset, scale) combinations get one set of
    tables each, suffixed ``__<dataset>-<scale>``. ``max_samples``: test samples the checkpoint analyses look at.
    """
    results_dir = ex.repo_path(results_dir)
    names = [t.name for t in ex.TABLES.values()] if tables in (None, "all") else [
        ex.table(t).name for t in ex.parse_list(tables)]
    df = collect(results_dir)
    combos = [tuple(c) for c in df[["dataset", "scale"]].drop_duplicates().itertuples(index=False)] if len(df) else []
    tdir, fdir = results_dir / "tables", results_dir / "figures"
    built: dict[str, Any] = {"results_dir": str(results_dir), "tables": {}, "figures": {}, "skipped": {}}
    for combo in (combos or [(None, None)]):
        suffix = f"__{combo[0]}-{combo[1]}" if len(combos) > 1 else ""
        sub = df if combo == (None, None) else df[(df["dataset"] == combo[0]) & (df["scale"] == combo[1])]
        for name in names:
            frame = paper_table(name, sub)
            claims = claims_table(name, sub)
            flat = frame.copy()
            flat.columns = [f"{c}_{s}" for c, s in frame.columns]
            stem = f"{name}{suffix}"
            paths = {"csv": tdir / f"{stem}.csv", "claims": tdir / f"{stem}_claims.csv", "md": tdir / f"{stem}.md"}
            atomic_write_text(paths["csv"], flat.to_csv())
            atomic_write_text(paths["claims"], claims.to_csv(index=False))
            atomic_write_text(paths["md"], table_markdown(frame, claims))
            built["tables"][stem] = {"frame": frame, "claims": claims, "paths": paths}
            if len(sub[sub["table"] == name]):
                p = fdir / f"{stem}_curves.png"
                fig, _ = learning_curves(name, sub, path=p)
                if fig is not None:
                    built["figures"][f"{stem}_curves"] = p
        sel = sub[sub["table"].isin(names)] if len(sub) else sub
        analyses = (("confusion", confusion_figure, {}, {}),
                    ("frequency_attention", frequency_figure, {"attention": True}, {"max_samples": max_samples}),
                    ("nonlocal_affinity", skeleton_figure, {"spatial_nonlocal": True}, {"max_samples": max_samples}))
        for key, fn, kw, fkw in analyses:
            rec = _pick_run(sel, **kw) if len(sel) else None
            if rec is None:
                built["skipped"][key + suffix] = ("no finished run with a checkpoint" + (
                    " and frequency attention" if kw.get("attention") else "") + (
                    " and a spatial non-local block (SLnL/sSLnL, M1 >= 1)" if kw.get("spatial_nonlocal") else ""))
                continue
            p = fdir / f"{key}{suffix}.png"
            try:
                fn(rec["run_path"], path=p, **fkw)
                built["figures"][key + suffix] = p
            except (ValueError, FileNotFoundError) as e:
                built["skipped"][key + suffix] = f"{rec['path']}: {e}"
    fig4(fig4_pairs, path=fdir / "fig4.png")
    built["figures"]["fig4"] = fdir / "fig4.png"
    return built


def show_report(built: dict[str, Any]) -> None:
    """Display what ``build_report`` wrote (tables as markdown, figures as images)."""
    from IPython.display import Image, Markdown

    for stem, t in built["tables"].items():
        _display(Markdown(t["paths"]["md"].read_text()))
    for key, p in built["figures"].items():
        _display(Markdown(f"### {key}\n`{p}`"), Image(filename=str(p)))
    if built["skipped"]:
        _display(Markdown("### Figures not drawn\n" + "".join(f"- {k}: {v}\n" for k, v in built["skipped"].items())))
