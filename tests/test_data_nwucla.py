"""NW-UCLA: the 1,484 real clips, cross-view counts and class balance, values read back, the 1-frame clips through
sampling and velocity, and one clear line for every malformed file."""
import csv
import json

import numpy as np
import pytest
import torch

from slnl.data import load, nwucla
from slnl.data.errors import DataFormatError
from slnl.data.prepare import main, prepare_dataset
from slnl.data.store import Store, canonical_split, split_names
from slnl.models.transform import velocity
from conftest import prepare_shared

# clips per class (label order), from the file names: views 1 + 2 train, view 3 test
TRAIN_PER_CLASS = [102, 102, 96, 124, 101, 102, 99, 99, 98, 97]
TEST_PER_CLASS = [48, 50, 45, 49, 47, 47, 43, 43, 47, 45]


@pytest.fixture(scope="module")
def ucla_store(shared_data, tmp_path_factory):
    return prepare_shared(shared_data, tmp_path_factory, "nwucla", "nw_ucla/all_sqe")


def test_1484_clips_split_by_view(ucla_store):
    raw, out, summary = ucla_store
    st = Store(out)
    files = sorted(p.stem for p in raw.glob("*.json"))
    assert len(files) == 1484 and st.names == files
    assert (summary["kept"], summary["rejected"], summary["skipped"]) == (1484, 0, 0)
    assert summary["total_seconds"] < 10  # measured: 1.2-3.2 s on 2 shared cores
    view = np.array([nwucla.parse_name(n)["view"] for n in st.names])
    tr, te = st.splits["xview_train"], st.splits["xview_test"]
    assert (tr == np.isin(view, [1, 2])).all() and (te == (view == 3)).all()
    assert st.meta["counts"]["xview"] == {"train": 1020, "test": 464}
    assert split_names(out) == ["xview", "xview-val"] and canonical_split("CV") == "xview"
    # the selection split lies inside the training views: view 1 trains, view 2 validates, view 3 is not in it
    vtr, vte = st.splits["xview-val_train"], st.splits["xview-val_test"]
    assert (vtr == (view == 1)).all() and (vte == (view == 2)).all() and not ((vtr | vte) & te).any()
    assert st.meta["counts"]["xview-val"] == {"train": int((view == 1).sum()), "test": int((view == 2).sum())}
    assert len(st.rows("CV", "train")) == 1020 and len(st.rows("cv", "test")) == 464
    # every clip kept, the 1- to 10-frame ones included (the published numbers test on all 464)
    assert st.num_frames.min() == 1 and st.num_frames.max() == 201 and int((st.num_frames <= 10).sum()) == 11
    assert st.x.shape == (1484, 3, 201, 20, 1)


def test_classes_labels_and_balance(ucla_store):
    raw, out, _ = ucla_store
    st = Store(out)
    assert st.num_classes == 10 and st.class_names == nwucla.CLASS_NAMES
    assert st.class_names[:3] == ["pick up with one hand", "pick up with two hands", "drop trash"]
    actions = [nwucla.parse_name(n)["action"] for n in st.names]
    assert sorted(set(actions)) == [1, 2, 3, 4, 5, 6, 8, 9, 11, 12]
    assert st.labels.tolist() == [nwucla.ACTIONS.index(a) for a in actions]
    for n, lab in list(zip(st.names, st.labels.tolist()))[::37]:  # the file's own "label" agrees (1-based)
        assert json.loads((raw / f"{n}.json").read_text())["label"] == lab + 1
    tr, te = st.splits["xview_train"], st.splits["xview_test"]
    assert np.bincount(st.labels[tr], minlength=10).tolist() == TRAIN_PER_CLASS
    assert np.bincount(st.labels[te], minlength=10).tolist() == TEST_PER_CLASS
    assert len(st.meta["joint_names"]) == 20 and st.meta["joint_names"][3] == "head"
    assert all(0 <= a < 20 and 0 <= b < 20 for a, b in st.meta["bones"]) and len(st.meta["bones"]) == 19
    assert (st.meta["dataset"], st.meta["source_format"], st.meta["channels"]) == ("nwucla", "nwucla", ["x", "y", "z"])


