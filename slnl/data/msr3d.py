"""MSR Action3D (Li, Zhang, Liu 2010): ``aXX_sYY_eZZ_skeleton3D.txt`` → ``(3, T, 20, 1)`` (x, y, z).

Each line is ``x y z c`` (real-world coordinates and a confidence ``c``), 20 lines (joints) per frame. Rules:

* the 557 sequences named in ``files_used_in_cvpr12_paper.txt`` are the standard set (the other 10 files are
  corrupt or empty); files not listed are skipped and reported, listed names without a file are reported;
* frames whose 20 joints are all (0, 0, 0) are sensor drop-outs and are removed (counted in ``info``); the ``c``
  column is discarded (C = 3, M = 1);
* split ``xsub``: subjects 1, 3, 5, 7, 9 train, 2, 4, 6, 8, 10 test, all 20 classes (Li et al. 2010's cross-subject
  protocol as used by Wang et al. 2012);
* split ``xsub-val``, for choosing a recipe without the test subjects: subjects 1, 3, 5 train, 7, 9 validate (the
  split's test side); the test subjects are not in it.

Plausibility (``BOUNDS``): x, y, z are Kinect (v1) real-world coordinates in metres — across the 567 shared real
files x lies in [-1.05, 0.87], y in [-1.88, 1.15], z in [0, 3.88] (z = 0 in drop-out frames). The accepted range is
±10 m, beyond anything the sensor (depth range about 0.8–4 m) can report; a value outside it, or NaN, rejects the
file, naming its line and value. The ``c`` column is only required to be finite.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .errors import DataFormatError, short
from .pipeline import Bounds, Item, Plan, Reject, read_name_list
from .readers import text_lines

NUM_JOINTS = 20
BOUNDS = Bounds(("x", "y", "z"), (-10.0,) * 3, (10.0,) * 3, "metres, Kinect real-world coordinates")
CLASS_NAMES = ["high arm wave", "horizontal arm wave", "hammer", "hand catch", "forward punch", "high throw",
               "draw x", "draw tick", "draw circle", "hand clap", "two hand wave", "side-boxing", "bend",
               "forward kick", "side kick", "jogging", "tennis swing", "tennis serve", "golf swing",
               "pickup & throw"]
# Joint order as documented for the Real3D skeletons (checked on a01_s01_e01: 20 is highest, 3 above 4 above 7,
# 16-19 lowest).
JOINT_NAMES = ["right shoulder", "left shoulder", "neck", "spine", "right hip", "left hip", "hip center",
               "right elbow", "left elbow", "right wrist", "left wrist", "right hand", "left hand", "right knee",
               "left knee", "right ankle", "left ankle", "right foot", "left foot", "head"]
XSUB_TRAIN = frozenset([1, 3, 5, 7, 9])
# Model selection without the test subjects: inside xsub's training subjects, 1, 3, 5 train and 7, 9 validate (the
# split's "test" side); subjects 2, 4, 6, 8, 10 are not in it at all.
VAL_TRAIN, VAL_HELD_OUT = frozenset([1, 3, 5]), frozenset([7, 9])
SPLITS: tuple[str, ...] = ("xsub", "xsub-val")  # the standard protocol is cross-subject; xsub-val is for selection
# Published top-1 (%) on this standard protocol (the 557 sequences, all 20 actions, cross-subject), per split: what
# the paper's final model is compared with on MSR Action3D, in place of Table 1's NTU numbers (slnl.report).
PUBLISHED: dict[str, dict[str, float]] = {
    "xsub": {"Lie group (Vemulapalli, Arrate and Chellappa 2014)": 89.48},
}
_NAME = re.compile(r"^a(\d{2})_s(\d{2})_e(\d{2})$")


def parse_name(name: str) -> dict[str, int]:
    """``"a03_s07_e02"`` → ``{"action": 3, "subject": 7, "execution": 2}`` (accepts the ``_skeleton3D.txt`` file)."""
    stem = Path(name).name.replace("_skeleton3D.txt", "")
    m = _NAME.match(stem)
    if not m:
        raise ValueError(f"{name!r} is not an MSR Action3D name aXX_sYY_eZZ")
    a, s, e = map(int, m.groups())
    return {"action": a, "subject": s, "execution": e}


def read_sequence(path: str | os.PathLike, strict: bool = True) -> tuple[np.ndarray, dict]:
    """One ``_skeleton3D.txt`` file → ``(x float32 (3, T, 20, 1), info)``; all-zero frames removed.

    ``DataFormatError`` for a line without 4 numbers, a non-finite value, a line count that is not a multiple of 20
    (a truncated last frame), or no non-zero frame at all. ``strict`` is accepted for symmetry; all are fatal.
    """
    path = str(path)
    lines = text_lines(path, f"{NUM_JOINTS} lines 'x y z c' per frame")
    try:
        vals = np.array([ln.split() for ln in lines], dtype=np.float64)
        if vals.ndim != 2 or vals.shape[1] != 4:
            raise ValueError
    except ValueError:
        for i, ln in enumerate(lines):
            parts = ln.split()
            if len(parts) != 4:
                raise DataFormatError(path, i + 1, "4 values 'x y z c'", f"{len(parts)} values: {short(ln.strip())}")
            for k, p in enumerate(parts):
                try:
                    float(p)
                except ValueError:
                    raise DataFormatError(path, i + 1, f"a number for value {k + 1} of 4", short(p)) from None
        raise  # pragma: no cover
    bad = ~np.isfinite(vals)
    if bad.any():
        i, k = np.argwhere(bad)[0]
        raise DataFormatError(path, int(i) + 1, f"a finite number for value {k + 1} of 4", lines[i].split()[k])
    BOUNDS.check(vals[:, :3], path, lambda i, _: i + 1)
    if len(vals) % NUM_JOINTS:
        raise DataFormatError(path, len(lines), f"a multiple of {NUM_JOINTS} lines ({NUM_JOINTS} joints per frame)",
                              f"{len(lines)} lines (the last frame has {len(lines) % NUM_JOINTS} joints)")
    frames = vals.reshape(-1, NUM_JOINTS, 4)[..., :3]
    nonzero = np.abs(frames).sum(axis=(1, 2)) > 0
    if not nonzero.any():
        raise DataFormatError(path, None, "at least one frame with a non-zero joint",
                              f"all {len(frames)} frames are zero")
    x = frames[nonzero].astype(np.float32).transpose(2, 0, 1)[..., None]  # (3, T, 20, 1)
    return np.ascontiguousarray(x), {"file_frames": int(len(frames)), "dropped_zero_frames": int((~nonzero).sum())}


def _member(subject: int) -> dict[str, bool | None]:
    """Split membership of a subject's clips: True = train side, False = test side, None = not in the split."""
    val = True if subject in VAL_TRAIN else False if subject in VAL_HELD_OUT else None
    return {"xsub": subject in XSUB_TRAIN, "xsub-val": val}


