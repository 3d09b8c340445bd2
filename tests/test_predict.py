"""Using a trained model: `slnl.load_model`, `slnl.predict` (clips of any length, one or a batch, resampled as
evaluation does), `slnl.build` without a dataset's shape, and `slnl predict` on a store or a clip file."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import slnl
from slnl import data as sdata
from slnl.data.store import Store
from slnl.engine import evaluate, fit
from slnl.engine.cli import main
from test_engine_fit import make_tiny_store, tiny_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(store, run directory) of a tiny run: 4 classes, 5 joints, 2 persons, clips of 10…40 frames, model T = 16."""
    root = tmp_path_factory.mktemp("predict")
    store = make_tiny_store(root / "store")
    run = root / "run"
    fit(tiny_config(store, run, epochs=2))
    return store, run


def _store_clips(store):
    st = Store(store)
    rows = st.rows("xsub", "test")
    frames = [int(st.num_frames[r]) for r in rows]
    return st, rows, [np.asarray(st.x[r, :, :n]) for r, n in zip(rows, frames)], frames


def test_load_model_gives_the_final_model_with_its_class_names(trained):
    store, run = trained
    for path in (run, run / "last.pt"):
        model = slnl.load_model(path)
        assert not model.training and next(model.parameters()).device.type == "cpu"
        assert model.class_names == Store(store).class_names == ["class0", "class1", "class2", "class3"]
        assert model.train_config.data == str(store.resolve())


def test_predict_scores_store_clips_exactly_as_evaluation(trained):
    """Raw clips of any length (each its valid frames only) give the probabilities of the evaluation's central crop
    resized to T, and so `slnl eval`'s top-1."""
    store, run = trained
    model = slnl.load_model(run)
    _, _, clips, frames = _store_clips(store)
    assert len(set(frames)) > 3  # clips of many lengths
    pred = slnl.predict(model, clips)
    ds = sdata.load(store, "xsub", "test", T=model.config.T, train=False)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    with torch.no_grad():
        expected = torch.softmax(model(x).c, dim=1).numpy()
    np.testing.assert_allclose(pred.probs, expected, rtol=1e-5, atol=1e-6)
    labels = ds.subset_labels
    assert float((pred.indices == labels).mean()) == pytest.approx(evaluate(run)["top1"])
    assert pred.labels == [model.class_names[k] for k in pred.indices]
    top = pred.top(2)
    assert len(top) == len(clips) and all(a[1] >= b[1] for a, b in top)
    assert top[0][0] == (pred.labels[0], pytest.approx(float(pred.probs[0].max())))


def test_predict_takes_one_clip_a_batch_or_a_list_and_finds_the_valid_frames(trained):
    store, run = trained
    model = slnl.load_model(run)
    st, rows, clips, frames = _store_clips(store)
    padded = np.stack([np.asarray(st.x[r]) for r in rows[:4]])  # (N, C, 40, V, M), zeros after each clip
    as_list = slnl.predict(model, clips[:4]).probs
    np.testing.assert_allclose(slnl.predict(model, padded).probs, as_list, rtol=1e-6)  # zeros are not frames
    np.testing.assert_allclose(slnl.predict(model, torch.from_numpy(padded), num_frames=frames[:4]).probs, as_list,
                               rtol=1e-6)
    one = slnl.predict(model, clips[0])
    assert len(one) == 1 and one.probs.shape == (1, 4)
    np.testing.assert_allclose(one.probs[0], as_list[0], rtol=1e-6)
    # a longer clip than the model's T and a shorter one both work (resampled to T)
    long = np.repeat(clips[0], 5, axis=1)
    assert slnl.predict(model, [long, clips[0][:, :3]]).probs.shape == (2, 4)
    # one person for a model of two: padded with an absent (zero) person, as the stores do
    solo = clips[1][..., :1]
    np.testing.assert_allclose(slnl.predict(model, solo).probs,
                               slnl.predict(model, np.concatenate([solo, np.zeros_like(solo)], -1)).probs, rtol=1e-6)
    assert model.training is False


