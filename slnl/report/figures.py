"""Figures (PNG, seaborn style, all quick on CPU): learning curves (``metrics.csv``), Fig. 4 (loss vs p_t from
``slnl.losses``), confusion matrices (``result.json``), frequency-attention gates per class (Eq. 2) and non-local
affinities drawn on the NTU skeleton (Eq. 8), the last two from ``slnl.report.analysis``.

Rules every figure keeps, so that a reader can trust it:

* Losses of different functions are never drawn on one axis (CE and SMFL values are not on one scale): the
  learning curves compare rows by test top-1 and draw each loss function's training loss in its own panel, and the
  loss drawn is the prediction head's (``L_c`` of Eq. 21), which every row has — the total of Eq. 21 sums three
  heads for two-stream rows but two for the single-stream Pos-N / Vel-N.
* Legends sit outside the axes (``loc="outside right upper"`` with constrained layout): no curve is hidden.
* A figure that shows a subset (of classes, of joints) says which, by name.
"""
from __future__ import annotations

import io
import json
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
from slnl.data.ntu import BONES as NTU_BONES
from slnl.data.ntu import JOINT_NAMES as NTU_JOINTS
from slnl.models.transform import TRANSFORMS
from slnl.report.analysis import frequency_gates, nonlocal_affinity
from slnl.report.results import TEST_TOP1, TRAIN_LOSS_HEAD, column_values, read_metrics, table_runs
from slnl.report.stats import welch_interval
from slnl.report.tables import dataset_references
from slnl.utils import atomic_write_bytes, atomic_write_text

