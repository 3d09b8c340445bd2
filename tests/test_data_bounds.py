"""Plausibility bounds: absurd coordinates are rejected with their value (NTU, MSR, Kinetics), every real file is
kept, a preparation that keeps nothing fails, and more than a tenth of rejects is warned about on stderr."""
import csv
import json

import numpy as np
import pytest

from slnl.data import kinetics, msr3d, ntu
from slnl.data.errors import DataFormatError
from slnl.data.prepare import main

NAMES = ["S001C001P001R001A001", "S001C002P003R001A002", "S001C003P008R001A003", "S002C001P015R001A004",
         "S002C002P002R001A005"]


def skeleton_text(seed=0, frames=15):
    rng = np.random.default_rng(seed)
    xyz = (rng.normal(0, 0.3, (frames, 25, 3)) + [0, 0, 3]).round(6)
    return ntu.format_skeleton(frames, [("1", np.arange(frames), xyz)], newline="\r\n")


def with_joint_values(text, line, values):
    """``text`` with the first values of (1-based) ``line`` replaced."""
    lines = text.split("\r\n")
    parts = lines[line - 1].split()
    parts[: len(values)] = values
    lines[line - 1] = " ".join(parts)
    return "\r\n".join(lines)


def rejects(store):
    with open(store / "rejects.tsv") as f:
        return {r["name"]: r for r in csv.DictReader(f, delimiter="\t")}


def run(args, capsys):
    rc = main(["prepare", *map(str, args), "--workers", "1", "--no-progress"])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_absurd_skeleton_rejected_with_its_value(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    for k, n in enumerate(NAMES[:3]):
        (raw / f"{n}.skeleton").write_bytes(skeleton_text(k).encode())
    # frame 2, joint 4 of the first body: line 1 + (1 + 1 + 1 + 25) + 1 + 1 + 1 + 4 = 35
    (raw / f"{NAMES[1]}.skeleton").write_bytes(with_joint_values(skeleton_text(1), 35, ["1e30", "-3e38"]).encode())
    (raw / f"{NAMES[2]}.skeleton").write_bytes(with_joint_values(skeleton_text(2), 6, ["0.1", "-3e38"]).encode())
    with pytest.raises(DataFormatError) as e:
        ntu.load_clip(raw / f"{NAMES[1]}.skeleton")
    assert e.value.where == 35 and e.value.found == "1e+30" and "x within [-10, 10]" in e.value.expected
    rc, out, err = run(["ntu60", "--raw", raw, "--out", tmp_path / "st"], capsys)
    assert rc == 0 and "kept: 1  rejected: 2" in out
    r = rejects(tmp_path / "st")
    assert (r[NAMES[1]]["status"], r[NAMES[1]]["where"], r[NAMES[1]]["found"]) == ("rejected", "35", "1e+30")
    assert (r[NAMES[2]]["where"], r[NAMES[2]]["found"]) == ("6", "-3e+38") and "y within" in r[NAMES[2]]["expected"]
    assert "1e+30" in r[NAMES[1]]["reason"] and "metres" in r[NAMES[1]]["reason"]
    # 2 of 3 parsed files rejected: more than a tenth, said loudly on stderr
    assert "WARNING" in err and "2 of 3" in err and "rejects.tsv" in err


def test_nothing_kept_fails_with_one_line(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    for k, n in enumerate(NAMES[:2]):
        (raw / f"{n}.skeleton").write_bytes(with_joint_values(skeleton_text(k), 6, ["1e30"]).encode())
    rc, out, err = run(["ntu60", "--raw", raw, "--out", tmp_path / "st"], capsys)
    assert rc != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "nothing could be kept out of 2" in err and "1e+30" in err
    assert not (tmp_path / "st" / "meta.json").exists()
    where = err.strip().rsplit("every reason: ", 1)[1]
    assert set(rejects(tmp_path / "st" / ".prepare")) == set(NAMES[:2]) and where.endswith("rejects.tsv")


@pytest.mark.parametrize("bad,warned", [(1, False), (2, True)])
def test_warning_above_a_tenth(tmp_path, capsys, bad, warned):
    raw = tmp_path / "raw"
    raw.mkdir()
    names = [f"S001C001P{p:03d}R001A001" for p in range(1, 11)]
    for k, n in enumerate(names):
        text = skeleton_text(k)
        (raw / f"{n}.skeleton").write_bytes((with_joint_values(text, 6, ["nan"]) if k < bad else text).encode())
    rc, out, err = run(["ntu60", "--raw", raw, "--out", tmp_path / "st"], capsys)
    assert rc == 0 and f"rejected: {bad}" in out
    assert ("WARNING" in err) == warned  # 1 of 10 is a tenth, not more


def test_msr_absurd_value_and_every_real_file_within_bounds(tmp_path, shared_data):
    p = tmp_path / "a01_s01_e01_skeleton3D.txt"
    lines = ["0.1 0.2 2.5 1"] * 40
    lines[27] = "0.1 -3e38 2.5 1"
    p.write_text("\n".join(lines))
    with pytest.raises(DataFormatError) as e:
        msr3d.read_sequence(p)
    assert e.value.where == 28 and e.value.found == "-3e+38" and "y within" in e.value.expected
    raw = shared_data / "msr_action3d"
    if not raw.is_dir():
        pytest.skip(f"{raw} absent")
    for f in sorted(raw.glob("*_skeleton3D.txt")):  # all 567, the 10 non-standard ones included
        try:
            msr3d.read_sequence(f)
        except DataFormatError as err:
            assert "within" not in err.expected, err  # corrupt for other reasons, never for the bounds


def test_kinetics_absurd_values_named_by_json_path(tmp_path, shared_data):
    clip = {"data": [{"frame_index": 1, "skeleton": [{"pose": [0.5] * 36, "score": [0.9] * 18}]},
                     {"frame_index": 2, "skeleton": [{"pose": [0.5] * 36, "score": [0.9] * 18},
                                                     {"pose": [0.5] * 35 + [1e30], "score": [0.9] * 18}]}],
            "label": "x", "label_index": 0}
    p = tmp_path / "c.json"
    p.write_text(json.dumps(clip))
    with pytest.raises(DataFormatError) as e:
        kinetics.read_clip(p)
    assert e.value.where == "data[1].skeleton[1].pose[35]" and e.value.found == "1e+30"
    clip["data"][1]["skeleton"][1]["pose"][35] = 0.5
    clip["data"][0]["skeleton"][0]["score"][3] = 7.0
    p.write_text(json.dumps(clip))
    with pytest.raises(DataFormatError, match=r"data\[0\].skeleton\[0\].score\[3\]: expected score within \[0, 1.5\]"):
        kinetics.read_clip(p)
    real = shared_data / "kinetics_samples" / "--33Lscn6sk.json"
    if real.is_file():
        x, _ = kinetics.read_clip(real)  # the real clip (x up to 1.011) is within bounds
        assert x[:2].max() > 1.0
