"""Kinetics-skeleton: the real clip (label, 1-based frame placement, empty frames, top-2 persons), bad JSON, bulk."""
import csv
import json

import numpy as np
import pytest

from slnl.data import kinetics
from slnl.data.errors import DataFormatError
from slnl.data.prepare import prepare_dataset
from slnl.data.store import Store

CLIP = "--33Lscn6sk"


@pytest.fixture(scope="module")
def real(shared_data):
    p = shared_data / "kinetics_samples" / f"{CLIP}.json"
    if not p.is_file():
        pytest.skip(f"{p} absent")
    return p


def test_real_clip(real):
    d = json.loads(real.read_text())
    x, info = kinetics.read_clip(real, expect_label=129)
    assert d["label"] == "flipping pancake" and d["label_index"] == 129 and info["label_index"] == 129
    assert x.shape == (3, 189, 18, 2)
    # 1-based frame_index -> row frame_index - 1, values as in the file
    by_index = {fr["frame_index"]: fr["skeleton"] for fr in d["data"]}
    assert min(by_index) == 1 and max(by_index) == 189
    for fi, sk in by_index.items():
        if len(sk) == 1:
            np.testing.assert_array_equal(x[0, fi - 1, :, 0], np.float32(sk[0]["pose"][0::2]))
            np.testing.assert_array_equal(x[1, fi - 1, :, 0], np.float32(sk[0]["pose"][1::2]))
            np.testing.assert_array_equal(x[2, fi - 1, :, 0], np.float32(sk[0]["score"]))
            assert not x[:, fi - 1, :, 1].any()
    # frames with no person: zero for both persons, and counted
    empty = [fi for fi, sk in by_index.items() if not sk]
    assert len(empty) == 26 and info["empty_frames"] == 26
    assert not x[:, [fi - 1 for fi in empty]].any()
    # 3-person frames: the two with the highest summed score, in that order
    three = [fi for fi, sk in by_index.items() if len(sk) == 3]
    assert len(three) == 4 and info["frames_with_more_persons"] == 4 and info["dropped_persons"] == 4
    for fi in three:
        sk = by_index[fi]
        order = np.argsort([-sum(p["score"]) for p in sk], kind="stable")
        for m in range(2):
            np.testing.assert_array_equal(x[2, fi - 1, :, m], np.float32(sk[order[m]]["score"]))
        lowest = sk[order[2]]
        assert not any(np.array_equal(x[2, fi - 1, :, m], np.float32(lowest["score"])) for m in range(2))


def test_label_names_file(shared_data):
    p = shared_data / "kinetics_samples" / "label_name.txt"
    if not p.is_file():
        pytest.skip(f"{p} absent")
    names = kinetics.read_label_names(p)
    assert len(names) == 400 and names[129] == "flipping pancake"


def person(score, base):
    return {"pose": [round(base + 0.01 * k, 3) for k in range(36)], "score": [score] * 18}


def test_top2_by_summed_score_when_file_order_differs(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"data": [
        {"frame_index": 3, "skeleton": [person(0.1, 0.1), person(0.9, 0.2), person(0.5, 0.3)]},
        {"frame_index": 1, "skeleton": [person(0.4, 0.4)]},
    ], "label": "x", "label_index": 0}))
    x, info = kinetics.read_clip(p)
    assert x.shape[1] == 3 and info["empty_frames"] == 1 and not x[:, 1].any()
    np.testing.assert_allclose(x[2, 2, 0], [0.9, 0.5])  # best first, then second best; 0.1 dropped
    np.testing.assert_allclose(x[0, 2, 0], [0.2, 0.3])
    np.testing.assert_allclose(x[0, 0, 0, 0], 0.4)


GOOD = {"data": [{"frame_index": 1, "skeleton": [person(0.5, 0.1)]},
                 {"frame_index": 2, "skeleton": [person(0.6, 0.2)]}], "label": "x", "label_index": 0}


def _mut(f):
    def g():
        d = json.loads(json.dumps(GOOD))
        f(d)
        return json.dumps(d)
    return g


