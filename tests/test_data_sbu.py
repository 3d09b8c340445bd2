"""SBU Kinect Interaction: the 282 real sequences, the five folds and their class balance, both actors in metres
(checked against the raw text), and one clear line, with its line number, for every malformed file."""
import csv

import numpy as np
import pytest

from slnl.data import sbu
from slnl.data.errors import DataFormatError
from slnl.data.prepare import main, prepare_dataset
from slnl.data.store import SPLIT_ALIASES, Store, canonical_split, split_names
from conftest import prepare_shared

FOLD_TEST = [55, 52, 56, 54, 65]
# sequences per class (folders 01-08) in each fold's test sets
FOLD_TEST_PER_CLASS = [
    [8, 8, 8, 9, 3, 4, 7, 8],
    [7, 8, 8, 8, 3, 4, 7, 7],
    [8, 8, 8, 8, 4, 4, 7, 9],
    [9, 9, 8, 6, 3, 4, 8, 7],
    [10, 10, 8, 10, 5, 5, 10, 7],
]


@pytest.fixture(scope="module")
def sbu_store(shared_data, tmp_path_factory):
    return prepare_shared(shared_data, tmp_path_factory, "sbu", "sbu")


def raw_metres(path):
    """The file's values in metres, computed here from the raw text with the README's formulas: (T, 2, 15, 3)."""
    rows = [[float(v) for v in ln.split(",")] for ln in path.read_text().splitlines() if ln.strip()]
    a = np.array(rows)[:, 1:].reshape(-1, 2, 15, 3)
    x, y, z = a[..., 0], a[..., 1], a[..., 2]
    return np.stack([1280 - x * 2560, 960 - y * 1920, z * 10000 / 7.8125], axis=-1) / 1000


def test_282_sequences_in_five_folds(sbu_store):
    raw, out, summary = sbu_store
    st = Store(out)
    files = sorted(raw.glob("*/*/*/skeleton_pos.txt"))
    assert len(files) == 282 and st.names == ["_".join(f.parts[-4:-1]) for f in files]
    assert (summary["kept"], summary["rejected"], summary["skipped"]) == (282, 0, 0)
    assert summary["total_seconds"] < 10  # measured: 0.2-0.6 s on 2 shared cores
    assert split_names(out) == ["fold1", "fold2", "fold3", "fold4", "fold5", "fold1-val"]
    sets = np.array([n.split("_")[0] for n in st.names])
    in_test = np.zeros(282, dtype=int)
    for k, n_test in enumerate(FOLD_TEST):
        tr, te = st.splits[f"fold{k + 1}_train"], st.splits[f"fold{k + 1}_test"]
        assert int(te.sum()) == n_test and int(tr.sum()) == 282 - n_test and not (tr & te).any()
        assert (te == np.isin(sets, sbu.FOLDS[k])).all()
        assert st.meta["counts"][f"fold{k + 1}"] == {"train": 282 - n_test, "test": n_test}
        in_test += te
    assert (in_test == 1).all() and sum(FOLD_TEST) == 282  # each sequence is tested in exactly one fold
    # the selection split lies inside fold 1's training sets: fold 2's sets validate, folds 3-5's train
    vtr, vte = st.splits["fold1-val_train"], st.splits["fold1-val_test"]
    assert (vte == np.isin(sets, sbu.FOLDS[1])).all() and int(vte.sum()) == FOLD_TEST[1]
    assert (vtr == np.isin(sets, sbu.FOLDS[2] + sbu.FOLDS[3] + sbu.FOLDS[4])).all()
    assert not ((vtr | vte) & st.splits["fold1_test"]).any()
    # fold names are canonical as written, and nothing maps them to (or from) CS/CV
    assert canonical_split("Fold3") == "fold3" and canonical_split("CV") == "xview"
    assert not any(k.startswith("fold") or v.startswith("fold") for k, v in SPLIT_ALIASES.items())
    assert len(st.rows("fold2", "test")) == 52


