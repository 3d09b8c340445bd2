"""Figures of trained models, over every seed of one row: the confusion matrix summed over the seeds
(``result.json``), the frequency-attention gates per class (Eq. 2) and the non-local affinity among joints (Eq. 8)
averaged over the seeds (``slnl.report.analysis``).

Nothing here is chosen by test accuracy: the runs are every seed of the row that ``build.pick_runs`` names by a
fixed order of tables, rows and splits; the classes a gate figure shows are those whose gates differ most from the
mean over all classes (``distinctive_classes``); an affinity that cannot be averaged over seeds (CNN-V: no map to
the original joints) is the lowest seed's, and says so. Every class and joint shown is named (the store's
``joint_names``; numbers, with a note, where the store names none).
"""
from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from slnl.data.ntu import BONES as NTU_BONES
from slnl.data.ntu import JOINT_NAMES as NTU_JOINTS
from slnl.report.analysis import frequency_gates, mean_affinity, mean_gates, nonlocal_affinity
from slnl.report.figures import _setup, save_figure

# A front-view drawing template of the NTU skeleton (1-based joints; the subject faces the viewer, so its left is on
# the right of the picture).
NTU_LAYOUT = {1: (0, 0), 2: (0, .35), 21: (0, .65), 3: (0, .8), 4: (0, .95), 5: (.2, .62), 6: (.3, .35),
              7: (.38, .1), 8: (.4, .02), 22: (.42, -.08), 23: (.32, -.02), 9: (-.2, .62), 10: (-.3, .35),
              11: (-.38, .1), 12: (-.4, .02), 24: (-.42, -.08), 25: (-.32, -.02), 13: (.1, -.05), 14: (.12, -.45),
              15: (.13, -.85), 16: (.2, -.9), 17: (-.1, -.05), 18: (-.12, -.45), 19: (-.13, -.85), 20: (-.2, -.9)}
_SEED = re.compile(r"seed(\d+)$")


def _runs(run_dirs: str | Path | Sequence[str | Path]) -> list[Path]:
    """One run directory or several, as a list of paths ordered by seed (the ``seed<k>`` of their names)."""
    dirs = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(d) for d in run_dirs]
    if not dirs:
        raise ValueError("no run directory given")
    return sorted(dirs, key=lambda d: (int(m.group(1)) if (m := _SEED.search(d.name)) else -1, d.name))


def seeds_text(runs: Sequence[Path]) -> str:
    """``"seeds 0, 1, 2"`` from the run directories' names (``…__seed<k>``), or the number of runs."""
    seeds = [m.group(1) for d in runs if (m := _SEED.search(Path(d).name))]
    if len(seeds) == len(runs):
        return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(seeds)
    return f"{len(runs)} run" + ("" if len(runs) == 1 else "s")


def _row_name(runs: Sequence[Path]) -> str:
    """The run directories' common name without the seed: ``slnl-rfa__CS``."""
    names = {_SEED.sub("", Path(d).name).rstrip("_") for d in runs}
    return ", ".join(sorted(names))


