"""Figures of a study's results (PNG, seaborn style, all quick on CPU): each table's accuracy per row over seeds, its
learning curves (``metrics.csv``), the paper's claims tested on our seeds (``claims_figure``) and Fig. 4 (loss vs
p_t from ``slnl.losses``). Figures of trained models (confusion, frequency gates, affinity) are
``slnl.report.model_figures``.

Rules every figure keeps, so that a reader can trust it:

* Losses of different functions are never drawn on one axis (CE and SMFL values are not on one scale): the
  learning curves draw each row in its own panels (small multiples: test top-1 above, the training loss below, the
  panels of one loss function on one scale), and the loss drawn is the prediction head's (``L_c`` of Eq. 21),
  which every row has — the total of Eq. 21 sums three heads for two-stream rows but two for the single-stream
  Pos-N / Vel-N.
* Legends sit outside the axes (``loc="outside right upper"`` with constrained layout): no curve is hidden.
* A figure that shows a subset (of classes, of joints) says which, by name; nothing is chosen by test accuracy.
"""
from __future__ import annotations

import io
import math
import sys
import textwrap
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from slnl import experiments as ex
from slnl import losses
from slnl.models.transform import TRANSFORMS
from slnl.report.claims import EQUIVALENCE, EQUIVALENCE_MARGIN, claims_table
from slnl.report.results import TEST_TOP1, TRAIN_LOSS_HEAD, as_frame, column_values, read_metrics, table_runs
from slnl.report.stats import HOLDS, REVERSED, welch_interval
from slnl.report.tables import dataset_references
from slnl.utils import atomic_write_bytes, atomic_write_text, resolve_path


