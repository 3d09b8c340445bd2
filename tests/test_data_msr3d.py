"""MSR Action3D: the 557 standard sequences, cross-subject counts, the Lie group release's ten subject splits
(tr_te_splits.mat), zero frames dropped, bad input."""
import csv

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from slnl.data import msr3d, prepare
from slnl.data.errors import DataFormatError
from slnl.data.pipeline import run_plan
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
    assert {k: st.meta["counts"][k] for k in ("xsub", "xsub-val")} == {
        "xsub": {"train": 284, "test": 273}, "xsub-val": {"train": 170, "test": 114}}
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


def test_lie_splits_are_the_mat_files_ten_subject_splits(msr_store):
    """lie1 ... lie10 = the rows of the shared tr_te_splits.mat (read here on its own): each split's training clips
    are exactly its training subjects' clips, its test clips the other five subjects'; none of them is xsub."""
    raw, out, summary = msr_store
    st = Store(out)
    mat = loadmat(raw / "tr_te_splits.mat")
    tr_rows, te_rows = mat["tr_subjects"].astype(int), mat["te_subjects"].astype(int)
    assert tr_rows.shape == te_rows.shape == (10, 5)
    used = (raw / "files_used_in_cvpr12_paper.txt").read_text().split()
    subj = np.array([int(n.split("_")[1][1:]) for n in sorted(used)])  # the standard list, parsed independently
    assert st.names == sorted(used)
    counts = {}
    for k, (tr_s, te_s) in enumerate(zip(tr_rows, te_rows), start=1):
        assert sorted([*tr_s, *te_s]) == list(range(1, 11))  # a 5/5 split of the ten subjects
        tr, te = st.splits[f"lie{k}_train"], st.splits[f"lie{k}_test"]
        np.testing.assert_array_equal(tr, np.isin(subj, tr_s))
        np.testing.assert_array_equal(te, np.isin(subj, te_s))
        assert not (tr & te).any() and (tr | te).all()  # every clip on one side, all 20 classes on both
        assert len(set(st.labels[tr].tolist())) == len(set(st.labels[te].tolist())) == 20
        assert not set(tr_s) == {1, 3, 5, 7, 9}  # not xsub
        counts[f"lie{k}"] = {"train": int(np.isin(subj, tr_s).sum()), "test": int(np.isin(subj, te_s).sum())}
        assert frozenset(tr_s.tolist()) == msr3d.LIE_TRAIN[k - 1]
    assert st.meta["counts"] == {"xsub": {"train": 284, "test": 273}, "xsub-val": {"train": 170, "test": 114},
                                 **counts}
    # pinned: the test sides' sizes (so a mean over the ten weights the splits by these, not by 273)
    assert [counts[f"lie{k}"]["test"] for k in range(1, 11)] == [269, 292, 273, 270, 273, 271, 271, 274, 269, 272]
    assert all(c["train"] + c["test"] == 557 for c in counts.values())
    assert st.meta["splits"] == ["xsub", "xsub-val", *msr3d.LIE_SPLITS] and summary["notes"] == []
    assert st.split_names == ["xsub", *sorted(["xsub-val", *msr3d.LIE_SPLITS])]  # other names sort after the canonical
    assert st.meta["provenance"]["options"]["splits_mat"] == str(raw / "tr_te_splits.mat")


def _tiny_raw(tmp_path, subjects=range(1, 11)):
    """A raw folder: one good clip of action 1 per subject, and the used list naming them."""
    raw = tmp_path / "raw"
    raw.mkdir()
    names = [f"a01_s{s:02d}_e01" for s in subjects]
    for n in names:
        (raw / f"{n}_skeleton3D.txt").write_text(GOOD)
    (raw / "files_used_in_cvpr12_paper.txt").write_text("\n".join(names) + "\n")
    return raw


RELEASE = np.array([sorted(t) for t in msr3d.LIE_TRAIN])
RELEASE_TE = np.array([sorted(set(range(1, 11)) - set(t)) for t in RELEASE])


def test_without_the_mat_no_lie_splits_and_a_note(tmp_path, capsys):
    raw = _tiny_raw(tmp_path)
    s = prepare_dataset("msr3d", raw, tmp_path / "st", workers=1, progress=False)
    st = Store(tmp_path / "st")
    assert st.split_names == ["xsub", "xsub-val"] and st.meta["splits"] == ["xsub", "xsub-val"]
    (note,) = s["notes"]
    assert "tr_te_splits.mat" in note and "lie1-lie10" in note and "not made" in note and "\n" not in note
    assert f"note: {note}" in capsys.readouterr().out  # printed, one line
    assert st.meta["provenance"]["options"]["splits_mat"] is None