def test_values_read_back_as_in_the_file(ucla_store):
    raw, out, _ = ucla_store
    st = Store(out)
    for name in ["a01_s01_e00_v01", "a02_s09_e04_v03", "a04_s01_e01_v01", "a12_s10_e04_v03"] + st.names[::97]:
        sk = np.array(json.loads((raw / f"{name}.json").read_text())["skeletons"])  # (T, 20, 3)
        i = st.names.index(name)
        T = len(sk)
        assert st.num_frames[i] == T
        np.testing.assert_array_equal(st.x[i, :, :T, :, 0], sk.transpose(2, 0, 1).astype(np.float32))
        assert not st.x[i, :, T:].any()
    first = json.loads((raw / "a01_s01_e00_v01.json").read_text())["skeletons"][0][0]
    assert st.x[0, :, 0, 0, 0].tolist() == np.float32(first).tolist()
    # a frame with joints the sensor lost (0, 0, 0): kept as the file has it, counted
    _, info = nwucla.read_clip(raw / "a04_s01_e01_v01.json")
    assert info == {"frames": 84, "zero_joints": 6}


@pytest.mark.parametrize("name,subset", [("a02_s09_e04_v02", "train"), ("a02_s09_e04_v03", "test")])
def test_one_frame_clip_survives_sampling_and_velocity(ucla_store, name, subset):
    _, out, _ = ucla_store
    ds = load(out, split="xview", subset=subset, T=16)
    row = ds.names.index(name)
    assert ds.num_frames[row] == 1
    pos = int(np.flatnonzero(ds.indices == row)[0])
    x, label = ds[pos]
    assert x.shape == (3, 16, 20, 1) and label == 1
    frame = torch.from_numpy(np.array(ds.x[row, :, 0]))  # (3, 20, 1)
    assert torch.equal(x, frame[:, None].expand_as(x))  # the one frame, repeated
    v = velocity(x[None])
    assert v.shape == (1, 3, 16, 20, 1) and torch.isfinite(v).all() and not v.any()


def test_published_numbers():
    p = nwucla.PUBLISHED["xview"]
    assert sorted(p.values()) == [94.4, 96.5, 97.0]
    assert any("FR-Head" in k and "joint" in k for k in p) and nwucla.SPLITS == ("xview", "xview-val")


# ---------------------------------------------------------------------------------------------------------- bad input
def clip_json(name, label, frames=3, **override):
    rng = np.random.default_rng(len(name) + label)
    sk = (rng.normal(0, 0.3, (frames, 20, 3)) + [0, 0, 3]).round(5).tolist()
    d = {"file_name": name, "skeletons": sk, "label": label, **override}
    return json.dumps(d)


GOOD_NAME, BAD_NAME = "a01_s01_e00_v01", "a02_s02_e00_v03"


def _set(path_value):
    def f():
        d = json.loads(clip_json(BAD_NAME, 2))
        for path, value in path_value:
            *head, last = path
            tgt = d
            for k in head:
                tgt = tgt[k]
            tgt[last] = value
        return json.dumps(d)
    return f