BAD = [
    ("json_does_not_parse", lambda: '{"data": [{"frame_index": 1,', 1, ["valid JSON"]),
    ("not_an_object", lambda: "[1, 2]", "$", ['"data" list']),
    ("pose_value_count", _mut(lambda d: d["data"][1]["skeleton"][0]["pose"].pop()),
     "data[1].skeleton[0].pose", ["36 numbers", "found 35"]),
    ("score_value_count", _mut(lambda d: d["data"][0]["skeleton"][0].__setitem__("score", [1] * 17)),
     "data[0].skeleton[0].score", ["18 numbers", "17"]),
    ("non_numeric", _mut(lambda d: d["data"][0]["skeleton"][0]["pose"].__setitem__(4, "abc")),
     "data[0].skeleton[0].pose[4]", ["a number", "abc"]),
    ("nan", lambda: json.dumps(GOOD).replace("0.11", "NaN", 1), "data[0].skeleton[0].pose[1]", ["finite", "nan"]),
    ("infinity", lambda: json.dumps(GOOD).replace("0.12", "-Infinity", 1), "data[0].skeleton[0].pose[2]",
     ["finite", "-inf"]),
    ("frame_index_zero", _mut(lambda d: d["data"][0].__setitem__("frame_index", 0)), "data[0].frame_index",
     ["integer >= 1 (1-based)", "0"]),
    ("duplicate_frame", _mut(lambda d: d["data"][1].__setitem__("frame_index", 1)), "data[1].frame_index",
     ["each frame_index once"]),
    ("zero_valid_frames", _mut(lambda d: [fr.__setitem__("skeleton", []) for fr in d["data"]]), "data",
     ["at least one person", "no person in any of its 2 frames"]),
    ("label_disagrees", _mut(lambda d: d.__setitem__("label_index", 7)), "label_index", ["0 (as in the label file)",
                                                                                           "7"]),
]


@pytest.mark.parametrize("case,text,where,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_strict_error_and_bulk_reject(tmp_path, case, text, where, words):
    raw = tmp_path / "raw"
    for part in ("train", "val"):
        (raw / f"kinetics_{part}").mkdir(parents=True)
    (raw / "kinetics_train" / "good.json").write_text(json.dumps(GOOD))
    bad = raw / "kinetics_val" / "bad.json"
    bad.write_text(text())
    lab = {"has_skeleton": True, "label": "x", "label_index": 0}
    (raw / "kinetics_train_label.json").write_text(json.dumps({"good": lab, "gone": {**lab, "has_skeleton": False}}))
    (raw / "kinetics_val_label.json").write_text(json.dumps({"bad": lab}))
    with pytest.raises(DataFormatError) as e:
        kinetics.read_clip(bad, expect_label=0)
    msg = str(e.value)
    assert e.value.file == str(bad) and e.value.where == where and str(bad) in msg
    for w in words:
        assert w in msg, (w, msg)
    s = prepare_dataset("kinetics", raw, tmp_path / "st", workers=1, progress=False, quiet=True)
    assert (s["kept"], s["rejected"], s["skipped"]) == (1, 1, 1)
    assert s["per_split"]["default"]["test"]["rejected"] == 1
    assert s["per_split"]["default"]["train"]["skipped"] == 1  # has_skeleton false: left out and counted
    assert any("1 clip(s) with has_skeleton false" in n for n in s["notes"])
    with open(tmp_path / "st" / "rejects.tsv") as f:
        rows = {r["name"]: r for r in csv.DictReader(f, delimiter="\t")}
    assert rows["bad"]["status"] == "rejected" and rows["bad"]["where"] == str(where)
    assert all(w in rows["bad"]["reason"] for w in words)
    assert rows["gone"]["status"] == "skipped" and "has_skeleton is false" in rows["gone"]["reason"]
    st = Store(tmp_path / "st")
    assert st.names == ["good"] and st.split_names == ["default"] and st.splits["default_train"].tolist() == [True]


def test_bulk_real_clip_with_label_names(real, tmp_path, shared_data):
    raw = tmp_path / "raw"
    (raw / "kinetics_train").mkdir(parents=True)
    (raw / "kinetics_val").mkdir()
    (raw / "kinetics_train" / real.name).symlink_to(real)
    (raw / "kinetics_train_label.json").write_text(json.dumps(
        {CLIP: {"has_skeleton": True, "label": "flipping pancake", "label_index": 129}}))
    (raw / "kinetics_val_label.json").write_text("{}")
    prepare_dataset("kinetics", raw, tmp_path / "st", workers=1, progress=False, quiet=True,
                    label_names=shared_data / "kinetics_samples" / "label_name.txt")
    st = Store(tmp_path / "st")
    assert st.labels.tolist() == [129] and st.class_names[129] == "flipping pancake" and st.num_frames[0] == 189
    assert st.x.shape == (1, 3, 189, 18, 2) and np.array_equal(st.x[0], kinetics.read_clip(real)[0])
