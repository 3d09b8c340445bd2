"""NTU .skeleton parsing, the actor rule, splits, bulk preparation (rejects, missing list, resume) on real files."""
import csv
import json

import numpy as np
import pytest

from slnl.data import ntu
from slnl.data.errors import DataFormatError, StoreExistsError
from slnl.data.prepare import prepare_dataset
from slnl.data.store import Store

SAMPLES = {  # name: (frames, bodies); label = action - 1
    "S001C001P001R001A011": (82, 1),
    "S001C003P008R002A058": (70, 2),
    "S002C001P003R001A003": (100, 1),
    "S003C001P015R001A034": (71, 1),
    "S004C002P003R001A017": (124, 1),
}


def joint_line(lines, frame, body, joint, bodies_per_frame):
    """0-based line index of (frame, body, joint) in a file whose every frame has ``bodies_per_frame`` bodies."""
    per_frame = 1 + bodies_per_frame * (2 + ntu.NUM_JOINTS)
    return 1 + frame * per_frame + 1 + body * (2 + ntu.NUM_JOINTS) + 2 + joint


def values(line):
    return np.array(line.split()[:3], dtype=np.float32)


def read_rejects(store):
    with open(store / "rejects.tsv") as f:
        return list(csv.DictReader(f, delimiter="\t"))