def _setup() -> None:
    """Agg outside notebooks (scripts, tests, papermill kernels without a display); seaborn's theme."""
    if "ipykernel" not in sys.modules and matplotlib.get_backend().lower() != "agg":
        plt.switch_backend("Agg")
    sns.set_theme(style="whitegrid", context="notebook")


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """PNG, written atomically; the figure is closed (pyplot keeps no reference) but can still be displayed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    plt.close(fig)
    return Path(path)


# ----------------------------------------------------------------------------------------------------------------------
# Learning curves
# ----------------------------------------------------------------------------------------------------------------------
def loss_label(settings: dict[str, Any]) -> str:
    """The loss a row trains with, in the paper's notation (Table 4): ``CE``, ``FL(2,)``, ``SMCE(,0.4)``,
    ``SMFL(2,0.4)``, from a row's training settings (``slnl.experiments.row_settings``: loss, gamma, m; unset values
    are what that function gives them: CE, γ 0, m 0)."""
    name = settings.get("loss", "CE")
    p = losses.loss_params(name, settings.get("gamma", 0.0), settings.get("m", 0.0))
    g, m = p["gamma"], p["m"]
    return {"CE": "CE", "FL": f"FL({g:g},)", "SMCE": f"SMCE(,{m:g})", "SMFL": f"SMFL({g:g},{m:g})"}[name]


def _stream_note(settings: dict[str, Any]) -> str:
    use_p, use_v, _ = TRANSFORMS[settings.get("transform", "CS-T")]
    if use_p and use_v:
        return ""
    return " (position stream only)" if use_p else " (velocity stream only)"


def _mean_sd(ax, d: pd.DataFrame, y: str, colours: dict[str, Any]) -> None:
    """One line per row: the mean over seeds per epoch, with a ±1 sd band where there are several seeds."""
    for label, g in d.groupby("row", sort=False):
        # epochs without a test (eval_every > 1) have no value: dropped, so that the tested epochs join up
        s = g.groupby("epoch")[y].agg(["mean", "std", "count"]).dropna(subset=["mean"])
        ax.plot(s.index, s["mean"], marker="o", ms=4, color=colours[label])
        band = s["count"] > 1
        if band.any():
            ax.fill_between(s.index[band], (s["mean"] - s["std"])[band], (s["mean"] + s["std"])[band],
                            color=colours[label], alpha=0.2, lw=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def learning_curves(table: str | int | ex.Table, results: str | Path | pd.DataFrame = "results", *,
                    dataset: str | None = None, scale: str | None = None, path: str | Path | None = None,
                    ncols: int = 5):
    """Small multiples of every run of a table: per split and per row, the test top-1 per epoch (one panel, all on
    one scale) above the prediction head's training loss ``L_c`` (one panel; rows of one loss function on one scale,
    named in the title). Curves are means over seeds with a ±1 sd band; at most ``ncols`` rows side by side.

    Returns ``(figure or None, long DataFrame)``; None when no run has metrics yet.
    """
    tbl, runs = table_runs(table, results, dataset, scale)
    parts = []
    for rec in runs.itertuples(index=False):
        if not rec.run_path or not (Path(rec.run_path) / "metrics.csv").is_file():
            continue
        row = tbl.row(rec.row)
        settings = row.settings_for(rec.split)
        parts.append(read_metrics(rec.run_path).assign(
            row=row.label, split=rec.split, seed=rec.seed, loss_fn=loss_label(ex.row_settings(tbl, row, rec.split)),
            streams=_stream_note(settings)))
    if not parts:
        return None, pd.DataFrame()
    data = pd.concat(parts, ignore_index=True)
    data["test_top1_%"] = 100.0 * data[TEST_TOP1]
    _setup()
    splits = list(dict.fromkeys(data["split"]))
    labels = [r.label for r in tbl.rows if r.label in set(data["row"])]
    colours = dict(zip(labels, sns.color_palette("tab10" if len(labels) <= 10 else "husl", len(labels))))
    per_split = {s: [lb for lb in labels if lb in set(data.loc[data["split"] == s, "row"])] for s in splits}
    ncols = max(1, min(ncols, max(len(v) for v in per_split.values())))
    blocks = {s: math.ceil(len(v) / ncols) for s, v in per_split.items()}  # rows of (top-1, loss) pairs per split
    nrows = 2 * sum(blocks.values())
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.9 * ncols + 2.5, 2.3 * nrows + 0.6), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.set_visible(False)
    loss_c = TRAIN_LOSS_HEAD["c"]
    streams = dict(zip(data["row"], data["streams"]))
    top_axes, loss_axes = [], {}
    first = 0
    for s in splits:
        d = data[data["split"] == s]
        for i, lb in enumerate(per_split[s]):
            r, c = first + 2 * (i // ncols), i % ncols
            dr = d[d["row"] == lb]
            fn = dr["loss_fn"].iloc[0]
            top, low = axes[r, c], axes[r + 1, c]
            for ax in (top, low):
                ax.set_visible(True)
            _mean_sd(top, dr, "test_top1_%", colours)
            top.set_title(f"{s} · {lb}{streams[lb]}: test top-1", fontsize=8)
            top.set_ylabel("test top-1 (%)" if c == 0 else "", fontsize=8)
            _mean_sd(low, dr, loss_c, colours)
            low.set_title(f"{s} · {lb}: training loss {fn}, head c", fontsize=8)
            low.set(xlabel="epoch")
            low.set_ylabel(f"{fn} (L_c)", fontsize=8)
            top_axes.append(top)
            loss_axes.setdefault(fn, []).append(low)
        first += 2 * blocks[s]
    for group in [top_axes, *loss_axes.values()]:  # one scale per quantity: top-1, and each loss function
        lo = min(ax.get_ylim()[0] for ax in group)
        hi = max(ax.get_ylim()[1] for ax in group)
        for ax in group:
            ax.set_ylim(lo, hi)
            ax.tick_params(labelsize=7)
    handles = [Line2D([], [], color=colours[lb], marker="o", ms=4, label=lb + streams[lb]) for lb in labels]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8,
               title="mean over seeds\n(band: ±1 sd)", title_fontsize=8)
    fig.suptitle(f"{tbl.name}: learning curves, one row per panel (test top-1 on one scale; each loss function "
                 "on its own)", fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig, data


def accuracy_figure(table: str | int | ex.Table, results: str | Path | pd.DataFrame = "results", *,
                    dataset: str | None = None, scale: str | None = None, level: float = 0.95,
                    path: str | Path | None = None):
    """The figure a reviewer looks at first: each row's final test top-1, every seed as a dot, the mean over seeds
    with its ``level`` t-interval (``welch_interval`` against 0, i.e. the one-sample interval), rows in the paper's
    order, one panel per column of the table. Returns ``(figure or None, DataFrame)`` with one line per (column,
    row): ``mean``, ``low``, ``high``, ``n``; None when the table has no runs. Where the final model is compared with
    published results on the dataset itself (``dataset_references``: Table 1 on MSR Action3D), each is a dashed line,
    named, in its column's panel."""
    tbl, runs = table_runs(table, results, dataset, scale)
    if not len(runs):
        return None, pd.DataFrame()
    cols = {c: v for c, v in column_values(tbl, runs).items() if len(v)}
    stats = []
    for c, v in cols.items():
        for r in [r for r in tbl.rows if r.slug in set(v["row"])]:  # the paper's order
            vals = v.loc[v["row"] == r.slug, "value"].astype(float).to_numpy()
            ci = welch_interval(vals, 0.0, level)
            stats.append({"column": c, "row": r.label, "mean": ci["diff"], "low": ci["low"], "high": ci["high"],
                          "n": len(vals), "values": vals})
    if not stats:
        return None, pd.DataFrame()
    summary = pd.DataFrame(stats)
    _setup()
    nrow = max(len(summary[summary["column"] == c]) for c in cols)
    fig, axes = plt.subplots(1, len(cols), figsize=(6.5 * len(cols), 1.0 + 0.45 * nrow), squeeze=False,
                             layout="constrained")
    where = {d: runs[d].dropna().iloc[0] if runs[d].notna().any() else "?" for d in ("dataset", "scale")}
    references = dataset_references(tbl, where["dataset"])
    for ax, c in zip(axes[0], cols):
        d = summary[summary["column"] == c].reset_index(drop=True)
        y = np.arange(len(d))[::-1]
        for yi, vals in zip(y, d["values"]):
            ax.plot(vals, np.full(len(vals), yi), "o", ms=4, color="0.6", alpha=0.8, zorder=2)
        err = np.vstack([d["mean"] - d["low"], d["high"] - d["mean"]])
        ax.errorbar(d["mean"], y, xerr=np.nan_to_num(err), fmt="D", ms=6, color="C0", ecolor="C0", capsize=4,
                    zorder=3)
        for yi, (m, lo, hi, n) in zip(y, d[["mean", "low", "high", "n"]].itertuples(index=False)):
            text = f"{m:.1f}" + ("" if np.isnan(lo) else f" [{lo:.1f}, {hi:.1f}]") + f"  n={n}"
            ax.annotate(text, (1.01, yi), xycoords=("axes fraction", "data"), va="center", fontsize=8)
        refs = references.get(c, {})
        for k, (label, ref) in enumerate(refs.items()):
            ax.axvline(ref, ls="--", lw=1, color="C3", zorder=1)
            ax.annotate(f"{label}: {ref:g}", (ref, 1.0 - 0.12 * k), xycoords=("data", "axes fraction"),
                        xytext=(3, -2), textcoords="offset points", va="top", fontsize=7, color="C3")
        lo, hi = (np.nanmin(np.r_[d["low"], d["mean"], list(refs.values())]),
                  np.nanmax(np.r_[d["high"], d["mean"], list(refs.values())]))
        ax.set_xlim(max(lo - 2.0, -1.0), min(hi + 2.0, 101.0))  # accuracies: an interval past 100 % is cut at the edge
        ax.set_yticks(y, d["row"])
        metric = "top-5" if c == "top5" else "top-1"
        ax.set(xlabel=f"test {metric} (%), last epoch", title=f"{tbl.name} · {c}" + (
            " (mean over folds)" if c.endswith("-fold") else ""))
    fig.suptitle(f"{tbl.name} on {where['dataset']} ({where['scale']} scale): mean over seeds with its "
                 f"{level:.0%} t-interval (diamond), each seed (dot)", fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig, summary.drop(columns="values")


# ----------------------------------------------------------------------------------------------------------------------
# The paper's claims on our seeds
# ----------------------------------------------------------------------------------------------------------------------
VERDICT_COLOURS = {HOLDS: "tab:green", REVERSED: "tab:red", "not resolved": "0.45"}


def claims_figure(results: str | Path | pd.DataFrame = "results", path: str | Path | None = None, *,
                  dataset: str | None = None, scale: str | None = None, tables: Sequence[str] | None = None,
                  level: float = 0.95):
    """One study's claims at a glance: each claim tested on our seeds is a row (``Tn: better > worse``; ``≈`` for
    rows the paper says are level, with the ±1 point margin as a band), ours − worse as a point with its ``level``
    Welch interval, coloured by the verdict after Holm's correction within its family (``slnl.report.claims``), and
    the paper's difference (from its table) as a cross where it has one. One panel per column (CS, CV, a k-fold
    column, …) that has a tested claim. ``path`` default: ``<results>/figures/claims.png``.

    Returns ``(figure or None, DataFrame)`` with one line per claim drawn. Runs without a tested claim yet give a
    figure that says so (and an empty frame); no runs at all give None."""
    df = as_frame(results)
    if path is None and not isinstance(results, pd.DataFrame):
        path = resolve_path(results) / "figures" / "claims.png"
    names = [ex.table(t).name for t in (tables or ex.TABLES)]
    frames = []
    for name in names:
        c = claims_table(name, df, dataset=dataset, scale=scale, level=level)
        frames.append(c.assign(label=f"T{ex.table(name).number}: " + c["better"] + np.where(
            c["kind"] == EQUIVALENCE, " ≈ ", " > ") + c["worse"]))
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    untested = [c for c in dict.fromkeys(data["column"]) if not data.loc[data["column"] == c, "ours_diff"].notna().any()
                ] if len(data) else []
    data = data[data["ours_diff"].notna()].reset_index(drop=True) if len(data) else data
    if not len(data):
        if not len(df):
            return None, data
        # runs, but no claim tested yet (a study committed as its runs finish): say so rather than draw nothing
        _setup()
        fig, ax = plt.subplots(figsize=(8, 2.2), layout="constrained")
        ax.axis("off")
        ds = ", ".join(sorted(set(df["dataset"].dropna()))) or "these runs"
        ax.text(0.5, 0.5, textwrap.fill(
            f"The paper's claims on {ds}: none tested yet — {len(df)} result file(s), no claim with both of its rows "
            "(or its published anchor) run. tables/claims.md says, per claim, what is missing.", 80),
                ha="center", va="center", fontsize=10)
        if path is not None:
            save_figure(fig, path)
        return fig, data
    data["colour"] = [next((v for k, v in VERDICT_COLOURS.items() if str(vd).startswith(k)), "0.45")
                      for vd in data["verdict"]]
    _setup()
    cols = list(dict.fromkeys(data["column"]))
    n = max(int((data["column"] == c).sum()) for c in cols)
    fig, axes = plt.subplots(1, len(cols), figsize=(6.5 * len(cols) + 2.5, max(3.2, 1.8 + 0.32 * n)), squeeze=False,
                             layout="constrained")
    for ax, col in zip(axes[0], cols):
        d = data[data["column"] == col].reset_index(drop=True)
        y = np.arange(len(d))[::-1]
        ax.axvline(0.0, color="0.3", lw=1, zorder=1)
        for yi, r in zip(y, d.itertuples(index=False)):
            if r.kind == EQUIVALENCE:
                ax.fill_betweenx([yi - 0.35, yi + 0.35], -EQUIVALENCE_MARGIN, EQUIVALENCE_MARGIN, color="tab:blue",
                                 alpha=0.12, lw=0, zorder=0)
            err = None if math.isnan(r.low) else [[r.ours_diff - r.low], [r.high - r.ours_diff]]
            ax.errorbar([r.ours_diff], [yi], xerr=err, fmt="o", ms=5, color=r.colour, ecolor=r.colour, capsize=3,
                        zorder=3)
            if not math.isnan(r.paper_diff):
                ax.plot([r.paper_diff], [yi], "x", ms=7, mew=1.8, color="k", zorder=4)
        ax.set_yticks(y, d["label"], fontsize=7)
        ax.set(xlabel=f"better − worse (points): ours with its {level:.0%} Welch interval", title=str(col))
    where = {k: sorted(set(df[k].dropna())) if len(df) and k in df else [] for k in ("dataset", "scale")}
    handles = [Line2D([], [], color=v, marker="o", ls="-", label=f"{k} (after Holm)") for k, v in
               VERDICT_COLOURS.items()]
    handles += [Line2D([], [], color="k", marker="x", ls="", mew=1.8, label="the paper's difference (its table)"),
                plt.Rectangle((0, 0), 1, 1, color="tab:blue", alpha=0.12,
                              label=f"±{EQUIVALENCE_MARGIN:g} pp: the margin of 'level'")]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8)
    none = f" No claim tested on {', '.join(map(str, untested))}." if untested else ""
    fig.suptitle(textwrap.fill(
        f"The paper's claims on {', '.join(where['dataset']) or '?'} ({', '.join(where['scale']) or '?'} scale): "
        f"colour = verdict after Holm's correction within each table's claims on a column.{none}", 90), fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig, data.drop(columns="colour")


# ----------------------------------------------------------------------------------------------------------------------
# Fig. 4
# ----------------------------------------------------------------------------------------------------------------------
def parse_pairs(pairs: str | Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    """``"2,0.4;2,0.6"`` or ``[(2, 0.4), (2, 0.6)]`` -> ``[(gamma, m), ...]``."""
    if isinstance(pairs, str):
        out = []
        for p in (p for p in pairs.replace(" ", "").split(";") if p):
            parts = p.strip("()").split(",")
            if len(parts) != 2:
                raise ValueError(f"pairs: expected 'gamma,m' separated by ';' (e.g. '2,0.4;2,0.6'), got {p!r}")
            out.append((float(parts[0]), float(parts[1])))
        return out
    return [(float(g), float(m)) for g, m in pairs]


FIG4_LOSSES = {"CE": "CE", "FL": "FL (Eq. 18)", "SM": "SM (Eq. 13)", "SMCE": "SMCE (Eq. 14)", "SMFL": "SMFL (Eq. 19)"}


def fig4_curves(pairs: str | Sequence[Sequence[float]] = "2,0.4;2,0.6", num: int = 200,
                pt_min: float = 0.01) -> pd.DataFrame:
    """Fig. 4's curves: CE, FL(γ), SM(m), SMCE(m), SMFL(γ, m) as functions of p_t, computed by ``slnl.losses``.

    Returns a long DataFrame (pair, loss, label, gamma, m, p_t, value). CE is the same for every pair.
    """
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
    """Fig. 4: loss vs p_t for each (γ, m) pair, one panel per pair, one legend (by loss) outside the panels.
    Returns ``(figure, curves)``; with ``path`` saves the PNG and the curves beside it (same name, ``.csv``)."""
    _setup()
    curves = fig4_curves(pairs)
    pair_names = list(dict.fromkeys(curves["pair"]))
    colours = dict(zip(FIG4_LOSSES, sns.color_palette("tab10", len(FIG4_LOSSES))))
    styles = dict(zip(FIG4_LOSSES, ("-", "--", ":", "-.", "-")))
    fig, axes = plt.subplots(1, len(pair_names), figsize=(4.0 * len(pair_names) + 1.8, 3.6), squeeze=False,
                             sharey=True, layout="constrained")
    for ax, pair in zip(axes[0], pair_names):
        for loss, d in curves[curves["pair"] == pair].groupby("loss", sort=False):
            ax.plot(d["p_t"], d["value"], color=colours[loss], ls=styles[loss], lw=2 if loss == "SMFL" else 1.5)
        ax.set(title=pair, xlabel="probability of ground truth class $p_t$", ylim=(0, 5), xlim=(0, 1))
    axes[0, 0].set_ylabel("loss")
    handles = [Line2D([], [], color=colours[k], ls=styles[k], label=v) for k, v in FIG4_LOSSES.items()]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    fig.suptitle("Fig. 4: CE, FL, SM, SMCE and SMFL for each (γ, m)")
    if path is not None:
        save_figure(fig, path)
        atomic_write_text(Path(path).with_suffix(".csv"), curves.to_csv(index=False))
    return fig, curves
