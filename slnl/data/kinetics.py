"""Kinetics-skeleton (Yan et al. 2018, ST-GCN's release): OpenPose JSON clips → ``(3, T, 18, 2)`` (x, y, score).

Release layout (``--raw`` points at the folder that holds these)::

    kinetics_train/<youtube id>.json   kinetics_val/<youtube id>.json
    kinetics_train_label.json          kinetics_val_label.json      {id: {"has_skeleton", "label", "label_index"}}
    label_name.txt (optional)          line k+1 = name of class k

A clip is ``{"data": [{"frame_index": i, "skeleton": [{"pose": [x0, y0, ..., x17, y17], "score": [s0 .. s17]},
...]}, ...], "label": ..., "label_index": ...}`` with ``frame_index`` 1-based and coordinates normalised to [0, 1].

Rules (ST-GCN's feeder, ``feeder_kinetics.py``, made explicit):

* frame ``frame_index`` goes to row ``frame_index - 1``; ``T = max(frame_index)`` capped at ``max_frames`` (300,
  frames beyond are cut and counted). Frames absent from ``data`` or with an empty ``skeleton`` are zero for both
  persons — the detector genuinely saw nobody — and are counted in ``info["empty_frames"]``; they are kept (not
  dropped), so the clip's timing is the video's.
* per frame, the persons are ranked by summed joint score and the top two kept (ties keep file order), as ST-GCN
  does. Slot identity is therefore "most confident person in this frame", not a tracked identity: OpenPose output
  has no track IDs. Dropped persons are counted in ``info["dropped_persons"]``.
* channels are x, y as released (not re-centred) and the joint score; undetected joints are (0, 0, 0) as in the file.
* clips with ``has_skeleton: false`` are left out by the plan and counted; a clip whose frames hold no person at all
  is rejected.

Plausibility (``BOUNDS``): ``x``, ``y`` are OpenPose pixel coordinates divided by the frame's width and height, so a
detected joint lies in [0, 1]; OpenPose places a few joints just past the border (the shared real clip reaches
1.011), hence the accepted range is half a frame beyond either edge, [-0.5, 1.5]. ``score`` is OpenPose's
confidence, a heatmap peak in [0, 1] that is not clipped, accepted in [0, 1.5]. Anything else (``1e30``, NaN)
rejects the clip, naming the JSON path and the value.
"""
from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path

import numpy as np

from .errors import DataFormatError, short
from .pipeline import Bounds, Item, Plan, Reject
from .readers import load_json

NUM_JOINTS = 18
MAX_FRAMES = 300
SPLITS: tuple[str, ...] = ("default",)  # one train/val split, the val set serving as test (ST-GCN's release)
BOUNDS = Bounds(("x", "y", "score"), (-0.5, -0.5, 0.0), (1.5, 1.5, 1.5),
                "x, y: fraction of the frame's width and height; score: OpenPose confidence")
JOINT_NAMES = ["nose", "neck", "right shoulder", "right elbow", "right wrist", "left shoulder", "left elbow",
               "left wrist", "right hip", "right knee", "right ankle", "left hip", "left knee", "left ankle",
               "right eye", "left eye", "right ear", "left ear"]  # OpenPose COCO-18 order
# (child, parent), 0-based, ST-GCN's "openpose" layout
BONES = [(4, 3), (3, 2), (7, 6), (6, 5), (13, 12), (12, 11), (10, 9), (9, 8), (11, 5), (8, 2), (5, 1), (2, 1),
         (0, 1), (15, 0), (14, 0), (17, 15), (16, 14)]


def _numbers(path: str, where: str, v: object, n: int) -> np.ndarray:
    if not isinstance(v, list):
        raise DataFormatError(path, where, f"a list of {n} numbers", type(v).__name__)
    if len(v) != n:
        raise DataFormatError(path, where, f"{n} numbers", f"{len(v)}")
    if all(type(e) is float or type(e) is int for e in v):  # the common case, checked fast
        a = np.asarray(v, dtype=np.float64)
        if np.isfinite(a).all():
            return a
    for k, e in enumerate(v):
        if isinstance(e, bool) or not isinstance(e, (int, float)):
            raise DataFormatError(path, f"{where}[{k}]", "a number", short(json.dumps(e)))
        if not math.isfinite(e):
            raise DataFormatError(path, f"{where}[{k}]", "a finite number", str(e))
    return np.asarray(v, dtype=np.float64)