BAD = [
    ("not_json", lambda: clip_json(BAD_NAME, 2)[:-40], 1, ["valid JSON"]),
    ("missing_key", lambda: json.dumps({"file_name": BAD_NAME, "skeletons": [[[0, 0, 1]] * 20]}), "$",
     ['"label"', "no 'label'"]),
    ("not_an_object", lambda: "[1, 2, 3]", "$", ['"skeletons"', "[1, 2, 3]"]),
    ("nineteen_joints", _set([(("skeletons", 1), [[0.1, 0.2, 3.0]] * 19)]), "skeletons[1]", ["20 joints", "19"]),
    ("two_numbers", _set([(("skeletons", 2, 5), [0.1, 0.2])]), "skeletons[2][5]", ["3 numbers", "[0.1, 0.2]"]),
    ("non_numeric", _set([(("skeletons", 0, 4, 1), "x2")]), "skeletons[0][4][1]", ["a number", '"x2"']),
    ("numeric_string", _set([(("skeletons", 0, 4, 1), "0.5")]), "skeletons[0][4][1]", ["a number", '"0.5"']),
    ("boolean", _set([(("skeletons", 1, 0, 0), True)]), "skeletons[1][0][0]", ["a number", "true"]),
    ("nan", _set([(("skeletons", 0, 3, 2), float("nan"))]), "skeletons[0][3][2]", ["a finite number", "nan"]),
    ("huge_integer", _set([(("skeletons", 1, 2, 0), 10**400)]), "skeletons[1][2][0]", ["finite", "401 digits"]),
    ("absurd", _set([(("skeletons", 2, 7, 2), 1e30)]), "skeletons[2][7][2]", ["z within [-10, 10]", "1e+30"]),
    ("no_frame", _set([(("skeletons",), [])]), "skeletons", [">= 1 frame", "empty list"]),
    ("label_name_mismatch", _set([(("label",), 3)]), "label", ["2 (the file name's action a02", "found 3"]),
    ("label_not_int", _set([(("label",), "2")]), "label", ["an integer 1-10", '"2"']),
    ("file_name_mismatch", _set([(("file_name",), "a02_s02_e00_v01")]), "file_name", [BAD_NAME, "a02_s02_e00_v01"]),
]


@pytest.mark.parametrize("case,text,where,words", BAD, ids=[b[0] for b in BAD])
def test_malformed_file_one_line_and_bulk_reject(tmp_path, case, text, where, words):
    raw = tmp_path / "all_sqe"
    raw.mkdir()
    (raw / f"{GOOD_NAME}.json").write_text(clip_json(GOOD_NAME, 1))
    bad = raw / f"{BAD_NAME}.json"
    bad.write_text(text())
    with pytest.raises(DataFormatError) as e:
        nwucla.read_clip(bad, expect_label=1)
    msg = str(e.value)
    assert e.value.file == str(bad) and msg.startswith(str(bad)) and "\n" not in msg
    assert e.value.where == where, (e.value.where, msg)
    for w in words:
        assert w in msg, (w, msg)
    s = prepare_dataset("nwucla", raw, tmp_path / "st", workers=1, progress=False, quiet=True)
    assert (s["kept"], s["rejected"]) == (1, 1) and s["per_split"]["xview"]["test"]["rejected"] == 1
    with open(tmp_path / "st" / "rejects.tsv") as f:
        (r,) = list(csv.DictReader(f, delimiter="\t"))
    assert (r["name"], r["status"], r["file"]) == (BAD_NAME, "rejected", str(bad)) and r["reason"] == msg


def test_names_outside_the_set_are_skipped_and_listed(tmp_path):
    raw = tmp_path / "all_sqe"
    raw.mkdir()
    (raw / f"{GOOD_NAME}.json").write_text(clip_json(GOOD_NAME, 1))
    (raw / "a07_s01_e00_v01.json").write_text(clip_json("a07_s01_e00_v01", 7))
    (raw / "a01_s01_e00_v04.json").write_text(clip_json("a01_s01_e00_v04", 1))
    (raw / "notes.json").write_text("{}")
    s = prepare_dataset("nwucla", raw, tmp_path / "st", workers=1, progress=False, quiet=True)
    assert (s["kept"], s["skipped"], s["rejected"]) == (1, 3, 0)
    with open(tmp_path / "st" / "rejects.tsv") as f:
        rows = {r["name"]: r["reason"] for r in csv.DictReader(f, delimiter="\t")}
    assert "not one of the ten" in rows["a07_s01_e00_v01"] and "view 4" in rows["a01_s01_e00_v04"]
    assert "not an NW-UCLA clip name" in rows["notes"]
    assert any("differ from the 1,484-clip set" in n for n in s["notes"])


def test_command_line_reports_one_line(tmp_path, capsys):
    raw = tmp_path / "all_sqe"
    raw.mkdir()
    bad = raw / f"{BAD_NAME}.json"
    bad.write_text(clip_json(BAD_NAME, 5))
    rc = main(["prepare", "nwucla", "--raw", str(raw), "--out", str(tmp_path / "st"), "--workers", "1",
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(bad) in err and "label" in err and "nothing could be kept" in err