# A front-view drawing template of the NTU skeleton (1-based joints; the subject faces the viewer, so its left is on
# the right of the picture).
NTU_LAYOUT = {1: (0, 0), 2: (0, .35), 21: (0, .65), 3: (0, .8), 4: (0, .95), 5: (.2, .62), 6: (.3, .35),
              7: (.38, .1), 8: (.4, .02), 22: (.42, -.08), 23: (.32, -.02), 9: (-.2, .62), 10: (-.3, .35),
              11: (-.38, .1), 12: (-.4, .02), 24: (-.42, -.08), 25: (-.32, -.02), 13: (.1, -.05), 14: (.12, -.45),
              15: (.13, -.85), 16: (.2, -.9), 17: (-.1, -.05), 18: (-.12, -.45), 19: (-.13, -.85), 20: (-.2, -.9)}


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
                    dataset: str | None = None, scale: str | None = None, path: str | Path | None = None):
    """Test top-1 per epoch for every run of a table, and each loss function's training loss in its own panel
    (the prediction head's loss ``L_c``; rows with the same loss function share a panel).

    One column of panels per split; curves are means over seeds with a ±1 sd band. Returns ``(figure or None, long
    DataFrame)``; None when no run has metrics yet.
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
    groups = {s: list(dict.fromkeys(data.loc[data["split"] == s, "loss_fn"])) for s in splits}
    nrows = 1 + max(len(g) for g in groups.values())
    labels = [r.label for r in tbl.rows if r.label in set(data["row"])]
    colours = dict(zip(labels, sns.color_palette("tab10" if len(labels) <= 10 else "husl", len(labels))))
    fig, axes = plt.subplots(nrows, len(splits), figsize=(5.5 * len(splits) + 2.5, 3.2 + 2.6 * (nrows - 1)),
                             squeeze=False, layout="constrained")
    loss_c = TRAIN_LOSS_HEAD["c"]
    for j, s in enumerate(splits):
        d = data[data["split"] == s]
        _mean_sd(axes[0, j], d, "test_top1_%", colours)
        axes[0, j].set(title=f"{tbl.name} · {s}: test top-1", xlabel="epoch", ylabel="test top-1 (%)")
        for i, fn in enumerate(groups[s], start=1):
            _mean_sd(axes[i, j], d[d["loss_fn"] == fn], loss_c, colours)
            axes[i, j].set(title=f"{s}: training loss {fn}, head c", xlabel="epoch", ylabel=f"{fn} (L_c)")
        for i in range(len(groups[s]) + 1, nrows):
            axes[i, j].set_visible(False)
    streams = dict(zip(data["row"], data["streams"]))
    handles = [Line2D([], [], color=colours[lb], marker="o", ms=4, label=lb + streams[lb]) for lb in labels]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8,
               title="mean over seeds\n(band: ±1 sd)", title_fontsize=8)
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
        ax.set(xlabel="test top-1 (%), last epoch", title=f"{tbl.name} · {c}")
    fig.suptitle(f"{tbl.name} on {where['dataset']} ({where['scale']} scale): mean over seeds with its "
                 f"{level:.0%} t-interval (diamond), each seed (dot)", fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig, summary.drop(columns="values")


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


# ----------------------------------------------------------------------------------------------------------------------
# Confusion matrix
# ----------------------------------------------------------------------------------------------------------------------
def confusion_figure(run_dir: str | Path, path: str | Path | None = None, normalize: bool = True,
                     title: str | None = None):
    """Confusion matrix of a run's final evaluation (``result.json``: ``confusion[true][predicted]``,
    ``class_names``), rows normalised to recall when ``normalize``. Returns ``(figure, matrix DataFrame)``."""
    run_dir = Path(run_dir)
    rpath = run_dir / "result.json"
    if not rpath.is_file():
        raise FileNotFoundError(f"{rpath}: no result.json (the run has not finished)")
    res = json.loads(rpath.read_text())
    for k in ("confusion", "class_names", "top1"):
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
    _setup()
    n = len(names)
    size = min(max(6.0, 0.3 * n + 3.0), 18.0)
    fig, ax = plt.subplots(figsize=(size + 1.5, size), layout="constrained")
    sns.heatmap(mat, ax=ax, cmap="viridis", vmin=0.0, vmax=1.0 if normalize else None, square=True,
                xticklabels=n <= 60, yticklabels=n <= 60, cbar_kws={"label": "recall" if normalize else "count"})
    ax.tick_params(labelsize=max(4, 9 - n // 15))
    ax.set_title(title or f"Confusion matrix (top-1 {100 * res['top1']:.1f}%)\n{run_dir.name}", fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig, mat


# ----------------------------------------------------------------------------------------------------------------------
# Frequency attention (Eq. 2) per class
# ----------------------------------------------------------------------------------------------------------------------
def frequency_gates_figure(g: dict[str, Any], classes: Sequence[int] | None = None, max_classes: int = 6,
                           path: str | Path | None = None):
    """Heat maps of per-class frequency gates (``analysis.frequency_gates``'s dict): one block per class, headed by
    the class's index, full name and number of test samples; one panel per (stream, gate: M_cos/M_sin, or M_amp for aFA); x = frequency over
    joints v, y = frequency in time u, zero frequency at the centre. Without ``classes``, the ``max_classes``
    classes with the most test samples; the title says how many of how many are shown, and how they were chosen."""
    count = np.asarray(g["count"])
    names = list(g["class_names"])
    total = len(count)
    if classes is None:
        shown = [int(c) for c in np.argsort(-count, kind="stable")[:max_classes] if count[c] > 0]
        how = "those with the most test samples" if len(shown) < total else "all"
    else:
        shown = [int(c) for c in classes]
        bad = [c for c in shown if not 0 <= c < total]
        if bad:
            raise ValueError(f"frequency_gates_figure: class index(es) {bad} out of range 0..{total - 1}")
        how = "chosen"
    if not shown:
        raise ValueError("frequency_gates_figure: no class has a test sample")
    panels = [(s, c) for s in g["gates"] for c in g["gates"][s]]  # cos/sin, or aFA's one amplitude gate
    _setup()
    fig = plt.figure(figsize=(2.6 * len(panels) + 1.2, 2.6 * len(shown) + 0.8), layout="constrained")
    for sf, k in zip(fig.subfigures(len(shown), 1, squeeze=False)[:, 0], shown):
        axes = sf.subplots(1, len(panels), squeeze=False)[0]
        im = None
        for j, (ax, (s, comp)) in enumerate(zip(axes, panels)):
            a = np.fft.fftshift(g["gates"][s][comp][k])
            T, N = a.shape
            im = ax.imshow(a, aspect="auto", origin="lower", vmin=0.0, vmax=1.0, cmap="magma",
                           extent=(-N // 2 - 0.5, N - N // 2 - 0.5, -T // 2 - 0.5, T - T // 2 - 0.5))
            ax.grid(False)
            ax.set_title(f"{s} · M_{comp}", fontsize=8)
            ax.set_xlabel("v (joints)", fontsize=7)
            ax.set_ylabel("u (time)" if j == 0 else "", fontsize=7)
            ax.tick_params(labelsize=6)
        sf.colorbar(im, ax=axes, shrink=0.9, label="gate (Eq. 2)")
        name = names[k] if k < len(names) else "(no name in the store)"
        sf.suptitle(f"class {k}: {name} — {int(count[k])} test samples", fontsize=9, fontweight="bold")
    fig.suptitle(textwrap.fill(f"Frequency attention ({g.get('attention', '?')}): mean gates per class over test "
                               f"samples — {len(shown)} of {total} classes shown ({how}) — {g.get('run', '')}", 110),
                 fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig


def frequency_figure(run_dir: str | Path, path: str | Path | None = None, classes: Sequence[int] | None = None,
                     max_classes: int = 6, max_samples: int = 512):
    """``frequency_gates`` of a run drawn by ``frequency_gates_figure``. Returns ``(figure, gates dict)``."""
    g = frequency_gates(run_dir, max_samples)
    return frequency_gates_figure(g, classes, max_classes, path), g


# ----------------------------------------------------------------------------------------------------------------------
# Non-local affinity (Eq. 8) on the skeleton
# ----------------------------------------------------------------------------------------------------------------------
def affinity_figure(aff: dict[str, Any], queries: Sequence[int] = (4, 8, 12, 16), path: str | Path | None = None):
    """Non-local affinities (``analysis.nonlocal_affinity``'s dict) on the NTU skeleton: for each query joint (1-based
    NTU numbering, named in its panel's title) the affinity to every joint as node colour and as lines from the
    query, plus the full (mapped) matrix. Data that is not 25-joint NTU-format, or a CNN-V transform (no joint map),
    gets the matrix only."""
    A = aff["mapped"] if aff["mapped"] is not None else aff["new"]
    on_skeleton = aff["mapped"] is not None and A.shape == (25, 25)
    _setup()
    ncol = 1 + (len(queries) if on_skeleton else 0)
    fig, axes = plt.subplots(1, ncol, figsize=(4.2 + 3.0 * (ncol - 1), 4.2), squeeze=False, layout="constrained")
    ax0 = axes[0, 0]
    sns.heatmap(A, ax=ax0, cmap="viridis", square=True, cbar_kws={"label": "affinity", "shrink": 0.7},
                xticklabels=5, yticklabels=5)
    ax0.set(title=("original joints" if aff["mapped"] is not None else "new joints N'") + " (row = query)",
            xlabel="key joint", ylabel="query joint")
    if on_skeleton:
        xy = np.array([NTU_LAYOUT[j] for j in range(1, 26)])
        sc = None
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
    what = "all test samples" if aff.get("class_index") is None else f"class {aff['class_index']}"
    fig.suptitle(f"Spatial non-local affinity ({aff['affinity']}, {aff['stream']} stream, block {aff['block'] + 1}), "
                 f"mean over frames and {what} (n={aff['n']}) — {aff.get('run', '')}", fontsize=9)
    if path is not None:
        save_figure(fig, path)
    return fig


def skeleton_figure(run_dir: str | Path, path: str | Path | None = None, queries: Sequence[int] = (4, 8, 12, 16),
                    max_samples: int = 256, class_index: int | None = None):
    """``nonlocal_affinity`` of a run drawn by ``affinity_figure``. Returns ``(figure, affinity dict)``."""
    aff = nonlocal_affinity(run_dir, max_samples, class_index)
    return affinity_figure(aff, queries, path), aff