def read_clip(path: str | os.PathLike, strict: bool = True, max_persons: int = 2, max_frames: int = MAX_FRAMES,
              expect_label: int | None = None) -> tuple[np.ndarray, dict]:
    """One clip JSON → ``(x float32 (3, T, 18, max_persons), info)`` following the module's rules.

    Every structural problem is a ``DataFormatError`` naming the JSON path (``data[12].skeleton[0].score[3]``).
    ``expect_label``: the ``label_index`` the label file gives; a clip declaring another one is rejected.
    ``strict`` is accepted for symmetry with the other parsers; every defect here is fatal (no value to keep).
    """
    path = str(path)
    d = load_json(path)
    if not isinstance(d, dict) or "data" not in d:
        raise DataFormatError(path, "$", 'an object with a "data" list', short(json.dumps(d)[:80]))
    if expect_label is not None and "label_index" in d and d["label_index"] != expect_label:
        raise DataFormatError(path, "label_index", f"{expect_label} (as in the label file)",
                              short(json.dumps(d["label_index"])))
    data = d["data"]
    if not isinstance(data, list):
        raise DataFormatError(path, "data", "a list of frames", type(data).__name__)
    frames: dict[int, list[tuple[float, int, np.ndarray, np.ndarray]]] = {}
    more, dropped = 0, 0
    seen: list[tuple[str, np.ndarray, np.ndarray]] = []  # every person of every frame, for one vectorised check
    for i, fr in enumerate(data):
        w = f"data[{i}]"
        if not isinstance(fr, dict) or "frame_index" not in fr or "skeleton" not in fr:
            raise DataFormatError(path, w, 'an object with "frame_index" and "skeleton"', short(json.dumps(fr)))
        fi = fr["frame_index"]
        if isinstance(fi, bool) or not isinstance(fi, int) or fi < 1:
            raise DataFormatError(path, f"{w}.frame_index", "an integer >= 1 (1-based)", short(json.dumps(fi)))
        if fi in frames:
            raise DataFormatError(path, f"{w}.frame_index", "each frame_index once", f"{fi} again")
        sk = fr["skeleton"]
        if not isinstance(sk, list):
            raise DataFormatError(path, f"{w}.skeleton", "a list of persons", type(sk).__name__)
        persons = []
        for m, p in enumerate(sk):
            wp = f"{w}.skeleton[{m}]"
            if not isinstance(p, dict) or "pose" not in p or "score" not in p:
                raise DataFormatError(path, wp, 'an object with "pose" and "score"', short(json.dumps(p)))
            pose = _numbers(path, f"{wp}.pose", p["pose"], 2 * NUM_JOINTS)
            score = _numbers(path, f"{wp}.score", p["score"], NUM_JOINTS)
            persons.append((float(score.sum()), m, pose, score))
            seen.append((wp, pose, score))
        if len(persons) > max_persons:
            more += 1
            dropped += len(persons) - max_persons
        frames[fi] = sorted(persons, key=lambda t: (-t[0], t[1]))[:max_persons]
    _check_bounds(path, seen)
    with_person = [fi for fi, ps in frames.items() if ps]
    if not with_person:
        raise DataFormatError(path, "data", "at least one person in some frame",
                              f"no person in any of its {len(data)} frames")
    T_full = max(frames)
    T = min(T_full, max_frames)
    x = np.zeros((3, T, NUM_JOINTS, max_persons), dtype=np.float32)
    for fi, ps in frames.items():
        if fi > T:
            continue
        for m, (_, _, pose, score) in enumerate(ps):
            x[0, fi - 1, :, m] = pose[0::2]
            x[1, fi - 1, :, m] = pose[1::2]
            x[2, fi - 1, :, m] = score
    occupied = np.zeros(T, dtype=bool)
    occupied[[fi - 1 for fi in with_person if fi <= T]] = True
    info = {
        "frames": T,
        "empty_frames": int(T - occupied.sum()),
        "frames_with_more_persons": more,
        "dropped_persons": dropped,
        "truncated_from": T_full if T_full > T else None,
        "label_index": d.get("label_index"),
        "label": d.get("label"),
    }
    return x, info


