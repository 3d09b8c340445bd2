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
    """Small multiples: each row its own test top-1 panel (all on one scale) above its own L_c panel, whose title
    names the loss function; the rows of one loss function share a scale, different functions need not."""
    losses = {"ce": [2.5, 2.0, 1.5], "fl-2": [1.0, 0.6, 0.4], "smfl-2-0.4": [1.4, 1.0, 0.7]}
    for row, lc in losses.items():
        for seed in (0, 1):
            _run(tmp_path, "table4", row, "CS", seed, [0.2, 0.4, 0.5 + 0.1 * seed], [v + 0.1 * seed for v in lc])
    fig, data = rp.learning_curves("table4", tmp_path)
    top = _axes_by_title(fig, "test top-1")
    assert len(top) == 3 and all(len(ax.get_lines()) == 1 for ax in top)  # one row per panel
    assert len({ax.get_ylim() for ax in top}) == 1  # rows compared by test top-1 on one scale
    for row, fn, label in (("ce", "CE", "CE"), ("fl-2", "FL(2,)", "FL(2,)"), ("smfl-2-0.4", "SMFL(2,0.4)",
                                                                               "SMFL(2,0.4)")):
        (ax,) = _axes_by_title(fig, f"CS · {label}: training loss {fn},")  # one panel per row, naming its loss
        (line,) = ax.get_lines()
        assert np.allclose(line.get_ydata(), np.asarray(losses[row]) + 0.05)  # mean over the two seeds
        (t,) = _axes_by_title(fig, f"CS · {label}: test top-1")
        assert np.allclose(t.get_lines()[0].get_ydata(), [20.0, 40.0, 55.0])
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 6
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
    loss_axes = _axes_by_title(fig, "training loss CE, head c")  # every Table 3 row trains with CE: one scale
    assert len(loss_axes) == 3 and len({ax.get_ylim() for ax in loss_axes}) == 1
    assert _axes_by_title(fig, "CS · Pos-N (position stream only): test top-1")
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["Pos-N (position stream only)", "Vel-N (velocity stream only)", "PosVel-N"]
    _assert_legends_outside_axes(fig)


def test_learning_curves_of_table6_are_small_multiples(tmp_path):
    """Table 6: nine rows, each in its own panel (no nine overplotted lines), on both splits; CS and CV train with
    different m (0.4 / 0.6), and each loss panel names its function."""
    for r in ex.rows("table6"):
        _run(tmp_path, "table6", r.slug, "CS", 0, [0.1, 0.3, 0.45, 0.5, 0.3], [4.0, 3.5, 3.0, 2.8, 2.7])
        _run(tmp_path, "table6", r.slug, "CV", 0, [0.1, 0.3, 0.45, 0.5, 0.3], [4.0, 3.5, 3.0, 2.8, 2.7])
    fig, _ = rp.learning_curves("table6", tmp_path, path=tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG
    top = _axes_by_title(fig, "test top-1")
    assert len(top) == 18 and max(len(ax.get_lines()) for ax in top) == 1
    for r in ex.rows("table6"):
        assert len(_axes_by_title(fig, f"CS · {r.label}: test top-1")) == 1
    assert len(_axes_by_title(fig, "SMFL(2,0.4)")) == 9 and len(_axes_by_title(fig, "SMFL(2,0.6)")) == 9
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
    assert [ax.get_xlabel() for ax in fig.axes] == ["test top-1 (%), last epoch"] * 2
    assert rp.accuracy_figure("table3", tmp_path / "none")[0] is None
    _run(tmp_path / "k", "table2", "slnl-rfa", "CS", 0, [0.9], [1.0], dataset="msr3d")
    fig, _ = rp.accuracy_figure("table2", tmp_path / "k")
    assert [(ax.get_title(), ax.get_xlabel()) for ax in fig.axes] == [
        ("table2 · top1", "test top-1 (%), last epoch"), ("table2 · top5", "test top-5 (%), last epoch")]


def test_accuracy_figure_draws_the_published_results_on_the_dataset_itself(tmp_path):
    """Table 1 on MSR Action3D: the final model's seeds beside the published result its claim is tested against
    (msr3d.PUBLISHED), drawn at its value and named; the NTU-shaped synthetic set has none to draw."""
    from slnl.data import msr3d

    ((label, ref),) = msr3d.PUBLISHED[msr3d.MEAN_OVER_LIE].items()
    for seed, t in enumerate([0.80, 0.82, 0.84]):
        _run(tmp_path / "msr", "table1", "slnl-rfa", f"lie{seed + 1}", 0, [t], [1.0], dataset="msr3d")
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
def _result_json(run, confusion, names=("a", "b"), top1=0.5):
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"top1": top1, "confusion": confusion, "class_names": list(names)}))
    return run


