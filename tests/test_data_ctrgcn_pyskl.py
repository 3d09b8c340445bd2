"""The files people already have: CTR-GCN's NTU .npz and PYSKL's NTU pickle, written here from the real NTU samples'
joints, prepare to stores equal to their source arrays; a pickle carrying code is refused without running it."""
import csv
import os
import pickle

import numpy as np
import pytest

from slnl.data import ctrgcn, ntu, pyskl
from slnl.data.errors import DataFormatError
from slnl.data.prepare import main
from slnl.data.store import Store, fingerprint


@pytest.fixture(scope="module")
def clips(shared_data):
    """``{name: (3, T, 25, 2) clip}`` of the five real NTU samples, by our parser."""
    d = shared_data / "ntu60_samples"
    if not d.is_dir():
        pytest.skip(f"{d} absent")
    return {p.stem: ntu.load_clip(p)[0] for p in sorted(d.glob("*.skeleton"))}


def run(args, capsys):
    rc = main(["prepare", *map(str, args), "--no-progress"])
    out = capsys.readouterr()
    return rc, out.out, out.err


# ------------------------------------------------------------------------------------------------- CTR-GCN
def ctrgcn_arrays(clips, split, K=60, T=300):
    """CTR-GCN's layout: x (N, T, 150) = per frame (M, V, C), zero-padded to T; y one-hot (N, K)."""
    out = {}
    for part, is_train in (("train", True), ("test", False)):
        names = [n for n in clips if ntu.split_membership(n, "ntu60")[split] == is_train]
        x = np.zeros((len(names), T, 150), np.float32)
        y = np.zeros((len(names), K))
        for i, n in enumerate(names):
            c = clips[n]
            x[i, : c.shape[1]] = c.transpose(1, 3, 2, 0).reshape(c.shape[1], 150)
            y[i, ntu.parse_name(n)["action"] - 1] = 1
        out |= {f"x_{part}": x, f"y_{part}": y, f"names_{part}": names}
    return out


@pytest.mark.parametrize("fname,split,compressed", [("NTU60_CS.npz", "xsub", False), ("NTU60_CV.npz", "xview", True)])
def test_ctrgcn_store_equals_source(clips, tmp_path, capsys, fname, split, compressed):
    a = ctrgcn_arrays(clips, split)
    f = tmp_path / fname
    (np.savez_compressed if compressed else np.savez)(f, **{k: v for k, v in a.items() if not k.startswith("names")})
    rc, out, err = run(["ctrgcn", "--raw", f, "--out", tmp_path / "st"], capsys)
    assert rc == 0, err
    st = Store(tmp_path / "st")
    n_tr, n_te = len(a["x_train"]), len(a["x_test"])
    assert st.meta["dataset"] == "ntu60" and st.meta["source_format"] == "ctrgcn" and st.split_names == [split]
    assert st.names == [f"train_{i:05d}" for i in range(n_tr)] + [f"test_{i:05d}" for i in range(n_te)]
    assert st.splits[f"{split}_train"].tolist() == [True] * n_tr + [False] * n_te
    assert st.splits[f"{split}_test"].tolist() == [False] * n_tr + [True] * n_te
    assert st.class_names == ntu.NTU60_CLASSES and len(fingerprint(tmp_path / "st")) == 64
    rows = [("train", i) for i in range(n_tr)] + [("test", i) for i in range(n_te)]
    for r, (part, i) in enumerate(rows):
        src = a[f"x_{part}"][i]
        T = int(st.num_frames[r])
        assert T == clips[a[f"names_{part}"][i]].shape[1] == np.count_nonzero(src.any(axis=1))  # CTR-GCN's count
        assert st.labels[r] == np.argmax(a[f"y_{part}"][i])
        np.testing.assert_array_equal(st.x[r].transpose(1, 3, 2, 0).reshape(-1, 150)[:T], src[:T])
        assert not st.x[r, :, T:].any()


def test_ctrgcn_split_dataset_and_rejects(clips, tmp_path, capsys):
    assert [ctrgcn.split_from_name(n) for n in ("NTU60_CS.npz", "ntu60_cv.npz", "NTU120_CSub.npz",
                                                 "NTU120_CSet.npz", "data.npz")] == ["xsub", "xview", "xsub",
                                                                                     "xset", None]
    a = ctrgcn_arrays(clips, "xsub", K=120)
    a["x_train"][1, 2, 3 * 3 + 0] = 1e30  # frame 3, person 1, joint 4, x
    a["y_test"][0] = 0  # not one-hot
    f = tmp_path / "data.npz"
    np.savez(f, **{k: v for k, v in a.items() if not k.startswith("names")})
    rc, _, err = run(["ctrgcn", "--raw", f, "--out", tmp_path / "st"], capsys)
    assert rc != 0 and "cannot tell the protocol" in err and "--split" in err and len(err.splitlines()) == 1
    rc, out, err = run(["ctrgcn", "--raw", f, "--out", tmp_path / "st", "--split", "CSet"], capsys)
    assert rc == 0, err
    st = Store(tmp_path / "st")
    assert st.meta["dataset"] == "ntu120" and st.split_names == ["xset"] and st.class_names == ntu.NTU120_CLASSES
    with open(tmp_path / "st" / "rejects.tsv") as fh:
        rej = {r["name"]: r for r in csv.DictReader(fh, delimiter="\t")}
    assert rej["train_00001"]["where"] == "x_train[1], frame 3, joint 4, person 1, x"
    assert rej["train_00001"]["found"] == "1e+30" and rej["test_00000"]["expected"] == "a one-hot row"
    assert "train_00001" not in st.names and "test_00000" not in st.names