# ----------------------------------------------------------------------------------------------------------------------
# Confusion matrix
# ----------------------------------------------------------------------------------------------------------------------
def confusion_figure(run_dirs: str | Path | Sequence[str | Path], path: str | Path | None = None,
                     normalize: bool = True, title: str | None = None):
    """The confusion matrix of a row's final evaluations summed over every run given (every seed;
    ``result.json``: ``confusion[true][predicted]``, ``class_names``), rows normalised to recall when ``normalize``.
    The title says over how many seeds it is summed. Returns ``(figure, matrix DataFrame)`` (counts summed over the
    runs, or recall)."""
    runs = _runs(run_dirs)
    total, names = None, None
    for run in runs:
        rpath = run / "result.json"
        if not rpath.is_file():
            raise FileNotFoundError(f"{rpath}: no result.json (the run has not finished)")
        res = json.loads(rpath.read_text())
        for k in ("confusion", "class_names"):
            if k not in res:
                raise ValueError(f"{rpath}: missing field {k!r}")
        cm = np.asarray(res["confusion"], dtype=float)
        run_names = [str(n) for n in res["class_names"]]
        if cm.shape != (len(run_names), len(run_names)):
            raise ValueError(f"{rpath}: confusion is {cm.shape} but there are {len(run_names)} class names")
        if names is not None and run_names != names:
            raise ValueError(f"{rpath}: other class names than {runs[0] / 'result.json'}; a confusion matrix sums "
                             "runs on one dataset")
        total, names = (cm if total is None else total + cm), run_names
    assert total is not None and names is not None
    pooled = float(np.trace(total) / max(total.sum(), 1.0))
    cm = total
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
    default = (f"Confusion matrix summed over {len(runs)} seed{'' if len(runs) == 1 else 's'} ({seeds_text(runs)}) — "
               f"{_row_name(runs)}\npooled top-1 {100 * pooled:.1f}% over {int(total.sum())} test predictions")
    ax.set_title(title or default, fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig, mat


# ----------------------------------------------------------------------------------------------------------------------
# Frequency attention (Eq. 2) per class
# ----------------------------------------------------------------------------------------------------------------------
def distinctive_classes(g: dict[str, Any], k: int) -> list[int]:
    """The ``k`` classes (with test samples) whose mean gates differ most from the mean over those classes: the
    root-mean-square difference over every gate (streams, components, frequencies); ties by class index. A rule on
    the gates alone, not on accuracy."""
    count = np.asarray(g["count"])
    seen = np.flatnonzero(count > 0)
    if not len(seen):
        return []
    stack = np.concatenate([np.asarray(g["gates"][s][c])[seen].reshape(len(seen), -1)
                            for s in g["gates"] for c in g["gates"][s]], axis=1)
    rms = np.sqrt(((stack - stack.mean(axis=0)) ** 2).mean(axis=1))
    order = sorted(range(len(seen)), key=lambda i: (-round(float(rms[i]), 12), int(seen[i])))
    return [int(seen[i]) for i in order[:k]]


def frequency_gates_figure(g: dict[str, Any], classes: Sequence[int] | None = None, max_classes: int = 6,
                           path: str | Path | None = None):
    """Heat maps of per-class frequency gates (``analysis.frequency_gates``'s dict, or ``mean_gates`` of several
    seeds): one block per class, headed by the class's index, full name and number of test samples; one panel per
    (stream, gate: M_cos/M_sin, or M_amp for aFA); x = frequency over joints v, y = frequency in time u, zero
    frequency at the centre. Without ``classes``: every class when at most ``max_classes`` have test samples,
    otherwise the ``max_classes`` whose gates differ most from the mean over classes (``distinctive_classes``); the
    title says how many of how many are shown, by which rule, and over how many seeds the gates are averaged."""
    count = np.asarray(g["count"])
    names = list(g["class_names"])
    total = len(count)
    if classes is None:
        seen = [int(c) for c in np.flatnonzero(count > 0)]
        if len(seen) <= max_classes:
            shown, how = seen, "all with test samples" if len(seen) < total else "all"
        else:
            shown = sorted(distinctive_classes(g, max_classes))
            how = "those whose gates differ most from the mean over classes (RMS over every gate)"
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
    runs = int(g.get("runs", 1))
    over = f"mean over {runs} seeds" if runs > 1 else "one seed"
    fig.suptitle(textwrap.fill(f"Frequency attention ({g.get('attention', '?')}): mean gates per class over test "
                               f"samples, {over} — {len(shown)} of {total} classes shown ({how}) — "
                               f"{g.get('run', '')}", 110), fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig


def frequency_figure(run_dirs: str | Path | Sequence[str | Path], path: str | Path | None = None,
                     classes: Sequence[int] | None = None, max_classes: int = 6, max_samples: int = 512):
    """``frequency_gates`` of every run given (a row's seeds), averaged (``mean_gates``) and drawn by
    ``frequency_gates_figure``. Returns ``(figure, gates dict)``."""
    runs = _runs(run_dirs)
    per_run = [frequency_gates(r, max_samples) for r in runs]
    g = mean_gates(per_run) if len(per_run) > 1 else {**per_run[0], "runs": 1}
    if len(per_run) > 1:
        g["run"] = f"{_row_name(runs)}, {seeds_text(runs)}"
    return frequency_gates_figure(g, classes, max_classes, path), g


# ----------------------------------------------------------------------------------------------------------------------
# Non-local affinity (Eq. 8) on the skeleton
# ----------------------------------------------------------------------------------------------------------------------
def joint_labels(aff: dict[str, Any], size: int) -> tuple[list[str], str]:
    """``(tick labels, note)`` for an affinity matrix of ``size`` joints: the store's joint names for the original
    joints, NTU's for a 25-joint NTU-format store that names none, numbers otherwise (the note says why)."""
    names = aff.get("joint_names")
    if aff.get("mapped") is None:
        return [str(i + 1) for i in range(size)], "the skeleton transformer's new joints, numbered (they have no names)"
    if names and len(names) == size:
        return list(names), ""
    if size == len(NTU_JOINTS):
        return list(NTU_JOINTS), ""
    return [str(i + 1) for i in range(size)], "joints numbered from 1: the store names none"


def affinity_figure(aff: dict[str, Any], queries: Sequence[int] = (4, 8, 12, 16), path: str | Path | None = None):
    """Non-local affinities (``analysis.nonlocal_affinity``'s dict, or ``mean_affinity`` of several seeds) as a
    matrix whose rows and columns are named joints (``joint_labels``) and, on 25-joint NTU-format data, on the NTU
    skeleton: for each query joint (1-based NTU numbering, named in its panel's title) the affinity to every joint
    as node colour and as lines from the query. The title says whether it is the mean over seeds or one seed's."""
    A = aff["mapped"] if aff["mapped"] is not None else aff["new"]
    on_skeleton = aff["mapped"] is not None and A.shape == (25, 25) and not (
        aff.get("joint_names") and list(aff["joint_names"]) != list(NTU_JOINTS))
    labels, label_note = joint_labels(aff, A.shape[0])
    _setup()
    ncol = 1 + (len(queries) if on_skeleton else 0)
    side = 4.2 + 0.12 * max(0, A.shape[0] - 20)
    fig, axes = plt.subplots(1, ncol, figsize=(side + 3.0 * (ncol - 1), side), squeeze=False, layout="constrained")
    ax0 = axes[0, 0]
    sns.heatmap(pd.DataFrame(A, index=labels, columns=labels), ax=ax0, cmap="viridis", square=True,
                cbar_kws={"label": "affinity", "shrink": 0.7}, xticklabels=True, yticklabels=True)
    ax0.tick_params(labelsize=6)
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
    runs = int(aff.get("runs", 1))
    over = f"mean over {runs} seeds" if runs > 1 else aff.get("seed_rule", "one seed")
    fig.suptitle(textwrap.fill(
        f"Spatial non-local affinity ({aff['affinity']}, {aff['stream']} stream, block {aff['block'] + 1}), mean "
        f"over frames and {what} (n={aff['n']}), {over} — {aff.get('run', '')}"
        + (f" — {label_note}" if label_note else ""), 110), fontsize=9)
    if path is not None:
        save_figure(fig, path)
    return fig


def skeleton_figure(run_dirs: str | Path | Sequence[str | Path], path: str | Path | None = None,
                    queries: Sequence[int] = (4, 8, 12, 16), max_samples: int = 256, class_index: int | None = None):
    """``nonlocal_affinity`` of every run given (a row's seeds) averaged on the original joints (``mean_affinity``)
    and drawn by ``affinity_figure``; where the seeds cannot be averaged (no map to the original joints), the
    lowest seed's, labelled with its seed and that rule. Returns ``(figure, affinity dict)``."""
    runs = _runs(run_dirs)
    per_run = [nonlocal_affinity(r, max_samples, class_index) for r in runs]
    aff = mean_affinity(per_run) if len(per_run) > 1 else None
    if aff is not None:
        aff["run"] = f"{_row_name(runs)}, {seeds_text(runs)}"
    else:
        rule = ("the lowest seed's: seeds learn different new joints, so their affinities cannot be averaged"
                if len(per_run) > 1 else "one seed")
        aff = {**per_run[0], "runs": 1, "seed_rule": f"{seeds_text(runs[:1])}, {rule}"}
    return affinity_figure(aff, queries, path), aff