def test_classes_labels_and_balance(sbu_store):
    _, out, _ = sbu_store
    st = Store(out)
    assert st.num_classes == 8 and st.class_names[0] == "approaching" and st.class_names[-1] == "exchanging"
    assert st.labels.tolist() == [int(n.split("_")[1]) - 1 for n in st.names]
    total = np.bincount(st.labels, minlength=8)
    assert total.tolist() == [42, 43, 40, 41, 18, 21, 39, 38]
    for k, expected in enumerate(FOLD_TEST_PER_CLASS):
        te, tr = st.splits[f"fold{k + 1}_test"], st.splits[f"fold{k + 1}_train"]
        assert np.bincount(st.labels[te], minlength=8).tolist() == expected
        assert np.bincount(st.labels[tr], minlength=8).tolist() == (total - expected).tolist()


def test_both_actors_in_metres_as_in_the_raw_text(sbu_store):
    raw, out, _ = sbu_store
    st = Store(out)
    assert st.x.shape == (282, 3, 46, 15, 2) and st.num_frames.min() == 10 and st.num_frames.max() == 46
    assert st.meta["persons"] == ["PA", "PB"] and len(st.meta["joint_names"]) == 15
    assert st.meta["joint_names"][:3] == ["head", "neck", "torso"] and len(st.meta["bones"]) == 14
    for name in ["s01s02_01_001", "s06s03_07_002", "s07s03_05_001"] + st.names[::23]:
        i = st.names.index(name)
        m = raw_metres(raw.joinpath(*name.split("_"), "skeleton_pos.txt"))  # (T, M, V, 3)
        T = len(m)
        assert st.num_frames[i] == T and not st.x[i, :, T:].any()
        np.testing.assert_allclose(st.x[i, :, :T], m.transpose(3, 0, 2, 1), rtol=0, atol=1e-6)
    # the first value of the first file: PA's head x, by hand
    first = (raw / "s01s02" / "01" / "001" / "skeleton_pos.txt").read_text().split(",")[1]
    assert st.x[0, 0, 0, 0, 0] == pytest.approx((1280 - float(first) * 2560) / 1000, abs=1e-6)
    # two persons present and distinct in every frame of every clip
    for i in range(len(st.names)):
        T = int(st.num_frames[i])
        pa, pb = st.x[i, :, :T, :, 0], st.x[i, :, :T, :, 1]
        assert np.abs(pa).sum(axis=(0, 2)).all() and np.abs(pb).sum(axis=(0, 2)).all()
        assert (np.abs(pa - pb).sum(axis=(0, 2)) > 0).all(), st.names[i]


def test_published_numbers():
    assert sbu.PUBLISHED[sbu.MEAN_OVER_FOLDS] == {"ST-LSTM (Liu et al. 2016)": 93.3,
                                                   "VA-LSTM (Zhang et al. 2017)": 97.2, "HCN (Li et al. 2018)": 98.6}
    assert sbu.MEAN_OVER_FOLDS not in sbu.SPLITS


# ---------------------------------------------------------------------------------------------------------- bad input
def good_text(frames=4, first=17):
    rng = np.random.default_rng(first)
    lines = []
    for t in range(frames):
        v = np.concatenate([rng.uniform(0.2, 0.8, (30, 2)), rng.uniform(1.0, 2.0, (30, 1))], axis=1).round(5)
        lines.append(",".join([str(first + t)] + [f"{e:g}" for e in v.ravel()]))
    return "\r\n".join(lines) + "\r\n"


def replace_value(text, line, k, value):
    """``text`` with value ``k`` (0-based) of (1-based) ``line`` replaced."""
    lines = text.split("\r\n")
    parts = lines[line - 1].split(",")
    parts[k] = value
    lines[line - 1] = ",".join(parts)
    return "\r\n".join(lines)


def drop_value(text, line):
    lines = text.split("\r\n")
    lines[line - 1] = lines[line - 1].rsplit(",", 1)[0]
    return "\r\n".join(lines)