def test_ctrgcn_refuses_object_arrays(tmp_path):
    f = tmp_path / "NTU60_CS.npz"
    np.savez(f, x_train=np.array([object()] * 2, dtype=object), y_train=np.zeros((2, 60)),
             x_test=np.zeros((0, 300, 150), np.float32), y_test=np.zeros((0, 60)))
    with pytest.raises(DataFormatError, match="need pickle: refused"):
        ctrgcn.plan(f)


# ------------------------------------------------------------------------------------------------- PYSKL
def pyskl_data(clips):
    """PYSKL's layout: keypoint (M, T, V, C) with M the persons present, split lists by frame_dir."""
    anns, split = [], {k: [] for k in ("xsub_train", "xsub_val", "xview_train", "xview_val")}
    for n, c in clips.items():
        M = 1 if not c[..., 1].any() else 2
        anns.append({"frame_dir": n, "label": ntu.parse_name(n)["action"] - 1, "total_frames": c.shape[1],
                     "keypoint": np.ascontiguousarray(c[..., :M].transpose(3, 1, 2, 0))})
        for s, is_train in ntu.split_membership(n, "ntu60").items():
            split[f"{s}_{'train' if is_train else 'val'}"].append(n)
    return {"split": split, "annotations": anns}


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pyskl_store_equals_source(clips, tmp_path, capsys, protocol):
    d = pyskl_data(clips)
    f = tmp_path / "ntu60_3danno.pkl"
    f.write_bytes(pickle.dumps(d, protocol=protocol))  # mmcv.dump writes protocol 2
    rc, out, err = run(["pyskl", "--raw", f, "--out", tmp_path / "st"], capsys)
    assert rc == 0, err
    st = Store(tmp_path / "st")
    assert st.meta["dataset"] == "ntu60" and st.meta["source_format"] == "pyskl"
    assert st.names == [a["frame_dir"] for a in d["annotations"]] and st.split_names == ["xsub", "xview"]
    for s in ("xsub", "xview"):
        assert [n for n, t in zip(st.names, st.splits[f"{s}_train"]) if t] == d["split"][f"{s}_train"]
        assert [n for n, t in zip(st.names, st.splits[f"{s}_test"]) if t] == d["split"][f"{s}_val"]
    for r, a in enumerate(d["annotations"]):
        kp = a["keypoint"]
        M, T = kp.shape[:2]
        assert st.labels[r] == a["label"] and st.num_frames[r] == T == a["total_frames"]
        np.testing.assert_array_equal(st.x[r, :, :T, :, :M], kp.transpose(3, 1, 2, 0))
        assert not st.x[r, :, :, :, M:].any()
    assert {a["keypoint"].shape[0] for a in d["annotations"]} == {1, 2}  # both cases covered


class Payload:
    """An object whose unpickling runs a shell command: what a malicious 'annotation file' would hold."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_code_refused_without_running_it(tmp_path, capsys):
    marker = tmp_path / "ran"
    blob = pickle.dumps({"split": {"xsub_train": ["S001C001P001R001A001"]},
                         "annotations": [{"frame_dir": "S001C001P001R001A001", "label": 0, "hook": Payload(marker)}]})
    f = tmp_path / "ntu60_3danno.pkl"
    f.write_bytes(blob)
    rc, out, err = run(["pyskl", "--raw", f, "--out", tmp_path / "st"], capsys)
    assert rc != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "system" in err and "refused before it could run" in err
    assert not marker.exists() and not (tmp_path / "st").exists()
    pickle.loads(blob)  # the payload is live: an ordinary unpickler runs it
    assert marker.exists()


@pytest.mark.parametrize("blob,words", [
    (b"cbuiltins\neval\n(V1+1\ntR.", "builtins.eval"),
    (b"cnumpy\nload\n(Vx\ntR.", "numpy.load"),
    (b"c_codecs\nencode\n(Vabc\nVrot13\ntR.", "only latin1"),
    (b"\x80\x04not a pickle", "a readable pickle"),
])
def test_safe_unpickler_admits_only_data(tmp_path, blob, words):
    f = tmp_path / "x.pkl"
    f.write_bytes(blob)
    with pytest.raises(DataFormatError, match=words):
        pyskl.safe_load(f)
    d = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [np.int64(3), {1, 2}, frozenset([3])]}
    for protocol in (2, 4, 5):
        f.write_bytes(pickle.dumps(d, protocol=protocol))
        back = pyskl.safe_load(f)
        assert np.array_equal(back["a"], d["a"]) and back["b"] == d["b"]