def _check_bounds(path: str, seen: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """``BOUNDS`` over every person of the file (kept or not), naming the JSON path of the first bad value."""
    if not seen:
        return
    pose = np.stack([p for _, p, _ in seen])  # (P, 36): x0 y0 x1 y1 ...
    score = np.stack([s for _, _, s in seen])  # (P, 18)
    xys = np.stack([pose[:, 0::2], pose[:, 1::2], score], axis=2).reshape(-1, 3)  # rows (person, joint)

    def where(i: int, c: int) -> str:
        k, v = divmod(i, NUM_JOINTS)
        return f"{seen[k][0]}.pose[{2 * v + c}]" if c < 2 else f"{seen[k][0]}.score[{v}]"

    BOUNDS.check(xys, path, where)


def read_label_names(path: str | os.PathLike) -> list[str]:
    """label_name.txt: line k+1 is the name of class k."""
    names = [line.strip() for line in Path(path).read_text().splitlines()]
    while names and not names[-1]:
        names.pop()
    for k, n in enumerate(names):
        if not n:
            raise DataFormatError(path, k + 1, "a class name", "an empty line")
    return names


def _read_index(path: Path) -> dict[str, dict]:
    d = load_json(str(path))
    if not isinstance(d, dict):
        raise DataFormatError(path, "$", "an object {clip id: {has_skeleton, label, label_index}}", type(d).__name__)
    for k, v in d.items():
        if not isinstance(v, dict) or not {"has_skeleton", "label_index"} <= set(v):
            raise DataFormatError(path, k, 'an object with "has_skeleton" and "label_index"', short(json.dumps(v)))
        li = v["label_index"]
        if isinstance(li, bool) or not isinstance(li, int) or li < 0:
            raise DataFormatError(path, f"{k}.label_index", "an integer >= 0", short(json.dumps(li)))
    return d


def plan(raw: str | os.PathLike, label_names: str | os.PathLike | None = None, max_frames: int = MAX_FRAMES):
    """The bulk plan for ST-GCN's Kinetics-skeleton release (split ``default``: train = kinetics_train, test = val)."""
    raw = Path(raw)
    items, skipped, notes = [], [], []
    indices = {}
    for part in ("train", "val"):
        lab, folder = raw / f"kinetics_{part}_label.json", raw / f"kinetics_{part}"
        if not lab.is_file() or not folder.is_dir():
            raise FileNotFoundError(f"--raw {raw}: expected kinetics_{part}/ and kinetics_{part}_label.json "
                                    "(ST-GCN's Kinetics-skeleton release layout)")
        indices[part] = (_read_index(lab), folder, lab)
    n_classes = 1 + max(v["label_index"] for idx, _, _ in indices.values() for v in idx.values())
    if label_names is None and (raw / "label_name.txt").is_file():
        label_names = raw / "label_name.txt"
    if label_names is not None:
        class_names = read_label_names(label_names)
        if len(class_names) < n_classes:
            raise DataFormatError(label_names, len(class_names) + 1, f">= {n_classes} class names (label files use "
                                  f"label_index up to {n_classes - 1})", f"{len(class_names)} names")
    else:
        by_index = {v["label_index"]: v.get("label") for idx, _, _ in indices.values() for v in idx.values()}
        class_names = [str(by_index.get(k) or f"class {k}") for k in range(n_classes)]
        notes.append("no label_name.txt: class names taken from the label files' `label` fields")
    for part, (idx, folder, lab) in indices.items():
        member = {"default": part == "train"}
        on_disk = {p.stem: p for p in folder.glob("*.json")}
        for cid in sorted(idx):
            v = idx[cid]
            p = on_disk.pop(cid, None)
            if not v["has_skeleton"]:
                skipped.append(Reject(cid, str(p or folder / f"{cid}.json"), "skipped",
                                      f"has_skeleton is false in {lab.name}", member))
                continue
            if p is None:
                skipped.append(Reject(cid, str(folder / f"{cid}.json"), "rejected",
                                      f"listed in {lab.name} but the file is absent", member))
                continue
            items.append(Item(name=cid, path=str(p), label=v["label_index"], member=member,
                              kwargs={"expect_label": v["label_index"]}))
        for cid, p in sorted(on_disk.items()):
            skipped.append(Reject(cid, str(p), "skipped", f"no entry in {lab.name}", member))
    no_sk = sum(1 for r in skipped if r.reason.startswith("has_skeleton is false"))
    notes.append(f"{no_sk} clip(s) with has_skeleton false left out (listed in rejects.tsv)")
    if not items:
        raise FileNotFoundError(f"--raw {raw}: no clip with has_skeleton true was found")
    return Plan(
        format="kinetics", dataset="kinetics", items=items, skipped=skipped,
        loader=functools.partial(read_clip, max_frames=max_frames), shape=(3, NUM_JOINTS, 2),
        class_names=class_names, splits=SPLITS, max_frames=max_frames, bounds=BOUNDS,
        options={"dataset": "kinetics", "raw": str(raw.resolve()), "label_names": str(label_names) if label_names
                 else None, "max_frames": max_frames, "persons": "top-2 by summed joint score per frame",
                 "empty_frames": "kept as zeros"},
        extra_meta={"channels": ["x", "y", "score"], "joint_names": JOINT_NAMES, "bones": BONES, "fps": 30},
        notes=notes,
    )