BAD = [
    ("ninety_values", lambda: drop_value(good_text(), 2), 2, ["91 comma-separated values", "90 values"]),
    ("non_numeric", lambda: replace_value(good_text(), 3, 50, "abc"), 3,
     ["a number for value 51 of 91 (PB(2) y)", "'abc'"]),
    ("nan", lambda: replace_value(good_text(), 4, 1, "nan"), 4, ["a finite number for value 2 of 91 (PA(1) x)"]),
    ("absurd", lambda: replace_value(good_text(), 2, 45, "100"), 2, ["z within [-10, 10]", "128"]),
    ("frame_gap", lambda: replace_value(good_text(), 3, 0, "30"), 3, ["frame number 19", "30"]),
    ("frame_not_integer", lambda: replace_value(good_text(), 1, 0, "1.5"), 1, ["integer frame number", "1.5"]),
    ("blank_line", lambda: good_text().replace("\r\n", "\r\n\r\n", 1), 2, ["91 comma-separated", "1 values"]),
    ("empty", lambda: "", 1, ["one line of 91", "empty file"]),
]


def sbu_tree(tmp_path, bad_text=None):
    raw = tmp_path / "sbu"
    (raw / "s01s02" / "03" / "001").mkdir(parents=True)
    (raw / "s01s02" / "03" / "001" / "skeleton_pos.txt").write_text(good_text())
    bad = raw / "s04s02" / "06" / "002" / "skeleton_pos.txt"
    bad.parent.mkdir(parents=True)
    if bad_text is not None:
        bad.write_bytes(bad_text.encode())
    return raw, bad


@pytest.mark.parametrize("case,text,line,words", BAD, ids=[b[0] for b in BAD])
def test_malformed_row_one_line_and_bulk_reject(tmp_path, case, text, line, words):
    raw, bad = sbu_tree(tmp_path, text())
    with pytest.raises(DataFormatError) as e:
        sbu.read_sequence(bad)
    msg = str(e.value)
    assert e.value.file == str(bad) and e.value.where == line and "\n" not in msg
    assert msg.startswith(f"{bad}, line {line}: expected ")
    for w in words:
        assert w in msg, (w, msg)
    s = prepare_dataset("sbu", raw, tmp_path / "st", workers=1, progress=False, quiet=True)
    assert (s["kept"], s["rejected"]) == (1, 1) and s["per_split"]["fold5"]["test"]["rejected"] == 1
    with open(tmp_path / "st" / "rejects.tsv") as f:
        (r,) = list(csv.DictReader(f, delimiter="\t"))
    assert (r["name"], r["status"], r["where"], r["reason"]) == ("s04s02_06_002", "rejected", str(line), msg)


def test_folders_outside_the_layout(tmp_path):
    raw, bad = sbu_tree(tmp_path)  # a sequence folder without skeleton_pos.txt
    (raw / "s09s01" / "01" / "001").mkdir(parents=True)  # a set in no fold
    (raw / "s01s02" / "09" / "001").mkdir(parents=True)  # no class 09
    (raw / "docs").mkdir()
    s = prepare_dataset("sbu", raw, tmp_path / "st", workers=1, progress=False, quiet=True)
    assert (s["kept"], s["rejected"], s["skipped"]) == (1, 1, 3)
    with open(tmp_path / "st" / "rejects.tsv") as f:
        rows = {r["name"]: (r["status"], r["reason"]) for r in csv.DictReader(f, delimiter="\t")}
    assert rows["s04s02_06_002"] == ("rejected", "sequence folder without skeleton_pos.txt")
    assert "none of the README's five folds" in rows["s09s01"][1] and "class folder" in rows["s01s02_09"][1]
    assert "not an SBU set folder" in rows["docs"][1]
    st = Store(tmp_path / "st")
    assert st.x.shape == (1, 3, 4, 15, 2) and st.labels.tolist() == [2]


def test_command_line_reports_one_line_with_file_and_line(tmp_path, capsys):
    raw, bad = sbu_tree(tmp_path, drop_value(good_text(), 3))
    (raw / "s01s02" / "03" / "001" / "skeleton_pos.txt").write_text(replace_value(good_text(), 2, 7, "x"))
    rc = main(["prepare", "sbu", "--raw", str(raw), "--out", str(tmp_path / "st"), "--workers", "1",
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "nothing could be kept out of 2" in err and "skeleton_pos.txt, line" in err