def test_confusion_figure_is_summed_over_every_seed(tmp_path):
    r0 = _result_json(tmp_path / "slnl-rfa__CS__seed0", [[3, 1], [2, 2]])
    r1 = _result_json(tmp_path / "slnl-rfa__CS__seed1", [[4, 0], [1, 3]])
    fig, mat = rp.confusion_figure([r1, r0], path=tmp_path / "c.png", normalize=False)
    assert mat.loc["a", "a"] == 7 and mat.loc["b", "a"] == 3 and mat.to_numpy().sum() == 16
    title = fig.axes[0].get_title()
    assert "summed over 2 seeds (seeds 0, 1)" in title and "slnl-rfa__CS" in title
    assert "pooled top-1 75.0% over 16 test predictions" in title  # the summed diagonal (7 + 5) / 16
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG
    _, rec = rp.confusion_figure([r0, r1])  # rows normalised to recall
    assert rec.loc["a", "a"] == pytest.approx(7 / 8) and rec.loc["b", "a"] == pytest.approx(3 / 8)
    one, _ = rp.confusion_figure(r0)
    assert "summed over 1 seed (seed 0)" in one.axes[0].get_title()
    (r0 / "result.json").write_text(json.dumps({"top1": 0.5, "confusion": [[3, 1]], "class_names": ["a", "b"]}))
    with pytest.raises(ValueError, match="confusion is"):
        rp.confusion_figure(r0)
    other = _result_json(tmp_path / "x__seed2", [[1, 0], [0, 1]], names=("a", "c"))
    with pytest.raises(ValueError, match="other class names"):
        rp.confusion_figure([r1, other])


def _gates(num_classes=12, T=8, N=6):
    rng = np.random.default_rng(0)
    count = np.array([5, 9, 2, 7, 0, 11, 3, 8, 6, 10, 1, 4])[:num_classes]
    names = [f"action number {k} with a rather long descriptive name" for k in range(num_classes)]
    gates = {s: {c: np.full((num_classes, T, N), 0.5) + 0.01 * rng.random((num_classes, T, N))
                 for c in ("cos", "sin")} for s in ("position", "velocity")}
    return {"gates": gates, "count": count, "class_names": names, "attention": "rFA", "run": "run-x"}


def test_frequency_figure_shows_the_most_distinctive_classes_by_name(tmp_path):
    """Not the classes with most samples (ties on a balanced test set): those whose gates differ most from the mean
    over classes (RMS over every gate), said in the title; a class without test samples is never one of them."""
    g = _gates()
    # shifts summing to ~0 over the classes with samples, so that each is its class's distance from the mean
    for k, shift in ((3, 0.4), (10, -0.35), (0, 0.3), (7, -0.28), (11, -0.25), (2, 0.2), (4, 0.45)):
        g["gates"]["position"]["cos"][k] += shift  # class 4 has no test sample: never shown
    assert rp.distinctive_classes(g, 6) == [3, 10, 0, 7, 11, 2]
    fig = rp.frequency_gates_figure(g, path=tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:8] == PNG
    text = _texts(fig)
    for k in (0, 2, 3, 7, 10, 11):
        assert f"class {k}: {g['class_names'][k]} — {g['count'][k]} test samples" in text
    for k in (1, 4, 5, 6, 8, 9):
        assert f"class {k}:" not in text
    assert "6 of 12 classes shown (those whose gates differ most from the mean over classes" in text
    assert "one seed" in text
    assert len(fig.axes) == 6 * 4 + 6  # (stream, cos/sin) panels per class, one colour bar per class
    chosen = rp.frequency_gates_figure(g, classes=[4, 0])
    assert "class 4:" in _texts(chosen) and "2 of 12 classes shown (chosen)" in _texts(chosen)
    with pytest.raises(ValueError, match="out of range"):
        rp.frequency_gates_figure(g, classes=[12])