@pytest.mark.parametrize("shape,needle", [
    ((3, 20, 7, 2), "this model takes (C, T, V, M) = (3, 'T', 5, 2)"),
    ((3, 20, 5, 3), "at most 2 person(s)"),
    ((20, 5, 2), "expected one clip (C, T, V, M) or a batch (N, C, T, V, M)"),
])
def test_predict_names_the_shape_it_expects(trained, shape, needle):
    model = slnl.load_model(trained[1])
    with pytest.raises(ValueError) as err:
        slnl.predict(model, np.ones(shape, np.float32))
    assert needle in str(err.value)


def test_class_names_without_the_run_directory(trained, tmp_path):
    """A checkpoint file copied away from its run takes the class names from its store, and without the store
    `class 0` …"""
    store, run = trained
    shutil.copy(run / "last.pt", tmp_path / "model.pt")
    assert slnl.load_model(tmp_path / "model.pt").class_names == ["class0", "class1", "class2", "class3"]
    cfg = slnl.load_model(tmp_path / "model.pt").train_config
    from slnl.engine.predict import class_names_of

    assert class_names_of(tmp_path / "model.pt", cfg.replace(data=str(tmp_path / "gone")), 4) == [
        "class 0", "class 1", "class 2", "class 3"]


def test_slnl_export_writes_the_model_alone_and_it_scores_as_the_run(trained, tmp_path, capsys, monkeypatch):
    """`slnl export RUN OUT`: the final model, its configuration (paths relative to the working directory) and class
    names, without the optimiser's or RNG state; it loads with weights_only, carries its class names away from run
    and store, and evaluates and predicts exactly as the run does."""
    from slnl.engine import checkpoint as ckpt

    store, run = trained
    monkeypatch.setenv("SLNL_HOME", str(store.parent))  # the store and the run lie inside it: relative paths
    assert main(["export", str(run), str(tmp_path / "model.pt")]) == 0
    assert "model.pt: the model of" in capsys.readouterr().out
    state = ckpt.load(tmp_path / "model.pt")
    assert set(state) == {*ckpt.MODEL_KEYS, "class_names"} - {"scaler"} and "optimizer" not in state
    assert (tmp_path / "model.pt").stat().st_size < 0.5 * (run / "last.pt").stat().st_size
    full = ckpt.load(run / "last.pt")
    assert all(torch.equal(state["model"][k], v) for k, v in full["model"].items())
    assert (state["config"]["data"], state["config"]["out"]) == (store.name, run.name)
    model = slnl.load(tmp_path / "model.pt")
    assert model.class_names == ["class0", "class1", "class2", "class3"]
    _, _, clips, _ = _store_clips(store)
    np.testing.assert_array_equal(model.predict(clips).probs, slnl.predict(slnl.load_model(run), clips).probs)
    again, orig = evaluate(tmp_path / "model.pt"), evaluate(run)
    assert (again["top1"], again["top5"], again["confusion"]) == (orig["top1"], orig["top5"], orig["confusion"])


@pytest.mark.parametrize("preset", ["small", "cpu", "ntu", "kinetics"])
def test_build_needs_no_dataset_shape_and_predicts(preset):
    """`slnl.build(preset)` alone gives a working model (the preset's NTU / Kinetics shape); predict names its
    classes `class k` when it knows none."""
    net = slnl.build(preset)
    cfg = net.config
    clip = np.random.default_rng(0).standard_normal((cfg.in_channels, 30, cfg.num_joints, 1)).astype(np.float32)
    pred = slnl.predict(net, clip)
    assert pred.probs.shape == (1, cfg.num_classes) and pred.labels[0].startswith("class ")
    assert net.training  # predict left the mode as it was
    assert np.isclose(pred.probs.sum(), 1.0, atol=1e-5)
    assert {"build", "load_model", "predict"} <= set(dir(slnl))