def test_splits_mat_given_elsewhere_or_next_to_the_raw_files(tmp_path):
    raw = _tiny_raw(tmp_path)
    mat = tmp_path / "elsewhere.mat"
    savemat(mat, {"tr_subjects": RELEASE, "te_subjects": RELEASE_TE})
    s = run_plan(msr3d.plan(raw, splits_mat=mat), tmp_path / "st", workers=1, progress=False, log=lambda *_: None)
    st = Store(tmp_path / "st")
    subj = np.array([msr3d.parse_name(n)["subject"] for n in st.names])
    for k, train in enumerate(msr3d.LIE_TRAIN, start=1):
        np.testing.assert_array_equal(st.splits[f"lie{k}_train"], np.isin(subj, sorted(train)))
        np.testing.assert_array_equal(st.splits[f"lie{k}_test"], ~np.isin(subj, sorted(train)))
    assert s["notes"] == [] and st.meta["provenance"]["options"]["splits_mat"] == str(mat)
    with pytest.raises(FileNotFoundError, match="--splits-mat .*absent.mat: not found"):
        msr3d.plan(raw, splits_mat=tmp_path / "absent.mat")
    # next to the raw files: found without the option; a file other than the release's is used, with a note
    savemat(raw / "tr_te_splits.mat", {"tr_subjects": [[1, 3, 5, 7, 9], [2, 4, 6, 8, 10]],
                                       "te_subjects": [[2, 4, 6, 8, 10], [1, 3, 5, 7, 9]]})
    p = msr3d.plan(raw)
    assert p.splits == ("xsub", "xsub-val", "lie1", "lie2")
    (note,) = p.notes
    assert "differ from the Lie group release's ten" in note and "tr_te_splits.mat" in note
    first = next(it for it in p.items if it.name == "a01_s01_e01").member
    assert first == {"xsub": True, "xsub-val": True, "lie1": True, "lie2": False}


def test_splits_mat_from_the_command_line(tmp_path, capsys):
    raw = _tiny_raw(tmp_path)
    mat = tmp_path / "elsewhere.mat"
    savemat(mat, {"tr_subjects": RELEASE, "te_subjects": RELEASE_TE})
    rc = prepare.main(["msr3d", "--raw", str(raw), "--out", str(tmp_path / "st"), "--splits-mat", str(mat),
                       "--workers", "1", "--no-progress"])
    st = Store(tmp_path / "st")
    assert rc == 0 and st.meta["provenance"]["options"]["splits_mat"] == str(mat)
    assert [s for s in st.meta["splits"] if s.startswith("lie")] == list(msr3d.LIE_SPLITS)
    rc = prepare.main(["msr3d", "--raw", str(raw), "--out", str(tmp_path / "st2"), "--splits-mat",
                       str(tmp_path / "absent.mat")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "--splits-mat" in err[0] and "absent.mat: not found" in err[0]


MAT_BAD = [
    ("missing_field", {"tr_subjects": RELEASE}, "te_subjects", ["a field 'te_subjects'", "fields: tr_subjects"]),
    ("cell_array", {"tr_subjects": np.array([[1, "a"]], dtype=object), "te_subjects": RELEASE_TE}, "tr_subjects",
     ["numeric K × n matrix", "object"]),
    ("out_of_range", {"tr_subjects": np.where(RELEASE == 10, 11, RELEASE), "te_subjects": RELEASE_TE},
     "tr_subjects[1, 5]", ["subject number 1-10", "11"]),
    ("not_whole", {"tr_subjects": RELEASE + 0.5, "te_subjects": RELEASE_TE}, "tr_subjects[1, 1]", ["whole"]),
    ("row_count", {"tr_subjects": RELEASE, "te_subjects": RELEASE_TE[:9]}, "te_subjects",
     ["as many rows as tr_subjects (10)", "9 rows"]),
    ("overlap", {"tr_subjects": RELEASE, "te_subjects": np.vstack([RELEASE[:1], RELEASE_TE[1:]])},
     "tr_subjects[1] / te_subjects[1]", ["together are subjects 1-10", "training [1, 2, 3, 5, 10]"]),
]


@pytest.mark.parametrize("case,content,field,words", MAT_BAD, ids=[b[0] for b in MAT_BAD])
def test_malformed_mat_one_line_naming_file_and_field(tmp_path, capsys, case, content, field, words):
    raw = _tiny_raw(tmp_path)
    mat = raw / "tr_te_splits.mat"
    savemat(mat, content)
    with pytest.raises(DataFormatError) as e:
        msr3d.read_splits_mat(mat)
    assert e.value.file == str(mat) and e.value.where == field and f"{mat}, at {field}: expected" in str(e.value)
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    # the command line: refused before reading any clip, one line on stderr, nothing written
    assert prepare.main(["msr3d", "--raw", str(raw), "--out", str(tmp_path / "st"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(mat) in err and field in err and not (tmp_path / "st").exists()


def test_not_a_mat_file(tmp_path):
    mat = tmp_path / "tr_te_splits.mat"
    mat.write_text("tr_subjects = [1 3 5 7 9]\n")
    with pytest.raises(DataFormatError, match=r"tr_te_splits.mat: expected a MATLAB .mat file .*tr_subjects and "
                                              r"te_subjects.*found unreadable"):
        msr3d.read_splits_mat(mat)


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