def test_frequency_figure_all_classes_when_they_fit():
    g = _gates()
    g["count"] = np.arange(1, 13)
    assert "12 of 12 classes shown (all)" in _texts(rp.frequency_gates_figure(g, max_classes=12))


def test_mean_gates_weigh_each_seed_by_its_samples():
    a, b = _gates(), _gates()
    b["count"] = a["count"] * 3
    for s in b["gates"]:
        for c in b["gates"][s]:
            b["gates"][s][c] = b["gates"][s][c] + 0.2
    m = rp.mean_gates([dict(a, run="r__seed0"), dict(b, run="r__seed1")])
    k = 1  # 9 samples in a, 27 in b: (9 g + 27 (g + 0.2)) / 36 = g + 0.15
    assert m["gates"]["velocity"]["sin"][k] == pytest.approx(a["gates"]["velocity"]["sin"][k] + 0.15)
    assert (m["count"] == 4 * a["count"]).all() and m["runs"] == 2 and m["run"] == "r__seed0, r__seed1"
    assert (m["gates"]["position"]["cos"][4] == 0).all()  # no sample in either seed
    assert "mean over 2 seeds" in _texts(rp.frequency_gates_figure(m))
    with pytest.raises(ValueError, match="other gates"):
        rp.mean_gates([a, {**b, "attention": "aFA"}])


def _aff(mapped, n=7, names=None, run="run-x"):
    return {"new": mapped, "mapped": mapped, "stream": "position", "block": 0, "n": n, "affinity": "SLnL",
            "run": run, "class_index": None, "joint_names": names}


def test_affinity_figure_names_its_joints(tmp_path):
    """NTU-format (25 joints): the skeleton panels name their query joints; MSR Action3D (20 joints): every row and
    column of the matrix is the store's joint name; without names, numbers and a note saying so."""
    from slnl.data import msr3d

    rng = np.random.default_rng(0)
    a = rng.random((25, 25))
    a /= a.sum(1, keepdims=True)
    fig = rp.affinity_figure(_aff(a), queries=(4, 8), path=tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:8] == PNG
    titles = [ax.get_title() for ax in fig.axes]
    assert "query: head" in titles and "query: left hand" in titles  # NTU joints 4 and 8, by name
    m = a[:20, :20] / a[:20, :20].sum(1, keepdims=True)
    fig = rp.affinity_figure(_aff(m, names=msr3d.JOINT_NAMES))
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert ticks == msr3d.JOINT_NAMES and not [ax for ax in fig.axes if ax.get_title().startswith("query")]
    fig = rp.affinity_figure(_aff(m))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [str(i) for i in range(1, 21)]
    assert "joints numbered from 1: the store names none" in _texts(fig)
    only_new = rp.affinity_figure({**_aff(a[:10, :10]), "mapped": None})
    assert "new joints, numbered" in _texts(only_new)


def test_mean_affinity_over_seeds_on_the_original_joints():
    a, b = np.full((4, 4), 0.25), np.eye(4)
    b[2] = np.nan  # seed 1 does not see joint 3: its row is seed 0's alone
    m = rp.mean_affinity([_aff(a, n=10, run="r__seed0"), _aff(b, n=30, run="r__seed1")])
    assert m["mapped"][0, 0] == pytest.approx((10 * 0.25 + 30 * 1.0) / 40) and m["n"] == 40
    assert m["mapped"][2] == pytest.approx(a[2]) and m["runs"] == 2 and m["new"] is None
    assert "mean over 2 seeds" in _texts(rp.affinity_figure(m))
    assert rp.mean_affinity([_aff(a), {**_aff(b), "mapped": None}]) is None  # CNN-V: no map, no mean


