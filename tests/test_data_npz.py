"""The user .npz layout: --check explains every problem; conversion round-trips into a loadable store."""
import numpy as np
import pytest

from slnl.data import load
from slnl.data.errors import DataFormatError
from slnl.data.prepare import main, prepare_dataset
from slnl.data.store import Store


def arrays(N=6, C=3, T=20, V=5, M=1):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, C, T, V, M)).astype(np.float32)
    nf = np.array([20, 10, 5, 20, 3, 7])[:N]
    for i, n in enumerate(nf):
        x[i, :, n:] = 0
    return dict(x=x, labels=np.array([0, 1, 2, 0, 1, 2])[:N], num_frames=nf,
                names=np.array([f"clip{i}" for i in range(N)]), class_names=np.array(["a", "b", "c"]),
                xsub_train=np.arange(N) < 3, xsub_test=np.arange(N) >= 3, joint_names=np.array(list("abcde")),
                bones=np.array([[1, 0], [2, 1]]))


def test_valid_file_converts_and_loads(tmp_path, capsys):
    a = arrays()
    np.savez(tmp_path / "ok.npz", **a)
    assert main(["prepare", "npz", "--check", str(tmp_path / "ok.npz")]) == 0
    assert "OK" in capsys.readouterr().out
    prepare_dataset("npz", tmp_path / "ok.npz", tmp_path / "st", quiet=True)
    st = Store(tmp_path / "st")
    assert st.names == a["names"].tolist() and st.x.shape == (6, 3, 20, 5, 1)
    np.testing.assert_array_equal(st.x, a["x"])
    assert st.meta["counts"] == {"xsub": {"train": 3, "test": 3}} and st.meta["bones"] == [[1, 0], [2, 1]]
    ds = load(tmp_path / "st", "xsub", "test", T=8)
    assert len(ds) == 3 and ds[0][0].shape == (3, 8, 5, 1) and ds[0][1] == 0


PROBLEMS = [
    ("missing_key", lambda a: a.pop("labels"), ["labels: missing"]),
    ("x_ndim", lambda a: a.__setitem__("x", a["x"][..., 0]), ["x: expected 5 dimensions"]),
    ("x_float64", lambda a: a.__setitem__("x", a["x"].astype(np.float64)), ["expected dtype float32, found float64"]),
    ("nan", lambda a: a["x"].__setitem__((2, 1, 0, 3, 0), np.nan), ["NaN/inf", "x[2, 1, 0, 3, 0]"]),
    ("label_range", lambda a: a["labels"].__setitem__(4, 3), ["labels: expected values in 0..2", "found 3 at index 4"]),
    ("num_frames_range", lambda a: a["num_frames"].__setitem__(1, 0), ["num_frames: expected 1..20", "index 1"]),
    ("padding_not_zero", lambda a: a["x"].__setitem__((2, 0, 6, 0, 0), 1.0), ["sample 2 has non-zero values beyond "
                                                                            "num_frames=5"]),
    ("zero_valid_frames", lambda a: a["x"].__setitem__(4, 0.0), ["sample 4 is all zeros", "zero valid frames"]),
    ("object_names", lambda a: a.__setitem__("names", np.array(list(a["names"]), dtype=object)), ["pickled"]),
    ("duplicate_names", lambda a: a["names"].__setitem__(1, "clip0"), ["unique", "'clip0'"]),
    ("mask_overlap", lambda a: a["xsub_test"].__setitem__(0, True), ["1 sample(s) in both"]),
    ("mask_unpaired", lambda a: a.pop("xsub_test"), ["found only xsub_train"]),
    ("mask_dtype", lambda a: a.__setitem__("xsub_train", a["xsub_train"].astype(int)), ["xsub_train: expected a bool"]),
    ("no_split", lambda a: (a.pop("xsub_test"), a.pop("xsub_train")), ["no <split>_train"]),
    ("bones_range", lambda a: a["bones"].__setitem__((0, 0), 9), ["joint indices 0..4"]),
    ("names_length", lambda a: a.__setitem__("names", a["names"][:5]), ["names: expected 6 entries"]),
]


@pytest.mark.parametrize("case,edit,words", PROBLEMS, ids=[p[0] for p in PROBLEMS])
def test_check_explains_and_convert_refuses(tmp_path, capsys, case, edit, words):
    a = arrays()
    edit(a)
    f = tmp_path / "bad.npz"
    np.savez(f, **a)
    assert main(["prepare", "npz", "--check", str(f)]) == 1
    out = capsys.readouterr().out
    for w in words:
        assert w in out, (w, out)
    with pytest.raises(DataFormatError) as e:
        prepare_dataset("npz", f, tmp_path / "st", quiet=True)
    assert str(f) in str(e.value)
    assert not (tmp_path / "st" / "meta.json").exists()


def test_check_reports_all_problems_at_once(tmp_path, capsys):
    a = arrays()
    a["labels"][0] = -1
    a["x"][1, 0, 15] = 2.0
    np.savez(tmp_path / "b.npz", **a)
    assert main(["prepare", "npz", "--check", str(tmp_path / "b.npz")]) == 1
    out = capsys.readouterr().out
    assert "2 problem(s)" in out and "labels:" in out and "beyond num_frames" in out


def test_not_an_archive(tmp_path, capsys):
    (tmp_path / "x.npz").write_text("hello")
    assert main(["prepare", "npz", "--check", str(tmp_path / "x.npz")]) == 1
    assert "not a readable .npz" in capsys.readouterr().out