def plan(raw: str | os.PathLike, used_list: str | os.PathLike | None = None):
    """The bulk plan: the standard 557 sequences, 20 classes, split ``xsub`` (odd subjects train)."""
    raw = Path(raw)
    if not raw.is_dir():
        raise FileNotFoundError(f"--raw {raw}: not a directory")
    if used_list is None:
        used_list = raw / "files_used_in_cvpr12_paper.txt"
        if not used_list.is_file():
            raise FileNotFoundError(f"{used_list} not found: pass --used-list (the list of the 557 standard "
                                    "sequences, files_used_in_cvpr12_paper.txt)")
    used = [Path(n).name.replace("_skeleton3D", "") for n in read_name_list(used_list)]
    files = {p.name.replace("_skeleton3D.txt", ""): p for p in raw.glob("a*_s*_e*_skeleton3D.txt")}
    items, skipped, notes = [], [], []
    for name in sorted(set(used)):
        f = parse_name(name)
        member = _member(f["subject"])
        p = files.pop(name, None)
        if not 1 <= f["action"] <= len(CLASS_NAMES):
            skipped.append(Reject(name, str(p), "skipped", f"action {f['action']} outside 1-20", member))
        elif p is None:
            skipped.append(Reject(name, str(raw / f"{name}_skeleton3D.txt"), "rejected",
                                  "named by the used list but the file is absent", member))
        else:
            items.append(Item(name=name, path=str(p), label=f["action"] - 1, member=member))
    for name, p in sorted(files.items()):
        member = _member(parse_name(name)["subject"])
        skipped.append(Reject(name, str(p), "skipped", f"not among the standard sequences ({Path(used_list).name})",
                              member))
    if len(used) != len(set(used)):
        notes.append(f"{len(used) - len(set(used))} duplicate name(s) in {used_list}")
    return Plan(
        format="msr3d", dataset="msr3d", items=items, skipped=skipped, loader=read_sequence,
        shape=(3, NUM_JOINTS, 1), class_names=CLASS_NAMES, splits=SPLITS, max_frames=None, bounds=BOUNDS,
        options={"dataset": "msr3d", "raw": str(raw.resolve()), "used_list": str(used_list),
                 "zero_frames": "dropped", "channels": "x y z (c dropped)"},
        extra_meta={"channels": ["x", "y", "z"], "joint_names": JOINT_NAMES, "fps": 15},
        notes=notes,
    )