def test_claims_figure_draws_every_tested_claim_coloured_by_holm(tmp_path):
    """One row per tested claim, the paper's difference as a cross, ours with its interval coloured by the verdict
    after Holm; one panel per column with a tested claim; written to <results>/figures/claims.png by default."""
    from matplotlib.colors import to_rgba

    for row, tops in {"rfa": [0.90, 0.91, 0.92], "none": [0.80, 0.81, 0.82], "afa": [0.80, 0.83, 0.81],
                      "dfa": [0.84, 0.89, 0.86]}.items():
        for seed, t in enumerate(tops):
            _run(tmp_path, "table5", row, "CS", seed, [t], [1.0], dataset="msr3d")
    fig, data = rp.claims_figure(tmp_path, tables=["table5"])
    assert (tmp_path / "figures" / "claims.png").read_bytes()[:8] == PNG
    (ax,) = fig.axes
    assert ax.get_title() == "CS" and "No claim tested on CV" in fig._suptitle.get_text()
    ticks = sorted(zip(ax.get_yticks(), (t.get_text() for t in ax.get_yticklabels())), reverse=True)
    assert [t for _, t in ticks] == list(data["label"])  # the first claim on top
    assert list(data["label"]) == ["T5: Residual FA (rFA) > No Frequency Attention",
                                   "T5: No Frequency Attention > Amplitude FA (aFA)",
                                   "T5: Residual FA (rFA) > Dependent FA (dFA)"]
    claims = rp.claims_table("table5", tmp_path)
    assert list(data["verdict"]) == list(claims.loc[claims["ours_diff"].notna(), "verdict"])
    crosses = [ln for ln in ax.get_lines() if ln.get_marker() == "x"]
    assert sorted(float(ln.get_xdata()[0]) for ln in crosses) == pytest.approx(sorted(data["paper_diff"]))
    points = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    colours = {v: to_rgba(rp.figures.VERDICT_COLOURS[v.split(" after")[0]]) for v in data["verdict"]}
    for ln in points:
        x = float(ln.get_xdata()[0])
        (v,) = data.loc[np.isclose(data["ours_diff"], x), "verdict"]
        assert to_rgba(ln.get_color()) == colours[v]
    _assert_legends_outside_axes(fig)
    assert rp.claims_figure(tmp_path / "none")[0] is None
    # runs but no claim tested yet (one row of Table 5): a figure that says so, nothing drawn as a claim
    _run(tmp_path / "one", "table5", "rfa", "CS", 0, [0.8], [1.0], dataset="msr3d")
    fig, data = rp.claims_figure(tmp_path / "one", tables=["table5"])
    assert fig is not None and data.empty and (tmp_path / "one" / "figures" / "claims.png").is_file()
    assert "none tested yet" in fig.axes[0].texts[0].get_text()


def test_pick_runs_takes_every_seed_of_the_first_row_never_the_most_accurate(tmp_path):
    """The figures of trained models use every seed of one row, named by a fixed order (Table 1's model before
    Table 6's rows), not the run with the highest accuracy."""
    for table, row, tops in (("table6", "slnl-1", [0.99, 0.98]), ("table1", "slnl-rfa", [0.10, 0.20, 0.15])):
        for seed, t in enumerate(tops):
            rd = _run(tmp_path, table, row, "CS", seed, [t], [1.0])
            for f in ("last.pt", "config.yaml", "result.json"):
                (rd / f).write_text("")
    df = rp.collect(tmp_path)
    runs = rp.pick_runs(df, attention=True)
    assert set(runs["table"]) == {"table1"} and list(runs["seed"]) == [0, 1, 2]
    assert list(rp.pick_runs(df[df["table"] == "table6"], spatial_nonlocal=True)["seed"]) == [0, 1]
    assert rp.pick_runs(df[df["table"] == "table6"], needs=("missing.file",)).empty
