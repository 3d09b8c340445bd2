"""Northwestern-UCLA Multiview Action3D (Wang et al., CVPR 2014): ``aAA_sSS_eEE_vVV.json`` → ``(3, T, 20, 1)``.

Format (the 1,484-clip redistribution that CTR-GCN, InfoGCN, HD-GCN and FR-Head use; the original release counts
1,494): one JSON object per clip, named by action, subject, execution and view::

    {"file_name": "a01_s01_e00_v01", "skeletons": [T frames × 20 joints × [x, y, z]], "label": 1..10}

x, y, z are Kinect (v1) skeleton-space coordinates in metres, 20 joints in the Kinect SDK v1 order
(``JOINT_NAMES``; checked on the real files: joints 1 → 2 → 3 → 4 rise from the hip centre to the head, 16 and 20 —
the feet — are lowest, 13-16 and 17-20 are legs of equal length); it is not MSR Action3D's joint order. Ten
actions, a01-a06, a08, a09, a11, a12, carry labels 1-10 in that order (``ACTIONS``); three Kinect views v01 (516
clips), v02 (504), v03 (464); clips are 1 to 201 frames long (mean 39).

Rules:

* every clip is kept as the file holds it, the 1- to 10-frame ones included (the published numbers test on all
  464 clips of view 3), frames in file order, values in metres (C = 3, M = 1); a joint at (0, 0, 0) — the sensor
  lost it; two real files have one such frame — is kept as the file has it and counted in ``info["zero_joints"]``;
* the label is the action of the file name (``ACTIONS.index(action)``, 0-based); the file's ``"label"`` must say the
  same (``label - 1``) and its ``"file_name"`` must be the file's own name: a file contradicting its name is rejected
  (``rejects.tsv``), never corrected;
* JSON that does not parse, a missing key, a frame without 20 joints, a joint without 3 numbers, a non-numeric or
  non-finite value, or no frame at all: ``DataFormatError`` naming the file and the JSON path
  (``skeletons[12][3][2]``); in bulk the clip is rejected with that line;
* files whose name is not ``aAA_sSS_eEE_vVV.json``, or whose action is not one of the ten or view not 1-3, are
  skipped and listed;
* split ``xview`` (alias CV), the standard cross-view protocol: views 1 and 2 train (1,020 clips), view 3 test (464);
  split ``xview-val``, for choosing a recipe without the test view: view 1 trains, view 2 validates.

CTR-GCN's loader (``feeders/feeder_ucla.py``, as we read it; InfoGCN, HD-GCN and FR-Head ship their own copies of
it) reads the same files but prepares them at load time: the clips of each side are listed in its source (file
name, length, label); it subtracts joint 2 (the spine, index 1) of the clip's *first* frame from every frame, in
training rotates about x and y by random whole-degree angles in [-60°, 60°] and scales by U[0.5, 1.5], then min-max
normalises each axis over the whole clip to [-1, 1]; it samples 52 frames — sorted random draws (with repetition)
in training, ``np.linspace`` indices at test. Ours keeps the file's metres, not centred (the model's input batch
normalisation, per channel and joint, normalises them), and samples with the project's own crop and linear resize
(``slnl.data.sampling``), with no rotation or scaling augmentation. Numbers trained on one preparation are compared
with the other knowingly.

Plausibility (``BOUNDS``): Kinect v1 skeleton-space metres; across the 1,484 real files x lies in [-2.44, 2.10],
y in [-1.34, 1.46], z in [0, 5.08] (z = 0 only at lost joints). The accepted range is ±10 m, beyond anything the
sensor (depth range about 0.8-4 m) reports; a value outside it, or NaN, rejects the clip, naming its JSON path.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import re
from pathlib import Path

import numpy as np

from .errors import DataFormatError, short
from .pipeline import Bounds, Item, Plan, Reject
from .readers import load_json

NUM_JOINTS = 20
BOUNDS = Bounds(("x", "y", "z"), (-10.0,) * 3, (10.0,) * 3, "metres, Kinect v1 skeleton space")
ACTIONS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)  # the file name's aNN, in label order (label 1-10)
CLASS_NAMES = ["pick up with one hand", "pick up with two hands", "drop trash", "walk around", "sit down",
               "stand up", "donning", "doffing", "throw", "carry"]
VIEWS = (1, 2, 3)
XVIEW_TRAIN = frozenset([1, 2])  # view 3 is the test view
# Model selection without the test view: inside xview's training views, view 1 trains and view 2 validates.
SPLITS: tuple[str, ...] = ("xview", "xview-val")  # the standard protocol is cross-view; xview-val is for selection
# Kinect SDK v1 joint order (NUI_SKELETON_POSITION_*), which the files follow (module docstring).
JOINT_NAMES = ["hip center", "spine", "shoulder center", "head", "left shoulder", "left elbow", "left wrist",
               "left hand", "right shoulder", "right elbow", "right wrist", "right hand", "left hip", "left knee",
               "left ankle", "left foot", "right hip", "right knee", "right ankle", "right foot"]
# Bones as (child, parent), 0-based joint indices: the tree of CTR-GCN's NW-UCLA graph (graph/ucla.py, there
# 1-based), rooted at the shoulder centre.
BONES = [(0, 1), (1, 2), (3, 2), (4, 2), (5, 4), (6, 5), (7, 6), (8, 2), (9, 8), (10, 9), (11, 10), (12, 0),
         (13, 12), (14, 13), (15, 14), (16, 0), (17, 16), (18, 17), (19, 18)]
# The redistributed set's size per view (the shared data's README): a different count is reported, not refused.
EXPECTED_VIEWS = {1: 516, 2: 504, 3: 464}
# Published top-1 (%) on the standard cross-view protocol (train views 1, 2; test view 3, all 464 clips), per
# split: what our final model is compared with on NW-UCLA (slnl.report). FR-Head's is its single joint stream;
# CTR-GCN's and InfoGCN's are their multi-stream ensembles.
PUBLISHED: dict[str, dict[str, float]] = {
    "xview": {
        "FR-Head, joint stream (Zhou et al. 2023)": 94.4,
        "CTR-GCN (Chen et al. 2021)": 96.5,
        "InfoGCN (Chi et al. 2022)": 97.0,
    },
}
_NAME = re.compile(r"^a(\d{2})_s(\d{2})_e(\d{2})_v(\d{2})$")
_KEYS = ("file_name", "skeletons", "label")


def parse_name(name: str) -> dict[str, int]:
    """``"a08_s03_e01_v02"`` (or its ``.json`` file) → ``{"action": 8, "subject": 3, "execution": 1, "view": 2}``."""
    stem = Path(name).name
    stem = stem[:-5] if stem.endswith(".json") else stem
    m = _NAME.match(stem)
    if not m:
        raise ValueError(f"{name!r} is not an NW-UCLA name aAA_sSS_eEE_vVV")
    a, s, e, v = map(int, m.groups())
    return {"action": a, "subject": s, "execution": e, "view": v}


def _locate(path: str, sk: list) -> None:
    """Walk ``skeletons`` and raise at the first value that is not a finite number in a ``(T, 20, 3)`` nest."""
    for t, fr in enumerate(sk):
        w = f"skeletons[{t}]"
        if not isinstance(fr, list):
            raise DataFormatError(path, w, f"a list of {NUM_JOINTS} joints", short(json.dumps(fr)))
        if len(fr) != NUM_JOINTS:
            raise DataFormatError(path, w, f"{NUM_JOINTS} joints", f"{len(fr)}")
        for j, jt in enumerate(fr):
            wj = f"{w}[{j}]"
            if not isinstance(jt, list) or len(jt) != 3:
                raise DataFormatError(path, wj, "a list of 3 numbers [x, y, z]", short(json.dumps(jt)))
            for c, e in enumerate(jt):
                if isinstance(e, bool) or not isinstance(e, (int, float)):
                    raise DataFormatError(path, f"{wj}[{c}]", "a number", short(json.dumps(e)))
                try:
                    finite = math.isfinite(e)
                except OverflowError:  # an integer beyond float64
                    raise DataFormatError(path, f"{wj}[{c}]", "a finite number",
                                          f"an integer of {len(str(abs(e)))} digits") from None
                if not finite:
                    raise DataFormatError(path, f"{wj}[{c}]", "a finite number", str(e))
    raise AssertionError("unreachable: _locate found nothing")  # pragma: no cover


def read_clip(path: str | os.PathLike, strict: bool = True, expect_label: int | None = None
              ) -> tuple[np.ndarray, dict]:
    """One clip JSON → ``(x float32 (3, T, 20, 1), info)``; values as in the file (metres).

    ``expect_label``: the 0-based class the file name gives (``ACTIONS``); a file whose ``"label"`` says another is
    rejected, as is one whose ``"file_name"`` is not its own name. Every structural problem is a ``DataFormatError``
    naming the JSON path. ``strict`` is accepted for symmetry with the other parsers; every defect here is fatal.
    """
    path = str(path)
    d = load_json(path)
    if not isinstance(d, dict):
        raise DataFormatError(path, "$", 'an object with "file_name", "skeletons" and "label"',
                              short(json.dumps(d)[:80]))
    missing = [k for k in _KEYS if k not in d]
    if missing:
        raise DataFormatError(path, "$", 'an object with "file_name", "skeletons" and "label"',
                              f"no {', '.join(repr(k) for k in missing)} (keys: {', '.join(map(repr, d)) or 'none'})")
    stem = Path(path).name.removesuffix(".json")
    if d["file_name"] != stem:
        raise DataFormatError(path, "file_name", f"{stem!r} (the file's own name)", short(json.dumps(d["file_name"])))
    label = d["label"]
    if isinstance(label, bool) or not isinstance(label, int) or not 1 <= label <= len(CLASS_NAMES):
        raise DataFormatError(path, "label", f"an integer 1-{len(CLASS_NAMES)}", short(json.dumps(label)))
    if expect_label is not None and label - 1 != expect_label:
        raise DataFormatError(path, "label", f"{expect_label + 1} (the file name's action "
                              f"a{ACTIONS[expect_label]:02d} is class {expect_label + 1}, "
                              f"{CLASS_NAMES[expect_label]})",
                              f"{label} (class of a{ACTIONS[label - 1]:02d}, {CLASS_NAMES[label - 1]})")
    sk = d["skeletons"]
    if not isinstance(sk, list):
        raise DataFormatError(path, "skeletons", f"a list of frames of {NUM_JOINTS} joints × [x, y, z]",
                              type(sk).__name__)
    if not sk:
        raise DataFormatError(path, "skeletons", ">= 1 frame", "an empty list")
    try:  # the common case, checked fast: a (T, 20, 3) nest of JSON numbers
        a = np.array(sk, dtype=np.float64)
        types = set(map(type, itertools.chain.from_iterable(itertools.chain.from_iterable(sk))))
        ok = a.shape[1:] == (NUM_JOINTS, 3) and types <= {float, int} and np.isfinite(a).all()
    except (ValueError, TypeError, OverflowError):
        ok = False
    if not ok:
        _locate(path, sk)
    BOUNDS.check(a.reshape(-1, 3), path, lambda i, c: f"skeletons[{i // NUM_JOINTS}][{i % NUM_JOINTS}][{c}]")
    x = a.astype(np.float32).transpose(2, 0, 1)[..., None]  # (3, T, 20, 1)
    info = {"frames": int(len(a)), "zero_joints": int((a == 0).all(axis=-1).sum())}
    return np.ascontiguousarray(x), info


def plan(raw: str | os.PathLike):
    """The bulk plan: every clip of the ten actions and three views, split ``xview`` (views 1, 2 train; 3 test)."""
    raw = Path(raw)
    if not raw.is_dir():
        raise FileNotFoundError(f"--raw {raw}: not a directory")
    items, skipped, notes = [], [], []
    per_view = {v: 0 for v in VIEWS}
    for p in sorted(raw.glob("*.json")):
        name = p.stem
        try:
            f = parse_name(name)
        except ValueError:
            skipped.append(Reject(name, str(p), "skipped", "not an NW-UCLA clip name aAA_sSS_eEE_vVV.json"))
            continue
        member = {"xview": (f["view"] in XVIEW_TRAIN) if f["view"] in VIEWS else None,
                  "xview-val": {1: True, 2: False}.get(f["view"])}
        if f["action"] not in ACTIONS:
            skipped.append(Reject(name, str(p), "skipped", f"action a{f['action']:02d} is not one of the ten "
                                  f"({', '.join(f'a{a:02d}' for a in ACTIONS)})", member))
        elif f["view"] not in VIEWS:
            skipped.append(Reject(name, str(p), "skipped", f"view {f['view']} outside 1-3", member))
        else:
            label = ACTIONS.index(f["action"])
            items.append(Item(name=name, path=str(p), label=label, member=member, kwargs={"expect_label": label}))
            per_view[f["view"]] += 1
    if not items:
        raise FileNotFoundError(f"--raw {raw}: no NW-UCLA clip aAA_sSS_eEE_vVV.json found (the all_sqe folder)")
    if per_view != EXPECTED_VIEWS:
        notes.append("clips per view " + ", ".join(f"v{v:02d} {n}" for v, n in per_view.items()) + " differ from the "
                     "1,484-clip set the published numbers use (v01 516, v02 504, v03 464)")
    return Plan(
        format="nwucla", dataset="nwucla", items=items, skipped=skipped, loader=read_clip,
        shape=(3, NUM_JOINTS, 1), class_names=CLASS_NAMES, splits=SPLITS, max_frames=None, bounds=BOUNDS,
        options={"dataset": "nwucla", "raw": str(raw.resolve()), "frames": "all, in file order",
                 "channels": "x y z, metres as in the file"},
        extra_meta={"channels": ["x", "y", "z"], "joint_names": JOINT_NAMES, "bones": BONES},
        notes=notes,
    )
