"""SBU Kinect Interaction v2.0, clean version (Yun et al. 2012): ``skeleton_pos.txt`` → ``(3, T, 15, 2)`` (x, y, z).

Layout: ``<set>/<class>/<sequence>/skeleton_pos.txt``, 21 two-actor sets ``sAAsBB`` (seven participants), 8
interaction classes (folders ``01``-``08``), 282 sequences of 10-46 frames. Each line of a file is one frame::

    Frame#,PA(1),...,PA(15),PB(1),...,PB(15)        91 comma-separated values; PA(j), PB(j) = x,y,z of joint j

PA is the actor on the left, PB the one on the right; joints 1 head, 2 neck, 3 torso, 4-6 left shoulder, elbow,
hand, 7-9 right shoulder, elbow, hand, 10-12 left hip, knee, foot, 13-15 right hip, knee, foot (``JOINT_NAMES``).
The file's coordinates are normalised — x, y in [0, 1] of the 640 × 480 frame, z in [0, 7.8125] — and the dataset's
README gives the inverse to the Kinect's real-world millimetres::

    original_X = 1280 - x * 2560      original_Y = 960 - y * 1920      original_Z = z * 10000 / 7.8125

Rules:

* both actors are kept as the file orders them: person 0 = PA (left), person 1 = PB (right) (C = 3, M = 2);
* coordinates are converted with the README's formulas and divided by 1000: the store holds metres, like every other
  Kinect format here (computed in float64, stored as float32); the ``Frame#`` column (the frame's number in the
  original recording, consecutive within a file) is checked and dropped;
* the label is the class folder: ``01``-``08`` → 0-7. The dataset's README names no class; ``CLASS_NAMES`` is the
  mapping used in public code (approaching, departing, kicking, punching, pushing, hugging, shaking hands,
  exchanging);
* a line without 91 values, a non-numeric or non-finite value, a frame number that is not an integer following the
  previous line's, or a file without a frame: ``DataFormatError`` naming the file and the line; in bulk the sequence
  is rejected with that line. A sequence folder without ``skeleton_pos.txt`` is rejected; folders that are not a
  known set, class or sequence are skipped and listed;
* splits ``fold1`` ... ``fold5``, the README's 5-fold cross-validation over sets (``FOLDS``): split ``foldK`` tests
  on fold K's sets and trains on the other four (test sizes 55, 52, 56, 54, 65 — 282 in all). The protocol's figure
  is the mean accuracy over the five folds. Split ``fold1-val``, for choosing a recipe: inside fold 1's training
  sets, folds 3-5's sets train and fold 2's validate (the sets fold 1 tests are not in it).

Plausibility (``BOUNDS``): after conversion, Kinect real-world metres; across the 282 real files x lies in
[-1.56, 1.59], y in [-1.65, 0.50], z in [0.99, 3.15]. The accepted range is ±10 m, beyond anything the sensor
reports (z = 10 m is the format's own ceiling, 7.8125); a value outside it, or NaN, rejects the file, naming its line
and the converted value.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .errors import DataFormatError, short
from .pipeline import Bounds, Item, Plan, Reject
from .readers import text_lines

NUM_JOINTS = 15
NUM_PERSONS = 2
NUM_VALUES = 1 + NUM_PERSONS * NUM_JOINTS * 3  # Frame#, then x, y, z of PA's and PB's 15 joints: 91
BOUNDS = Bounds(("x", "y", "z"), (-10.0,) * 3, (10.0,) * 3,
                "metres, Kinect real-world coordinates converted with the dataset's formula")
# The dataset's README names no class; this is the folder → name mapping used in public code (module docstring).
CLASS_NAMES = ["approaching", "departing", "kicking", "punching", "pushing", "hugging", "shaking hands",
               "exchanging"]
JOINT_NAMES = ["head", "neck", "torso", "left shoulder", "left elbow", "left hand", "right shoulder", "right elbow",
               "right hand", "left hip", "left knee", "left foot", "right hip", "right knee", "right foot"]
# Bones as (child, parent), 0-based joint indices, rooted at the torso.
BONES = [(0, 1), (1, 2), (3, 1), (4, 3), (5, 4), (6, 1), (7, 6), (8, 7), (9, 2), (10, 9), (11, 10), (12, 2),
         (13, 12), (14, 13)]
PERSONS = ("PA", "PB")  # person 0 = PA (left actor), person 1 = PB (right actor)
# The README's five folds (sets tested in each).
FOLDS: tuple[tuple[str, ...], ...] = (
    ("s01s02", "s03s04", "s05s02", "s06s04"),
    ("s02s03", "s02s07", "s03s05", "s05s03"),
    ("s01s03", "s01s07", "s07s01", "s07s03"),
    ("s02s01", "s02s06", "s03s02", "s03s06"),
    ("s04s02", "s04s03", "s04s06", "s06s02", "s06s03"),
)
# Model selection inside fold 1's training sets: folds 3-5's sets train, fold 2's validate (fold 1's are not in it).
VAL_SPLIT = "fold1-val"
SPLITS: tuple[str, ...] = (*(f"fold{k + 1}" for k in range(len(FOLDS))), VAL_SPLIT)
# Published top-1 (%) on the 5-fold protocol. The key is the protocol, not a split: each number is the mean over
# fold1 ... fold5, so a comparison averages our five folds first.
MEAN_OVER_FOLDS = "mean over fold1-fold5"
PUBLISHED: dict[str, dict[str, float]] = {
    MEAN_OVER_FOLDS: {
        "ST-LSTM (Liu et al. 2016)": 93.3,
        "VA-LSTM (Zhang et al. 2017)": 97.2,
        "HCN (Li et al. 2018)": 98.6,
    },
}
_SET = re.compile(r"^s(\d{2})s(\d{2})$")
_CLASS = re.compile(r"^0[1-8]$")
_SEQ = re.compile(r"^\d{3}$")
# mm = offset + scale * value (the README's inverse), per axis; / 1000 → metres
_OFFSET = np.array([1280.0, 960.0, 0.0])
_SCALE = np.array([-2560.0, -1920.0, 10000.0 / 7.8125])


def to_metres(xyz: np.ndarray) -> np.ndarray:
    """The file's normalised ``x, y, z`` (last axis) → Kinect real-world metres, with the dataset's formula / 1000."""
    return (_OFFSET + _SCALE * np.asarray(xyz, dtype=np.float64)) / 1000.0


def value_name(k: int) -> str:
    """The 0-based column ``k`` of a line: ``"Frame#"``, ``"PA(1) x"`` ... ``"PB(15) z"``."""
    if k == 0:
        return "Frame#"
    p, rest = divmod(k - 1, NUM_JOINTS * 3)
    j, c = divmod(rest, 3)
    return f"{PERSONS[p]}({j + 1}) {'xyz'[c]}"


def members(set_name: str) -> dict[str, bool | None]:
    """``{"fold1": True (train) | False (test), ...}`` for a set; ``None`` everywhere for a set in no fold."""
    k = next((i for i, f in enumerate(FOLDS) if set_name in f), None)
    out = {f"fold{i + 1}": (None if k is None else i != k) for i in range(len(FOLDS))}
    out[VAL_SPLIT] = None if k is None or k == 0 else k != 1  # fold 2 validates, folds 3-5 train
    return out


def read_sequence(path: str | os.PathLike, strict: bool = True) -> tuple[np.ndarray, dict]:
    """One ``skeleton_pos.txt`` → ``(x float32 (3, T, 15, 2), info)`` in metres; person 0 = PA, person 1 = PB.

    ``DataFormatError`` (file and line) for a line without 91 values, a non-numeric or non-finite value, a frame
    number that is not the previous one plus one, a value outside ``BOUNDS`` after conversion, or an empty file.
    ``strict`` is accepted for symmetry; all are fatal.
    """
    path = str(path)
    lines = text_lines(path, f"one line of {NUM_VALUES} comma-separated values per frame")
    try:
        vals = np.array([ln.split(",") for ln in lines], dtype=np.float64)
        if vals.ndim != 2 or vals.shape[1] != NUM_VALUES:
            raise ValueError
    except ValueError:
        for i, ln in enumerate(lines):
            parts = ln.split(",")
            if len(parts) != NUM_VALUES:
                raise DataFormatError(path, i + 1, f"{NUM_VALUES} comma-separated values (Frame#, then x,y,z of "
                                      f"PA's and PB's {NUM_JOINTS} joints)", f"{len(parts)} values: {short(ln)}")
            for k, p in enumerate(parts):
                try:
                    float(p)
                except ValueError:
                    raise DataFormatError(path, i + 1, f"a number for value {k + 1} of {NUM_VALUES} "
                                          f"({value_name(k)})", short(p)) from None
        raise  # pragma: no cover
    bad = ~np.isfinite(vals)
    if bad.any():
        i, k = np.argwhere(bad)[0]
        raise DataFormatError(path, int(i) + 1, f"a finite number for value {k + 1} of {NUM_VALUES} "
                              f"({value_name(int(k))})", lines[i].split(",")[k].strip())
    frame = vals[:, 0]
    for i, f in enumerate(frame):
        if f != int(f) or f < 0:
            raise DataFormatError(path, i + 1, "an integer frame number >= 0 (Frame#)", lines[i].split(",")[0])
        if i and f != frame[i - 1] + 1:
            raise DataFormatError(path, i + 1, f"frame number {int(frame[i - 1]) + 1} (the previous line's + 1)",
                                  lines[i].split(",")[0].strip())
    m = to_metres(vals[:, 1:].reshape(len(vals), NUM_PERSONS, NUM_JOINTS, 3))  # (T, M, V, 3)
    BOUNDS.check(m.reshape(-1, 3), path, lambda i, _: i // (NUM_PERSONS * NUM_JOINTS) + 1)
    x = m.astype(np.float32).transpose(3, 0, 2, 1)  # (3, T, V, M)
    return np.ascontiguousarray(x), {"frames": int(len(vals)), "first_frame": int(frame[0])}


def plan(raw: str | os.PathLike):
    """The bulk plan: every sequence of the 21 sets and 8 classes, splits ``fold1`` ... ``fold5``."""
    raw = Path(raw)
    if not raw.is_dir():
        raise FileNotFoundError(f"--raw {raw}: not a directory")
    items, skipped, notes = [], [], []
    known = {s for f in FOLDS for s in f}
    for sd in sorted(p for p in raw.iterdir() if p.is_dir()):
        if not _SET.match(sd.name):
            skipped.append(Reject(sd.name, str(sd), "skipped", "not an SBU set folder sAAsBB"))
            continue
        member = members(sd.name)
        if sd.name not in known:
            skipped.append(Reject(sd.name, str(sd), "skipped", "set is in none of the README's five folds", member))
            continue
        for cd in sorted(p for p in sd.iterdir() if p.is_dir()):
            if not _CLASS.match(cd.name):
                skipped.append(Reject(f"{sd.name}_{cd.name}", str(cd), "skipped", "not a class folder 01-08",
                                      member))
                continue
            for qd in sorted(p for p in cd.iterdir() if p.is_dir()):
                name = f"{sd.name}_{cd.name}_{qd.name}"
                f = qd / "skeleton_pos.txt"
                if not _SEQ.match(qd.name):
                    skipped.append(Reject(name, str(qd), "skipped", "not a sequence folder NNN", member))
                elif not f.is_file():
                    skipped.append(Reject(name, str(f), "rejected", "sequence folder without skeleton_pos.txt",
                                          member))
                else:
                    items.append(Item(name=name, path=str(f), label=int(cd.name) - 1, member=member))
    if not items:
        raise FileNotFoundError(f"--raw {raw}: no <set>/<class>/<sequence>/skeleton_pos.txt found (the SBU Kinect "
                                "Interaction clean-version layout)")
    missing = sorted(known - {it.name.split("_")[0] for it in items})
    if missing:
        notes.append(f"no sequence for set(s) {', '.join(missing)}: the folds are smaller than the README's")
    return Plan(
        format="sbu", dataset="sbu", items=items, skipped=skipped, loader=read_sequence,
        shape=(3, NUM_JOINTS, NUM_PERSONS), class_names=CLASS_NAMES, splits=SPLITS, max_frames=None, bounds=BOUNDS,
        options={"dataset": "sbu", "raw": str(raw.resolve()), "persons": "PA (left) then PB (right), as in the file",
                 "units": "metres: (1280 - 2560 x, 960 - 1920 y, 1280 z) / 1000"},
        extra_meta={"channels": ["x", "y", "z"], "joint_names": JOINT_NAMES, "bones": BONES, "persons": list(PERSONS)},
        notes=notes,
    )
