"""MSR Action3D: the 557 standard sequences, cross-subject counts, zero frames dropped, bad input."""
import csv

import numpy as np
import pytest

from slnl.data import msr3d
from slnl.data.errors import DataFormatError
from slnl.data.prepare import prepare_dataset
from slnl.data.store import Store
from conftest import prepare_shared


@pytest.fixture(scope="module")
def msr_store(shared_data, tmp_path_factory):
    return prepare_shared(shared_data, tmp_path_factory, "msr3d", "msr_action3d")


def test_557_sequences_split_by_subject(msr_store):
    raw, out, summary = msr_store
    st = Store(out)
    used = (raw / "files_used_in_cvpr12_paper.txt").read_text().split()
    assert len(used) == 557 and sorted(st.names) == sorted(used) == st.names
    assert st.num_classes == 20 and sorted(set(st.labels.tolist())) == list(range(20))
    subj = np.array([msr3d.parse_name(n)["subject"] for n in st.names])
    tr = st.splits["xsub_train"]
    assert (tr == np.isin(subj, [1, 3, 5, 7, 9])).all() and (st.splits["xsub_test"] == ~tr).all()
    assert (int(tr.sum()), int((~tr).sum())) == (284, 273)
    assert st.meta["counts"] == {"xsub": {"train": 284, "test": 273}, "xsub-val": {"train": 170, "test": 114}}
    # the validation split lies inside xsub's training subjects: no test subject's clip is in it
    vtr, vte = st.splits["xsub-val_train"], st.splits["xsub-val_test"]
    assert (vtr == np.isin(subj, [1, 3, 5])).all() and (vte == np.isin(subj, [7, 9])).all()
    assert not ((vtr | vte) & st.splits["xsub_test"]).any() and ((vtr | vte) == tr).all()
    assert st.labels.tolist() == [msr3d.parse_name(n)["action"] - 1 for n in st.names]
    assert st.x.shape[1:] == (3, int(st.num_frames.max()), 20, 1)
    # the 10 files outside the standard list are skipped and listed
    assert summary["skipped"] == 10 and summary["rejected"] == 0
    with open(out / "rejects.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == 10 and all("not among the standard sequences" in r["reason"] for r in rows)


def test_values_and_zero_frames(msr_store):
    raw, out, _ = msr_store
    st = Store(out)
    for name in ["a01_s01_e01", "a13_s02_e02", "a20_s02_e01"] + st.names[::60]:
        vals = np.loadtxt(raw / f"{name}_skeleton3D.txt").reshape(-1, 20, 4)[..., :3]
        keep = np.abs(vals).sum(axis=(1, 2)) > 0
        i = st.names.index(name)
        assert st.num_frames[i] == keep.sum()
        np.testing.assert_array_equal(st.x[i, :, : keep.sum(), :, 0], vals[keep].transpose(2, 0, 1).astype(np.float32))
        assert not st.x[i, :, keep.sum():].any()
    x, info = msr3d.read_sequence(raw / "a01_s01_e01_skeleton3D.txt")
    line1 = (raw / "a01_s01_e01_skeleton3D.txt").read_text().splitlines()[0].split()
    np.testing.assert_array_equal(x[:, 0, 0, 0], np.float32(line1[:3]))
    # a standard sequence with sensor drop-outs (all-zero frames): found and dropped, counted
    _, info = msr3d.read_sequence(raw / "a13_s02_e02_skeleton3D.txt")
    vals = np.loadtxt(raw / "a13_s02_e02_skeleton3D.txt").reshape(-1, 20, 4)[..., :3]
    zero = int((np.abs(vals).sum(axis=(1, 2)) == 0).sum())
    assert zero > 0 and info == {"file_frames": len(vals), "dropped_zero_frames": zero}


GOOD = "\n".join(f"{0.1 * j:.6f} {0.2 + j * 0.01:.6f} 2.5 1" for j in range(20)) + "\n"
BAD = [
    ("value_count", lambda: GOOD.replace("2.5 1\n", "2.5\n", 1), 1, ["4 values", "3 values"]),
    ("non_numeric", lambda: GOOD.replace("2.5", "x2", 1), 1, ["a number for value 3", "x2"]),
    ("nan", lambda: GOOD.replace("2.5", "nan", 1), 1, ["finite number for value 3", "nan"]),
    ("truncated_frame", lambda: GOOD + GOOD.split("\n", 1)[0] + "\n", 21, ["multiple of 20", "21 lines"]),
    ("zero_valid_frames", lambda: "0 0 0 1\n" * 40, None, ["non-zero joint", "all 2 frames are zero"]),
    ("empty", lambda: "", 1, ["x y z c", "empty file"]),
]


@pytest.mark.parametrize("case,text,line,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_strict_error_and_bulk_reject(tmp_path, case, text, line, words):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a01_s01_e01_skeleton3D.txt").write_text(GOOD + "0 0 0 0\n" * 20 + GOOD)
    bad = raw / "a02_s02_e01_skeleton3D.txt"
    bad.write_text(text())
    (raw / "files_used_in_cvpr12_paper.txt").write_text("a01_s01_e01\na02_s02_e01\n")
    with pytest.raises(DataFormatError) as e:
        msr3d.read_sequence(bad)
    assert e.value.file == str(bad) and e.value.where == line and str(bad) in str(e.value)
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    s = prepare_dataset("msr3d", raw, tmp_path / "st", workers=1, progress=False, quiet=True)
    assert (s["kept"], s["rejected"]) == (1, 1) and s["per_split"]["xsub"]["test"]["rejected"] == 1
    with open(tmp_path / "st" / "rejects.tsv") as f:
        (r,) = list(csv.DictReader(f, delimiter="\t"))
    assert r["name"] == "a02_s02_e01" and r["status"] == "rejected" and all(w in r["reason"] for w in words)
    st = Store(tmp_path / "st")
    assert st.num_frames.tolist() == [2]  # the all-zero middle frame of the good file was dropped