def test_slnl_predict_on_a_store_and_on_clip_files(trained, tmp_path, capsys):
    store, run = trained
    st, rows, clips, frames = _store_clips(store)
    assert main(["predict", str(run), "--data", str(store), "--limit", "3", "--top", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("3 clip(s) of ") and out[1].split() == ["clip", "label", "predicted", "(probability)"]
    assert out[2].startswith(st.names[rows[0]]) and out[2].count(" · ") == 1
    assert out[-1].startswith("top-1 on these 3 clips: ")
    # the run's own store and split by default; --json
    assert main(["predict", str(run), "--json", "--limit", "2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [d["clip"] for d in doc] == [st.names[r] for r in rows[:2]]
    assert doc[0]["label"] == st.class_names[int(st.labels[rows[0]])] and len(doc[0]["top"]) == 3
    expected = slnl.predict(slnl.load_model(run), clips[:2]).top(3)
    assert [(t["class"], t["probability"]) for t in doc[0]["top"]] == [(c, round(p, 6)) for c, p in expected[0]]
    # an .npy of one clip, and an .npz with names and valid frames
    np.save(tmp_path / "one.npy", clips[0])
    assert main(["predict", str(run / "last.pt"), str(tmp_path / "one.npy"), "--top", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["clip", "predicted", "(probability)"] and lines[2].split()[0] == "one"
    assert lines[2].split()[1] == expected[0][0][0]
    padded = np.stack([np.asarray(st.x[r]) for r in rows[:2]])
    np.savez(tmp_path / "two.npz", x=padded, num_frames=np.array(frames[:2]), names=np.array(["a", "b"]))
    assert main(["predict", str(run), str(tmp_path / "two.npz"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [d["clip"] for d in doc] == ["a", "b"] and doc[1]["top"][0]["class"] == expected[1][0][0]


RAW = {"msr3d": ("msr_action3d", "{}_skeleton3D.txt"), "nwucla": ("nw_ucla/all_sqe", "{}.json"),
       "sbu": ("sbu", "{}/skeleton_pos.txt")}


@pytest.mark.parametrize("dataset", sorted(RAW))
def test_predict_reads_raw_dataset_files_as_their_store_holds_them(dataset, shared_data, tmp_path_factory, capsys):
    """A raw file of MSR Action3D, NW-UCLA or SBU (real files from the shared data) goes through the format's own
    parser and is scored exactly as the same clip read from the prepared store; `slnl predict MODEL FILE FILE` with
    the study's committed model prints each file under its store name with class names."""
    from conftest import prepare_shared

    folder, pattern = RAW[dataset]
    _, store, _ = prepare_shared(shared_data, tmp_path_factory, dataset, folder)
    st = Store(store)
    torch.manual_seed(0)
    model = slnl.build_for(store, "small")  # the store's classes, channels, joints and persons
    assert (model.config.num_classes, model.config.num_joints, model.config.num_persons) == (
        st.num_classes, st.x.shape[3], st.x.shape[4])
    model.class_names = list(st.class_names)
    rows = [0, len(st.names) // 2]
    names = [st.names[r] for r in rows]
    paths = [shared_data / folder / pattern.format(n.replace("_", "/") if dataset == "sbu" else n) for n in names]
    clips = [np.asarray(st.x[r, :, :int(st.num_frames[r])]) for r in rows]
    from slnl.engine.predict import read_clips

    raw = [read_clips(p)[0][0] for p in paths]
    assert [read_clips(p)[2] for p in paths] == [[n] for n in names]
    np.testing.assert_array_equal(slnl.predict(model, raw).probs, slnl.predict(model, clips).probs)
    committed = sorted((REPO / "results" / dataset / "models").glob("*.pt"))
    if committed:
        assert main(["predict", str(committed[0]), *map(str, paths)]) == 0
        out = capsys.readouterr().out.splitlines()
        assert [ln.split()[0] for ln in out[2:4]] == names
        assert all(any(c in ln for c in st.class_names) for ln in out[2:4])


def test_slnl_predict_errors_are_one_line(trained, tmp_path, capsys):
    store, run = trained
    np.save(tmp_path / "bad.npy", np.ones((3, 10, 9, 2), np.float32))
    for argv, needle in (
        (["predict", str(run), str(tmp_path / "bad.npy")], "this model takes (C, T, V, M)"),
        (["predict", str(run), str(tmp_path / "none.npy")], "none.npy: no such file"),
        (["predict", str(run), "--split", "xview"], "no split 'xview' in this"),
        (["predict", str(tmp_path / "norun")], "no such file or directory"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("slnl predict: error: ") and needle in err[0], err
        assert "\"" not in err[0]
