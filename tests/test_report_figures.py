"""slnl.report figures on constructed inputs: learning curves compare rows by test top-1 and keep each loss function
in its own panel, legends lie outside every axes, Fig. 4 follows the paper's equations, every class and joint shown
is named."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from slnl import experiments as ex
from slnl import report as rp
from slnl import study

PNG = b"\x89PNG\r\n\x1a\n"


def _run(results, table, row, split, seed, top1, loss_c, dataset="synthetic", legacy=False):
    """A result file and a run directory holding only a metrics.csv with the given per-epoch test top-1 (fractions)
    and training loss of head c."""
    rd = results / "runs" / table / f"{row}__{split}__seed{seed}"
    rd.mkdir(parents=True)
    n = len(top1)
    m = pd.DataFrame({"epoch": range(n), "lr": 1e-3, "train_loss": 3 * np.asarray(loss_c),
                      "train_loss_p": loss_c, "train_loss_v": loss_c, "train_loss_c": loss_c, "train_top1": top1,
                      "test_top1": top1, "test_top5": top1, "test_loss": loss_c})
    if legacy:  # run directories written before the test metrics were named test_*
        m = m.rename(columns={"test_top1": "val_top1", "test_top5": "val_top5", "test_loss": "val_loss"})
    m.to_csv(rd / "metrics.csv", index=False)
    rec = {"table": table, "row": row, "split": split, "seed": seed, "top1": top1[-1], "top5": top1[-1],
           "dataset": dataset, "scale": "cpu", "epochs": n, "run_dir": str(rd)}
    p = study.result_path(results, table, row, split, seed)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(rec))
    return rd


def _assert_legends_outside_axes(fig):
    canvas = FigureCanvasAgg(fig)  # a saved figure is closed: draw it on a fresh canvas, as a notebook would
    canvas.draw()
    r = canvas.get_renderer()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert legends, "the figure has no legend"
    for leg in legends:
        lb = leg.get_window_extent(r)
        for ax in fig.axes:
            if ax.get_visible():
                assert not lb.overlaps(ax.get_window_extent(r)), f"legend over the axes {ax.get_title()!r}"


def _texts(fig) -> str:
    return " ".join(t.get_text().replace("\n", " ") for t in fig.findobj(Text))


def _axes_by_title(fig, needle):
    return [ax for ax in fig.axes if ax.get_visible() and needle in ax.get_title()]


# --------------------------------------------------------------------------------------------------------------------
# Learning curves
# --------------------------------------------------------------------------------------------------------------------
def test_learning_curves_keep_each_loss_function_apart(tmp_path):
    losses = {"ce": [2.5, 2.0, 1.5], "fl-2": [1.0, 0.6, 0.4], "smfl-2-0.4": [1.4, 1.0, 0.7]}
    for row, lc in losses.items():
        for seed in (0, 1):
            _run(tmp_path, "table4", row, "CS", seed, [0.2, 0.4, 0.5 + 0.1 * seed], [v + 0.1 * seed for v in lc])
    fig, data = rp.learning_curves("table4", tmp_path)
    top = _axes_by_title(fig, "test top-1")
    assert len(top) == 1 and len(top[0].get_lines()) == 3  # rows are compared by test top-1, on one axis
    for row, fn in (("ce", "CE"), ("fl-2", "FL(2,)"), ("smfl-2-0.4", "SMFL(2,0.4)")):
        (ax,) = _axes_by_title(fig, f"training loss {fn},")  # one panel per loss function...
        (line,) = ax.get_lines()  # ...holding only the rows trained with it
        assert np.allclose(line.get_ydata(), np.asarray(losses[row]) + 0.05)  # mean over the two seeds
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 4
    assert set(data["loss_fn"]) == {"CE", "FL(2,)", "SMFL(2,0.4)"}
    _assert_legends_outside_axes(fig)


def test_loss_label_names_the_loss_that_trains():
    # The parameters a loss does not use are not shown (slnl.losses.LOSS_PARAMS).
    assert rp.loss_label({"loss": "CE", "gamma": 2.0, "m": 0.4}) == "CE"
    assert rp.loss_label({"loss": "FL", "gamma": 1.0}) == "FL(1,)"
    assert rp.loss_label({"loss": "SMCE", "m": 0.2}) == "SMCE(,0.2)"
    # a row's label is what the row trains on that split (Table 1's final model: SMFL at the split's adopted m)
    for split in ("CS", "CV"):
        assert rp.loss_label(ex.row_settings("table1", "slnl-rfa", split)) == f"SMFL(2,{ex.adopted(split)['m']:g})"
    assert ex.adopted("CV")["m"] == 0.6


def test_learning_curves_name_single_stream_rows(tmp_path):
    _run(tmp_path, "table3", "pos-n", "CS", 0, [0.1, 0.2], [2.0, 1.8])
    _run(tmp_path, "table3", "vel-n", "CS", 0, [0.1, 0.3], [2.1, 1.7])
    _run(tmp_path, "table3", "posvel-n", "CS", 0, [0.2, 0.3], [1.9, 1.5])
    fig, _ = rp.learning_curves("table3", tmp_path)
    (loss_ax,) = _axes_by_title(fig, "training loss")  # every Table 3 row trains with CE: one panel
    assert "head c" in loss_ax.get_title() and len(loss_ax.get_lines()) == 3
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["Pos-N (position stream only)", "Vel-N (velocity stream only)", "PosVel-N"]
    _assert_legends_outside_axes(fig)


def test_learning_curves_legend_hides_no_curve(tmp_path):
    # Table 6: nine rows; the legend used to sit inside the top-1 axes over the last epoch.
    for r in ex.rows("table6"):
        _run(tmp_path, "table6", r.slug, "CS", 0, [0.1, 0.3, 0.45, 0.5, 0.3], [4.0, 3.5, 3.0, 2.8, 2.7])
        _run(tmp_path, "table6", r.slug, "CV", 0, [0.1, 0.3, 0.45, 0.5, 0.3], [4.0, 3.5, 3.0, 2.8, 2.7])
    fig, _ = rp.learning_curves("table6", tmp_path, path=tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG
    # CS and CV train with different m (0.4 / 0.6): one loss panel per split, each naming its function.
    assert len(_axes_by_title(fig, "SMFL(2,0.4)")) == 1 and len(_axes_by_title(fig, "SMFL(2,0.6)")) == 1
    assert len(fig.legends[0].get_texts()) == 9
    _assert_legends_outside_axes(fig)


def test_learning_curves_reject_metrics_without_test_top1(tmp_path):
    rd = _run(tmp_path, "table3", "cs-t", "CS", 0, [0.1, 0.2], [2.0, 1.8])
    (rd / "metrics.csv").write_text("epoch,train_loss_c\n0,1.0\n")
    with pytest.raises(ValueError, match=r"metrics.csv: missing column\(s\) \['test_top1'\]"):
        rp.learning_curves("table3", tmp_path)
    rd = _run(tmp_path, "table3", "posvel-n", "CS", 0, [0.2, 0.3], [1.9, 1.5], legacy=True)
    with pytest.raises(ValueError, match=r"val_\* columns: a run of an earlier slnl; train it again"):
        rp.read_metrics(rd)  # its model is not this slnl's either: named, not read as if it were
    (rd / "metrics.csv").write_text("")
    with pytest.raises(ValueError, match="metrics.csv: empty file"):
        rp.read_metrics(rd)


def test_learning_curves_join_the_tested_epochs(tmp_path):
    """With eval_every > 1 most epochs have no test value: the curve is drawn through the tested epochs (a line, not
    isolated markers)."""
    _run(tmp_path, "table3", "cs-t", "CS", 0, [0.2, math.nan, math.nan, 0.5, math.nan, 0.6], [1.9, 1.7, 1.5, 1.3,
                                                                                             1.2, 1.1])
    fig, _ = rp.learning_curves("table3", tmp_path)
    (ax,) = _axes_by_title(fig, "test top-1")
    (line,) = [ln for ln in ax.get_lines() if len(ln.get_xdata())]
    assert list(line.get_xdata()) == [0, 3, 5] and np.allclose(line.get_ydata(), [20.0, 50.0, 60.0])


def test_accuracy_figure_is_each_row_mean_with_its_t_interval(tmp_path):
    """One point per seed, the mean with the one-sample 95 % t-interval (scipy), rows in the paper's order whatever
    the order of the files, one panel per split."""
    from scipy import stats as sps

    values = {"cs-t": [0.80, 0.84, 0.86], "posvel-n": [0.70, 0.75, 0.71], "pos-n": [0.60, 0.60, 0.66]}
    for row, tops in values.items():
        for seed, t in enumerate(tops):
            _run(tmp_path, "table3", row, "CS", seed, [t], [1.0], dataset="msr3d")
    _run(tmp_path, "table3", "cs-t", "CV", 0, [0.9], [1.0], dataset="msr3d")
    path = tmp_path / "acc.png"
    fig, summary = rp.accuracy_figure("table3", tmp_path, path=path)
    assert path.read_bytes()[:8] == PNG
    cs = summary[summary["column"] == "CS"]
    labels = {r.slug: r.label for r in ex.table("table3").rows}
    assert list(cs["row"]) == [labels["pos-n"], labels["posvel-n"], labels["cs-t"]]  # the paper's order
    for row, tops in values.items():
        got = cs[cs["row"] == labels[row]].iloc[0]
        x = 100 * np.asarray(tops)
        low, high = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
        assert got["n"] == 3 and math.isclose(got["mean"], x.mean()) and math.isclose(got["low"], low) and \
            math.isclose(got["high"], high)
    cv = summary[summary["column"] == "CV"].iloc[0]
    assert cv["n"] == 1 and math.isnan(cv["low"])  # one seed: no interval, and none drawn
    assert [ax.get_title() for ax in fig.axes] == ["table3 · CS", "table3 · CV"]
    assert "msr3d" in fig._suptitle.get_text()
    assert rp.accuracy_figure("table3", tmp_path / "none")[0] is None


def test_accuracy_figure_draws_the_published_results_on_the_dataset_itself(tmp_path):
    """Table 1 on MSR Action3D: the final model's seeds beside the published result its claim is tested against
    (msr3d.PUBLISHED), drawn at its value and named; the NTU-shaped synthetic set has none to draw."""
    from slnl.data import msr3d

    ((label, ref),) = msr3d.PUBLISHED["xsub"].items()
    for seed, t in enumerate([0.80, 0.82, 0.84]):
        _run(tmp_path / "msr", "table1", "slnl-rfa", "CS", seed, [t], [1.0], dataset="msr3d")
        _run(tmp_path / "syn", "table1", "slnl-rfa", "CS", seed, [t], [1.0], dataset="synthetic")
    fig, _ = rp.accuracy_figure("table1", tmp_path / "msr")
    (ax,) = fig.axes
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert [tuple(ln.get_xdata()) for ln in dashed] == [(ref, ref)]
    assert any(t.get_text() == f"{label}: {ref:g}" for t in ax.texts)
    assert ax.get_xlim()[1] >= ref + 2.0  # drawn inside the panel, though every seed lies below it
    fig, _ = rp.accuracy_figure("table1", tmp_path / "syn")
    assert not [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "--"]


def test_learning_curves_without_runs(tmp_path):
    fig, data = rp.learning_curves("table3", tmp_path)
    assert fig is None and data.empty


# --------------------------------------------------------------------------------------------------------------------
# Fig. 4
# --------------------------------------------------------------------------------------------------------------------
def test_fig4_curves_follow_the_paper_equations(tmp_path):
    fig, curves = rp.fig4("2,0.4;0,0.6", path=tmp_path / "fig4.png")
    assert (tmp_path / "fig4.png").read_bytes()[:8] == PNG
    assert len(pd.read_csv(tmp_path / "fig4.csv")) == len(curves)
    for (g, m), pair in (((2.0, 0.4), "(γ=2, m=0.4)"), ((0.0, 0.6), "(γ=0, m=0.6)")):
        d = curves[curves["pair"] == pair]
        for p in (0.1, 0.5, 0.9, 1.0):
            at = d[np.isclose(d["p_t"], p, atol=0.0026)].groupby("loss")["value"].first()
            pt = float(d[np.isclose(d["p_t"], p, atol=0.0026)]["p_t"].iloc[0])
            sm = math.log(math.exp(m) + (1 - math.exp(m)) * pt)  # Eq. 13
            assert at["SM"] == pytest.approx(sm, abs=1e-9)
            assert at["CE"] == pytest.approx(-math.log(pt), abs=1e-9)
            assert at["FL"] == pytest.approx(-((1 - pt) ** g) * math.log(pt), abs=1e-9)  # Eq. 18
            assert at["SMCE"] == pytest.approx(sm - math.log(pt), abs=1e-9)  # Eq. 14
            assert at["SMFL"] == pytest.approx(sm - ((1 - pt) ** g) * math.log(pt), abs=1e-9)  # Eq. 19
        assert d[(d["loss"] == "SM")]["value"].between(0, m + 1e-12).all()  # L_SM in [0, m]
    assert [ax.get_title() for ax in fig.axes] == ["(γ=2, m=0.4)", "(γ=0, m=0.6)"]
    assert all(len(ax.get_lines()) == 5 for ax in fig.axes)
    _assert_legends_outside_axes(fig)
    with pytest.raises(ValueError, match="gamma,m"):
        rp.parse_pairs("2;0.4")


# --------------------------------------------------------------------------------------------------------------------
# Confusion matrix, frequency gates, affinity
# --------------------------------------------------------------------------------------------------------------------
def test_confusion_figure_normalises_rows(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "result.json").write_text(json.dumps({"top1": 0.5, "confusion": [[3, 1], [2, 2]],
                                                 "class_names": ["a", "b"]}))
    fig, mat = rp.confusion_figure(run, path=tmp_path / "c.png")
    assert mat.loc["a", "a"] == pytest.approx(0.75) and mat.loc["b", "a"] == pytest.approx(0.5)
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG
    (run / "result.json").write_text(json.dumps({"top1": 0.5, "confusion": [[3, 1]], "class_names": ["a", "b"]}))
    with pytest.raises(ValueError, match="confusion is"):
        rp.confusion_figure(run)


def _gates(num_classes=12, T=8, N=6):
    rng = np.random.default_rng(0)
    count = np.array([5, 9, 2, 7, 0, 11, 3, 8, 6, 10, 1, 4])[:num_classes]
    names = [f"action number {k} with a rather long descriptive name" for k in range(num_classes)]
    gates = {s: {c: rng.random((num_classes, T, N)) for c in ("cos", "sin")} for s in ("position", "velocity")}
    return {"gates": gates, "count": count, "class_names": names, "attention": "rFA", "run": "run-x"}


def test_frequency_figure_names_every_class_it_shows(tmp_path):
    g = _gates()
    fig = rp.frequency_gates_figure(g, path=tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:8] == PNG
    text = _texts(fig)
    shown = [5, 9, 1, 7, 3, 8]  # the six classes with the most test samples
    for k in shown:
        assert f"class {k}: {g['class_names'][k]} — {g['count'][k]} test samples" in text
    for k in set(range(12)) - set(shown):
        assert f"class {k}:" not in text
    assert "6 of 12 classes shown (those with the most test samples)" in text
    assert len(fig.axes) == 6 * 4 + 6  # (stream, cos/sin) panels per class, one colour bar per class
    chosen = rp.frequency_gates_figure(g, classes=[4, 0])
    assert "class 4:" in _texts(chosen) and "class 0:" in _texts(chosen) and "2 of 12 classes shown (chosen)" in \
        _texts(chosen)
    with pytest.raises(ValueError, match="out of range"):
        rp.frequency_gates_figure(g, classes=[12])


def test_frequency_figure_all_classes_when_they_fit():
    g = _gates()
    g["count"] = np.arange(1, 13)
    assert "12 of 12 classes shown (all)" in _texts(rp.frequency_gates_figure(g, max_classes=12))


def test_affinity_figure_names_its_query_joints(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.random((25, 25))
    a /= a.sum(1, keepdims=True)
    aff = {"new": a, "mapped": a, "stream": "position", "block": 0, "n": 7, "affinity": "SLnL", "run": "run-x"}
    fig = rp.affinity_figure(aff, queries=(4, 8), path=tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:8] == PNG
    titles = [ax.get_title() for ax in fig.axes]
    assert "query: head" in titles and "query: left hand" in titles  # NTU joints 4 and 8, by name
    only_matrix = rp.affinity_figure({**aff, "mapped": None, "new": a[:10, :10]})
    assert len([ax for ax in only_matrix.axes if ax.get_title().startswith("query")]) == 0