# ------------------------------------------------------------------------------------------------- real files
@pytest.fixture(scope="module")
def ntu_dir(shared_data):
    d = shared_data / "ntu60_samples"
    if not d.is_dir():
        pytest.skip(f"{d} absent")
    return d


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_real_sample_exact_coordinates(ntu_dir, name):
    frames, nbodies = SAMPLES[name]
    path = ntu_dir / f"{name}.skeleton"
    assert b"\r\n" in path.read_bytes()  # the shared files are CRLF: parsing must not depend on it
    raw = ntu.read_skeleton(path)
    assert raw.num_frames == frames and len(raw.bodies) == nbodies
    assert (raw.body_counts == nbodies).all()
    x, info = ntu.to_clip(raw)
    assert x.shape == (3, frames, 25, 2) and info["actors"] == nbodies and info["dropped_empty_frames"] == 0
    lines = path.read_text().splitlines()
    assert int(lines[0]) == frames
    for f, j in [(0, 0), (frames // 2, 10), (frames - 1, 24)]:
        got = {tuple(x[:, f, j, m]) for m in range(nbodies)}
        want = {tuple(values(lines[joint_line(lines, f, b, j, nbodies)])) for b in range(nbodies)}
        assert got == want, (name, f, j)
    if nbodies == 1:
        assert not x[..., 1].any()  # the second slot of a one-person clip is genuinely empty
    f = ntu.parse_name(name)
    assert f["action"] - 1 == ntu.NTU60_CLASSES.index(ntu.NTU60_CLASSES[f["action"] - 1])


def test_real_values_spot_check(ntu_dir):
    # read off the text of S001C001P001R001A011 (line 5 = frame 1, body 1, joint 1)
    x, _ = ntu.load_clip(ntu_dir / "S001C001P001R001A011.skeleton")
    np.testing.assert_array_equal(x[:, 0, 0, 0], np.float32([0.2058097, 0.1920515, 3.810989]))
    # S001C003P008R002A058, frame 1: body 72057594037944738 joint 1 (line 5)
    x, _ = ntu.load_clip(ntu_dir / "S001C003P008R002A058.skeleton")
    assert np.float32([0.7201789, 0.1647426, 3.561895]).tolist() in [x[:, 0, 0, m].tolist() for m in range(2)]


def test_two_person_sample_keeps_both_in_motion_order(ntu_dir):
    raw = ntu.read_skeleton(ntu_dir / "S001C003P008R002A058.skeleton")
    x, info = ntu.to_clip(raw)
    assert info["actors"] == 2
    assert np.abs(x[..., 0]).sum(axis=(0, 2)).min() > 0 and np.abs(x[..., 1]).sum(axis=(0, 2)).min() > 0
    by_motion = sorted(raw.bodies, key=lambda b: -b.motion)
    for m, b in enumerate(by_motion):
        np.testing.assert_array_equal(x[..., m].transpose(1, 2, 0), b.xyz)


def test_real_bulk_prepare_labels_splits(ntu_dir, tmp_path, shared_data):
    out = tmp_path / "store"
    ml = shared_data / "ntu_meta" / "ntu60_samples_with_missing_skeletons.txt"
    summary = prepare_dataset("ntu60", ntu_dir, out, workers=1, progress=False, quiet=True,
                              missing_list=ml if ml.exists() else None)
    st = Store(out)
    assert st.names == sorted(SAMPLES) and summary["kept"] == 5 and summary["rejected"] == 0
    for i, n in enumerate(st.names):
        f = ntu.parse_name(n)
        assert st.labels[i] == f["action"] - 1 and st.num_frames[i] == SAMPLES[n][0]
    members = {n: (st.splits["xsub_train"][i], st.splits["xview_train"][i]) for i, n in enumerate(st.names)}
    # README: P001/P008/P015 train, P003 test; C001 test, C002/C003 train
    assert members == {"S001C001P001R001A011": (True, False), "S001C003P008R002A058": (True, True),
                       "S002C001P003R001A003": (False, False), "S003C001P015R001A034": (True, False),
                       "S004C002P003R001A017": (False, True)}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"] == {"xsub": {"train": 3, "test": 2}, "xview": {"train": 2, "test": 3}}
    assert meta["provenance"]["software"]["slnl"] and meta["provenance"]["options"]["dataset"] == "ntu60"
    assert (np.asarray(st.splits["xsub_train"]) ^ np.asarray(st.splits["xsub_test"])).all()
    if ml.exists():
        assert any("302 of 302 names in --missing-list have no file" in n for n in summary["notes"])


def test_splits_from_names():
    assert ntu.split_membership("S001C002P045R001A001", "ntu60") == {"xsub": False, "xview": True}
    assert ntu.split_membership("S001C002P045R001A001", "ntu120") == {"xsub": True, "xset": False}
    assert ntu.split_membership("S018C001P103R001A120", "ntu120") == {"xsub": True, "xset": True}
    assert ntu.split_membership("S017C001P104R001A120", "ntu120") == {"xsub": False, "xset": False}
    assert len(ntu.XSUB120_TRAIN) == 53 and len(ntu.XSUB60_TRAIN) == 20
    assert len(ntu.NTU60_CLASSES) == 60 and len(ntu.NTU120_CLASSES) == 120


# ------------------------------------------------------------------------------------------------- actor rule
def pose(rng, amp, k):
    return (rng.normal(0, 1, (1, 25, 3)) + amp * rng.normal(0, 1, (k, 25, 3))).round(6)


def write(path, num_frames, bodies, newline="\r\n"):
    path.write_text(ntu.format_skeleton(num_frames, bodies, newline=newline), newline="")
    return path


def test_actor_rule_short_third_reidentified_and_empty_frames(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    a1 = np.arange(0, 30)  # performer, ID 1, first half
    a2 = np.arange(33, 60)  # same performer re-identified as ID 4 after 3 frames with nobody
    b = np.arange(5, 60)  # partner: enters at frame 5; present while frames 30-32 have only... nobody:
    b = b[(b < 30) | (b >= 33)]
    short = np.arange(10, 18)  # 8 frames: noise
    third = np.arange(40, 60)  # a third simultaneous person, least motion: dropped
    bodies = [("1", a1, pose(rng, 0.5, len(a1))), ("2", b, pose(rng, 0.2, len(b))),
              ("3", short, pose(rng, 1.5, len(short))), ("4", a2, pose(rng, 0.5, len(a2))),
              ("5", third, pose(rng, 0.01, len(third)))]
    p = write(tmp_path / "S001C001P001R001A001.skeleton", n, bodies)
    x, info = ntu.load_clip(p)
    # frames 30, 31, 32 hold no body at all: removed; the others keep their order
    assert x.shape == (3, 57, 25, 2) and info["dropped_empty_frames"] == 3
    assert info["dropped_short_bodies"] == 1 and info["dropped_overlapping_bodies"] == 1 and info["actors"] == 2
    row = {f: r for r, f in enumerate([f for f in range(n) if not 30 <= f <= 32])}
    for bid, frames, xyz in bodies[:2] + bodies[3:4]:
        slot = 1 if bid == "2" else 0
        for k, f in enumerate(frames):
            np.testing.assert_array_equal(x[:, row[f], :, slot].T, xyz[k].astype(np.float32))
    assert not x[:, :5, :, 1].any()  # partner absent before frame 5: zeros there only
    assert np.abs(x[:, 5:, :, 1]).sum(axis=(0, 2)).min() > 0


def test_only_short_bodies_keeps_longest(tmp_path):
    rng = np.random.default_rng(1)
    p = write(tmp_path / "S001C001P001R001A001.skeleton", 10,
              [("1", np.arange(0, 4), pose(rng, 1, 4)), ("2", np.arange(2, 10), pose(rng, 0.1, 8))])
    x, info = ntu.load_clip(p)
    assert info["short_body_fallback"] and x.shape[1] == 8
    assert not x[..., 1].any()


def test_crlf_and_lf_parse_identically(tmp_path):
    rng = np.random.default_rng(2)
    bodies = [("7", np.arange(20), pose(rng, 0.3, 20))]
    a = ntu.load_clip(write(tmp_path / "a.skeleton", 20, bodies, "\r\n"))[0]
    b = ntu.load_clip(write(tmp_path / "b.skeleton", 20, bodies, "\n"))[0]
    np.testing.assert_array_equal(a, b)


def test_more_than_max_frames_cut_and_counted(tmp_path):
    rng = np.random.default_rng(3)
    p = write(tmp_path / "S001C001P001R001A001.skeleton", 30, [("1", np.arange(30), pose(rng, 0.3, 30))])
    x, info = ntu.load_clip(p, max_frames=25)
    assert x.shape[1] == 25 and info["truncated_from"] == 30


# ------------------------------------------------------------------------------------------------- bad input
def good_text(frames=20, nbodies=1):
    rng = np.random.default_rng(4)
    return ntu.format_skeleton(frames, [(str(i + 1), np.arange(frames), pose(rng, 0.3, frames))
                                        for i in range(nbodies)], newline="\n")


def _edit(line_no, new):
    def f(text):
        lines = text.split("\n")
        lines[line_no - 1] = new(lines[line_no - 1])
        return "\n".join(lines)
    return f


# (case, edit of a good 20-frame one-body file, line in the error, words the message must contain)
BAD = [
    ("truncated", lambda t: "\n".join(t.split("\n")[:200]), 201, ["25 joint lines", "end of file", "7 complete"]),
    ("fewer_frames_than_declared", lambda t: "25" + t[2:], 562, ["body count of frame 21", "20 complete frames"]),
    ("wrong_joint_count", _edit(4 + 28 * 2, lambda s: "24"), 60, ["25 joints", "found 24"]),
    ("wrong_value_count", _edit(5 + 28 * 3 + 5, lambda s: s.rsplit(" ", 1)[0]), 94, ["12 joint values", "11 values"]),
    ("non_numeric", _edit(10, lambda s: " ".join(s.split()[:1] + ["abc"] + s.split()[2:])), 10,
     ["a number for joint value 2", "abc"]),
    ("nan", _edit(11, lambda s: "nan " + s.split(" ", 1)[1]), 11, ["finite number for joint value 1", "nan"]),
    ("inf", _edit(12, lambda s: " ".join(s.split()[:2] + ["-inf"] + s.split()[3:])), 12, ["finite", "-inf"]),
    ("body_count_not_int", _edit(2, lambda s: "one"), 2, ["body count of frame 1", "'one'"]),
    ("body_info_values", _edit(3, lambda s: "1 2 3"), 3, ["10 body-info values", "3 values"]),
    ("trailing_garbage", lambda t: t + "5\n", 562, ["end of file after 20 declared frames", "1 more line"]),
    ("no_body_any_frame", lambda t: "3\n0\n0\n0\n", None, ["at least one body", "no body in any of its 3 frames"]),
    ("empty_file", lambda t: "", 1, ["frame count", "empty file"]),
]


@pytest.mark.parametrize("case,edit,line,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_strict_error_and_bulk_reject(tmp_path, case, edit, line, words):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "S001C001P001R001A001.skeleton").write_text(good_text())
    bad = raw / "S001C001P003R001A002.skeleton"
    bad.write_text(edit(good_text()))
    with pytest.raises(DataFormatError) as e:
        ntu.load_clip(bad)
    msg = str(e.value)
    assert str(bad) in msg
    assert e.value.file == str(bad) and e.value.where == line
    assert (f"line {line}:" in msg) if line else True
    for w in words:
        assert w in msg, (w, msg)
    # bulk: skipped, listed with its reason, counted
    summary = prepare_dataset("ntu60", raw, tmp_path / "st", workers=1, progress=False, quiet=True)
    assert summary["kept"] == 1 and summary["rejected"] == 1
    assert summary["per_split"]["xsub"]["test"]["rejected"] == 1  # P003 is a test subject
    (r,) = read_rejects(tmp_path / "st")
    assert r["name"] == bad.stem and r["status"] == "rejected" and r["file"] == str(bad)
    assert r["where"] == ("" if line is None else str(line)) and all(w in r["reason"] for w in words)


def test_lenient_mode_keeps_complete_frames_of_truncated_file(tmp_path):
    p = tmp_path / "t.skeleton"
    p.write_text("\n".join(good_text().split("\n")[:200]))
    raw = ntu.read_skeleton(p, strict=False)
    assert raw.num_frames == 7 and "truncated: 7 of 20" in raw.warnings[0]


def test_missing_list_disagreements_reported(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "S001C001P001R001A001.skeleton").write_text(good_text())  # listed, but holds a skeleton
    (raw / "S001C001P001R001A002.skeleton").write_text("2\n0\n0\n")  # listed, and empty: agrees
    (raw / "S001C001P001R001A003.skeleton").write_text("2\n0\n0\n")  # empty but not listed: disagrees
    (raw / "S001C001P001R001A004.skeleton").write_text(good_text(nbodies=2))
    (raw / "S001C001P001R001A099.skeleton").write_text(good_text())  # NTU-120 action: not NTU-60
    (raw / "notes.skeleton").write_text(good_text())
    ml = tmp_path / "missing.txt"
    ml.write_text("S001C001P001R001A001\nS001C001P001R001A002\nS009C001P001R001A001\n")
    s = prepare_dataset("ntu60", raw, tmp_path / "st", missing_list=ml, workers=1, progress=False, quiet=True)
    assert (s["kept"], s["rejected"], s["skipped"], s["missing_listed"]) == (1, 1, 2, 2)
    rows = {r["name"]: r for r in read_rejects(tmp_path / "st")}
    assert "list and file disagree" in rows["S001C001P001R001A001"]["reason"]
    assert rows["S001C001P001R001A001"]["status"] == "missing-listed"
    assert "file agrees" in rows["S001C001P001R001A002"]["reason"]
    assert "not named by --missing-list" in rows["S001C001P001R001A003"]["reason"]
    assert "not part of ntu60" in rows["S001C001P001R001A099"]["reason"]
    assert "not an NTU sample name" in rows["notes"]["reason"]
    assert any("1 of 3 names in --missing-list have no file" in n for n in s["notes"])
    assert Store(tmp_path / "st").names == ["S001C001P001R001A004"]


def test_resume_after_interrupt_and_parallel_equals_serial(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    raw.mkdir()
    for a in range(1, 7):
        (raw / f"S001C00{1 + a % 3}P00{a}R001A00{a}.skeleton").write_text(good_text(frames=15 + a))
    from slnl.data import pipeline as prep

    real, calls = prep._parse_chunk, []

    def crash_on_third(args):
        calls.append(args[0])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(args)

    monkeypatch.setattr(prep, "_parse_chunk", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset("ntu60", raw, tmp_path / "st", workers=1, chunk_size=2, progress=False, quiet=True)
    assert not (tmp_path / "st" / "meta.json").exists()
    assert len(list((tmp_path / "st" / ".prepare" / "cache").glob("chunk*.npz"))) == 2
    calls.clear()
    logs = []
    prep.run_plan(ntu.plan("ntu60", raw), tmp_path / "st", workers=1, chunk_size=2, progress=False, log=logs.append)
    assert calls == [2] and "2 of 3 chunks already parsed" in logs[0]  # only the unfinished chunk was parsed
    monkeypatch.setattr(prep, "_parse_chunk", real)
    # a fresh preparation on 2 processes gives the same store
    prepare_dataset("ntu60", raw, tmp_path / "st2", workers=2, chunk_size=2, progress=False, quiet=True)
    a, b = Store(tmp_path / "st"), Store(tmp_path / "st2")
    assert a.names == b.names and np.array_equal(a.x, b.x) and np.array_equal(a.num_frames, b.num_frames)
    assert not (tmp_path / "st" / ".prepare").exists()  # the cache goes once the store is installed
    # re-running on a finished store is refused (no --force), and touches nothing
    with pytest.raises(StoreExistsError, match="already holds a ntu60 store"):
        prep.run_plan(ntu.plan("ntu60", raw), tmp_path / "st", chunk_size=2, progress=False, log=logs.append)


def test_cli_summary_is_actionable(tmp_path, capsys):
    from slnl.data.prepare import main

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "S001C001P001R001A001.skeleton").write_text(good_text())
    (raw / "S001C002P003R001A002.skeleton").write_text(good_text()[:-300])
    assert main(["prepare", "ntu60", "--raw", str(raw), "--out", str(tmp_path / "st"), "--workers", "1",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "kept: 1  rejected: 1" in out
    assert [ln.split() for ln in out.splitlines() if ln.strip().startswith(("xsub", "xview"))] == [
        ["xsub", "train", "1", "0", "0", "0"], ["xsub", "test", "0", "1", "0", "0"],
        ["xview", "train", "0", "1", "0", "0"], ["xview", "test", "1", "0", "0", "0"]]
    assert f"every left-out file, with its reason: {tmp_path / 'st' / 'rejects.tsv'}" in out and "time: parse" in out
    assert main(["prepare", "ntu60", "--raw", str(raw), "--out", str(tmp_path / "x"), "--num-classes", "3"]) == 1
    assert "do not apply to ntu60" in capsys.readouterr().err
