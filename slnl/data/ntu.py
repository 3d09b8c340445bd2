"""NTU RGB+D 60/120 (Shahroudy et al. 2016; Liu et al. 2019): raw ``.skeleton`` files → clips ``(3, T, 25, 2)``.

File format (one value group per line; CRLF or LF)::

    <frame count>
    per frame:  <body count>                         (0 allowed: the sensor saw nobody)
      per body: <bodyID clipedEdges handLeftConfidence handLeftState handRightConfidence handRightState
                 isRestricted leanX leanY trackingState>        (10 values)
                <joint count>                                     (25)
                25 x <x y z depthX depthY colorX colorY orientationW orientationX orientationY orientationZ
                      trackingState>                              (12 values; x, y, z in metres, camera space)

File names are ``SsssCcccPpppRrrrAaaa`` (setup, camera, performer, replication, action; 1-based).

From raw bodies to a clip (``to_clip``) — the rule, following the field's denoising practice (Shahroudy et al.'s
release, as refined in the preprocessing shipped with 2s-AGCN / CTR-GCN):

1. Bodies are tracked by ``bodyID`` across frames (a body may appear or vanish mid-sequence).
2. Bodies present in <= 11 frames are dropped as tracking noise. If that would drop every body, the longest one
   (ties: most motion) is kept instead, so that a short clip still yields its performer.
3. The remaining bodies are ranked by motion = sum over the 25 joints and x, y, z of the variance over the body's
   frames. Walking that ranking, a body joins actor 1 if it never co-occurs with actor 1's frames so far (the same
   person re-identified under a new ID), otherwise actor 2 under the same condition, otherwise it is dropped (a third
   simultaneous person) and counted in ``info["dropped_overlapping_bodies"]``.
4. Frames in which no kept body is present (including frames with 0 bodies) are removed and counted in
   ``info["dropped_empty_frames"]``; the kept frames keep their order. Within a kept frame an actor slot is zero only
   where that actor is genuinely absent (e.g. actor 2 before they enter the scene; slot 2 of a one-person clip).
5. The first ``max_frames`` (300) kept frames are stored; a longer clip is cut and counted in ``info["truncated_from"]``
   (NTU clips have at most 300 frames, so this does not happen on the official data).
6. Channels are x, y, z of the 25 joints (the other 9 values per joint are parsed and validated, then discarded).

A file whose bodies never appear in any frame is the official "missing skeleton" case and is rejected with a
``DataFormatError``.

Plausibility (``BOUNDS``): x, y, z are metres in Kinect v2 camera space. The sensor sees 0.5–4.5 m deep (its
skeleton tracking gives up before 8 m, where the 70° × 60° field of view spans about ±5.6 m across), so every
coordinate of a real file lies within ±10 m (the five shared real files: |x| ≤ 0.92, |y| ≤ 1.03, z ≤ 4.13). A value
outside ±10 m — ``1e30``, ``-3e38``, the debris of a corrupted write — rejects the file, naming its line and value.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import DataFormatError, short
from .pipeline import Bounds, Item, Plan, Reject, read_name_list

NUM_JOINTS = 25
JOINT_VALUES = 12
BODY_INFO_VALUES = 10
MIN_BODY_FRAMES = 12  # bodies present in <= 11 frames are noise (step 2 above)
MAX_FRAMES = 300
BOUNDS = Bounds(("x", "y", "z"), (-10.0,) * 3, (10.0,) * 3, "metres, Kinect v2 camera space")

# 1-based NTU joint numbering, as in the dataset's documentation.
JOINT_NAMES = [
    "base of spine", "middle of spine", "neck", "head", "left shoulder", "left elbow", "left wrist", "left hand",
    "right shoulder", "right elbow", "right wrist", "right hand", "left hip", "left knee", "left ankle", "left foot",
    "right hip", "right knee", "right ankle", "right foot", "spine", "tip of left hand", "left thumb",
    "tip of right hand", "right thumb",
]
# Bones as (child, parent), 1-based, the kinematic tree used by ST-GCN for NTU.
BONES = [(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10), (12, 11),
         (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (22, 23), (23, 8), (24, 25),
         (25, 12)]

NTU60_CLASSES = [
    "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup", "throw", "sitting down",
    "standing up (from sitting position)", "clapping", "reading", "writing", "tear up paper", "wear jacket",
    "take off jacket", "wear a shoe", "take off a shoe", "wear on glasses", "take off glasses", "put on a hat/cap",
    "take off a hat/cap", "cheer up", "hand waving", "kicking something", "reach into pocket",
    "hopping (one foot jumping)", "jump up", "make a phone call/answer phone", "playing with phone/tablet",
    "typing on a keyboard", "pointing to something with finger", "taking a selfie", "check time (from watch)",
    "rub two hands together", "nod head/bow", "shake head", "wipe face", "salute", "put the palms together",
    "cross hands in front (say stop)", "sneeze/cough", "staggering", "falling", "touch head (headache)",
    "touch chest (stomachache/heart pain)", "touch back (backache)", "touch neck (neckache)",
    "nausea or vomiting condition", "use a fan (with hand or paper)/feeling warm", "punching/slapping other person",
    "kicking other person", "pushing other person", "pat on back of other person", "point finger at the other person",
    "hugging other person", "giving something to other person", "touch other person's pocket", "handshaking",
    "walking towards each other", "walking apart from each other",
]
NTU120_CLASSES = NTU60_CLASSES + [
    "put on headphone", "take off headphone", "shoot at the basket", "bounce ball", "tennis bat swing",
    "juggling table tennis balls", "hush (quite)", "flick hair", "thumb up", "thumb down", "make ok sign",
    "make victory sign", "staple book", "counting money", "cutting nails", "cutting paper (using scissors)",
    "snapping fingers", "open bottle", "sniff (smell)", "squat down", "toss a coin", "fold paper", "ball up paper",
    "play magic cube", "apply cream on face", "apply cream on hand back", "put on bag", "take off bag",
    "put something into a bag", "take something out of a bag", "open a box", "move heavy objects", "shake fist",
    "throw up cap/hat", "hands up (both hands)", "cross arms", "arm circles", "arm swings", "running on the spot",
    "butt kicks (kick backward)", "cross toe touch", "side kick", "yawn", "stretch oneself", "blow nose",
    "hit other person with something", "wield knife towards other person",
    "knock over other person (hit with body)", "grab other person's stuff", "shoot at other person with a gun",
    "step on foot", "high-five", "cheers and drink", "carry something with other person",
    "take a photo of other person", "follow other person", "whisper in other person's ear",
    "exchange things with other person", "support somebody with hand",
    "finger-guessing game (playing rock-paper-scissors)",
]

# Official protocols (Shahroudy et al. 2016, §4; Liu et al. 2019, §5.1).
XSUB60_TRAIN = frozenset([1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38])
XSUB120_TRAIN = XSUB60_TRAIN | frozenset([45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81,
                                          82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103])
XVIEW_TRAIN_CAMERAS = frozenset([2, 3])
SPLITS = {"ntu60": ("xsub", "xview"), "ntu120": ("xsub", "xset")}
NUM_ACTIONS = {"ntu60": 60, "ntu120": 120}
NUM_SETUPS = {"ntu60": 17, "ntu120": 32}

_NAME = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$")


def parse_name(name: str) -> dict[str, int]:
    """``"S001C002P003R002A013"`` → ``{"setup": 1, "camera": 2, "subject": 3, "replication": 2, "action": 13}``."""
    stem = Path(name).name.split(".")[0]
    m = _NAME.match(stem)
    if not m:
        raise ValueError(f"{name!r} is not an NTU sample name SsssCcccPpppRrrrAaaa")
    s, c, p, r, a = map(int, m.groups())
    return {"setup": s, "camera": c, "subject": p, "replication": r, "action": a}


def split_membership(name: str, dataset: str = "ntu60") -> dict[str, bool]:
    """``{split: is_train}`` for an NTU sample name under ``dataset``'s official protocols."""
    f = parse_name(name)
    if dataset == "ntu60":
        return {"xsub": f["subject"] in XSUB60_TRAIN, "xview": f["camera"] in XVIEW_TRAIN_CAMERAS}
    if dataset == "ntu120":
        return {"xsub": f["subject"] in XSUB120_TRAIN, "xset": f["setup"] % 2 == 0}
    raise ValueError(f"unknown NTU dataset {dataset!r}; expected ntu60 or ntu120")


# ---------------------------------------------------------------------------------------------------------- parsing
@dataclass
class Body:
    """One tracked ``bodyID``: the frames it appears in (0-based, increasing) and its joints' x, y, z there."""

    body_id: str
    frames: np.ndarray  # int64 (k,)
    xyz: np.ndarray  # float32 (k, 25, 3)

    @property
    def motion(self) -> float:
        """Sum over joints and x, y, z of the variance over the body's frames (step 3 of the module's rule)."""
        return float(np.var(self.xyz.astype(np.float64), axis=0).sum()) if len(self.frames) > 1 else 0.0


@dataclass
class RawSkeleton:
    """A parsed ``.skeleton`` file, before actor selection."""

    path: str
    num_frames: int  # frames read (== declared unless strict=False met a truncated file)
    body_counts: np.ndarray  # int64 (num_frames,)
    bodies: list[Body]  # in order of first appearance
    warnings: list[str] = field(default_factory=list)


def read_skeleton(path: str | os.PathLike, strict: bool = True, num_joints: int = NUM_JOINTS) -> RawSkeleton:
    """Parse one ``.skeleton`` file (CRLF or LF), validating every line.

    Raises ``DataFormatError(file, line, expected, found)`` for a bad count, a wrong number of values on a line, a
    non-numeric or non-finite value, a joint count other than ``num_joints``, or a file that ends before its declared
    frames. ``strict=False`` accepts exactly one recoverable defect instead of raising: a file that ends early *at a
    frame boundary or inside a frame* keeps its complete frames and records a warning (``RawSkeleton.warnings``);
    everything else still raises, since no correct value exists to keep.
    """
    path = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataFormatError(path, None, "UTF-8/ASCII text", f"undecodable bytes at offset {e.start}") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    n = len(lines)

    def count(i: int, what: str) -> int:
        if i >= n:
            raise _Truncated(i, what)
        s = lines[i].strip()
        try:
            v = int(s)
        except ValueError:
            raise DataFormatError(path, i + 1, what, short(s)) from None
        if v < 0:
            raise DataFormatError(path, i + 1, what, s)
        return v

    declared = count(0, "the frame count (a non-negative integer)") if n else None
    if declared is None:
        raise DataFormatError(path, 1, "the frame count (a non-negative integer)", "an empty file")
    body_counts: list[int] = []
    ids: dict[str, int] = {}  # bodyID -> body number in order of first appearance
    blocks: list[tuple[int, int, int]] = []  # (first joint line index, frame, body number)
    warnings: list[str] = []
    i = 1
    try:
        for f in range(declared):
            nb = count(i, f"the body count of frame {f + 1} (a non-negative integer)")
            i += 1
            frame_blocks = []
            for b in range(nb):
                if i >= n:
                    raise _Truncated(i, f"the info line of body {b + 1} in frame {f + 1}")
                info = lines[i].split()
                if len(info) != BODY_INFO_VALUES:
                    raise DataFormatError(path, i + 1, f"{BODY_INFO_VALUES} body-info values (bodyID ... "
                                          f"trackingState) for body {b + 1} of frame {f + 1}",
                                          f"{len(info)} values: {short(lines[i].strip())}")
                bid = info[0]
                i += 1
                nj = count(i, f"the joint count of body {b + 1} in frame {f + 1}")
                if nj != num_joints:
                    raise DataFormatError(path, i + 1, f"{num_joints} joints for body {b + 1} of frame {f + 1}",
                                          f"{nj}")
                i += 1
                if i + num_joints > n:
                    raise _Truncated(n, f"{num_joints} joint lines for body {b + 1} of frame {f + 1}")
                frame_blocks.append((i, f, ids.setdefault(bid, len(ids))))
                i += num_joints
            blocks.extend(frame_blocks)
            body_counts.append(nb)
    except _Truncated as t:
        msg_found = f"end of file after line {n} ({len(body_counts)} complete frames of {declared} declared)"
        if strict:
            raise DataFormatError(path, t.line + 1, t.what, msg_found) from None
        warnings.append(f"truncated: {len(body_counts)} of {declared} declared frames")
        i = n  # the partial frame is discarded; nothing follows it
    if i != n:
        extra = lines[i].strip()
        if strict:
            raise DataFormatError(path, i + 1, f"end of file after {declared} declared frames",
                                  f"{n - i} more line(s), starting {short(extra)}")
        warnings.append(f"{n - i} trailing line(s) ignored after {declared} declared frames")

    # All joint lines at once: ~1 µs/line, the bulk of the work for a whole dataset.
    rows = [lines[j + k] for (j, _, _) in blocks for k in range(num_joints)]
    vals = _floats(path, rows, [j + k for (j, _, _) in blocks for k in range(num_joints)])
    xyz = vals[:, :3].astype(np.float32).reshape(len(blocks), num_joints, 3)

    frames_of = [[] for _ in ids]
    rows_of = [[] for _ in ids]
    for r, (_, f, b) in enumerate(blocks):
        if frames_of[b] and frames_of[b][-1] == f:
            raise DataFormatError(path, blocks[r][0] - 1, f"each bodyID at most once per frame (frame {f + 1})",
                                  f"bodyID {list(ids)[b]} twice")
        frames_of[b].append(f)
        rows_of[b].append(r)
    bodies = [Body(bid, np.asarray(frames_of[b], dtype=np.int64), xyz[rows_of[b]]) for bid, b in ids.items()]
    return RawSkeleton(path, len(body_counts), np.asarray(body_counts, dtype=np.int64), bodies, warnings)


class _Truncated(Exception):
    def __init__(self, line: int, what: str):
        self.line, self.what = line, what


def _floats(path: str, rows: list[str], line_idx: list[int]) -> np.ndarray:
    """``(len(rows), 12)`` float64; on failure find the first offending line and say what is wrong with it."""
    if not rows:
        return np.zeros((0, JOINT_VALUES))
    try:
        vals = np.array([r.split() for r in rows], dtype=np.float64)
        if vals.ndim != 2 or vals.shape[1] != JOINT_VALUES:
            raise ValueError
    except ValueError:
        for r, li in zip(rows, line_idx):
            parts = r.split()
            if len(parts) != JOINT_VALUES:
                raise DataFormatError(path, li + 1, f"{JOINT_VALUES} joint values (x y z depthX depthY colorX colorY "
                                      "orientationW X Y Z trackingState)", f"{len(parts)} values: {short(r.strip())}")
            for k, p in enumerate(parts):
                try:
                    float(p)
                except ValueError:
                    raise DataFormatError(path, li + 1, f"a number for joint value {k + 1} of {JOINT_VALUES}",
                                          short(p)) from None
        raise  # pragma: no cover - unreachable: some line must be at fault
    bad = ~np.isfinite(vals)
    if bad.any():
        r, k = np.argwhere(bad)[0]
        raise DataFormatError(path, line_idx[r] + 1, f"a finite number for joint value {k + 1} of {JOINT_VALUES}",
                              short(rows[r].split()[k]))
    BOUNDS.check(vals[:, :3], path, lambda r, _: line_idx[r] + 1)
    return vals


# ---------------------------------------------------------------------------------------------------------- actors
def to_clip(raw: RawSkeleton, max_bodies: int = 2, max_frames: int = MAX_FRAMES,
            min_body_frames: int = MIN_BODY_FRAMES) -> tuple[np.ndarray, dict]:
    """Apply the module's actor rule: ``(x float32 (3, T, 25, max_bodies), info)`` with T = kept frames (<= max)."""
    if not raw.bodies:
        raise DataFormatError(raw.path, None, "at least one body in some frame",
                              f"no body in any of its {raw.num_frames} frames (a 'missing skeleton' sample)")
    long = [b for b in raw.bodies if len(b.frames) >= min_body_frames]
    fallback = not long
    if fallback:
        long = [max(raw.bodies, key=lambda b: (len(b.frames), b.motion))]
    ranked = sorted(long, key=lambda b: -b.motion)  # stable: equal motion keeps order of first appearance
    slots: list[list[Body]] = [[] for _ in range(max_bodies)]
    occupied = [np.zeros(raw.num_frames, dtype=bool) for _ in range(max_bodies)]
    dropped_overlap = 0
    for b in ranked:
        for s in range(max_bodies):
            if not occupied[s][b.frames].any():
                slots[s].append(b)
                occupied[s][b.frames] = True
                break
        else:
            dropped_overlap += 1
    keep = np.flatnonzero(np.logical_or.reduce(occupied))
    truncated_from = len(keep) if len(keep) > max_frames else None
    keep = keep[:max_frames]
    row = np.full(raw.num_frames, -1, dtype=np.int64)
    row[keep] = np.arange(len(keep))
    x = np.zeros((3, len(keep), raw.bodies[0].xyz.shape[1], max_bodies), dtype=np.float32)
    for s, bodies in enumerate(slots):
        for b in bodies:
            r = row[b.frames]
            ok = r >= 0
            x[:, r[ok], :, s] = b.xyz[ok].transpose(0, 2, 1)  # advanced indices first: (k, 3, 25)
    info = {
        "declared_frames": int(raw.num_frames),
        "kept_frames": int(len(keep)),
        "bodies": len(raw.bodies),
        "actors": sum(1 for s in slots if s),
        "dropped_short_bodies": 0 if fallback else len(raw.bodies) - len(long),
        "short_body_fallback": fallback,
        "dropped_overlapping_bodies": dropped_overlap,
        "dropped_empty_frames": int(raw.num_frames - int(np.logical_or.reduce(occupied).sum())),
        "truncated_from": truncated_from,
        "warnings": list(raw.warnings),
    }
    return x, info


def load_clip(path: str | os.PathLike, strict: bool = True, max_frames: int = MAX_FRAMES) -> tuple[np.ndarray, dict]:
    """``read_skeleton`` + ``to_clip``: one file to ``(x (3, T, 25, 2), info)`` (the function bulk preparation maps)."""
    return to_clip(read_skeleton(path, strict=strict), max_frames=max_frames)


# ---------------------------------------------------------------------------------------------------------- plan
def plan(dataset: str, raw: str | os.PathLike, missing_list: str | os.PathLike | None = None,
         max_frames: int = MAX_FRAMES, class_names: list[str] | None = None, store_dataset: str | None = None):
    """The bulk-preparation plan for NTU-60/120 from a directory of ``.skeleton`` files (searched recursively).

    Files whose name is not an NTU sample name, or whose setup/action lies outside ``dataset`` (e.g. an NTU-120
    file in an NTU-60 preparation), are skipped and listed. Names in ``missing_list`` are parsed too, never kept,
    and every disagreement between the list and the files is reported (a listed file that holds a skeleton; an
    unlisted file with no body; listed names absent from ``raw``).
    """
    if dataset not in SPLITS:
        raise ValueError(f"unknown NTU dataset {dataset!r}; expected ntu60 or ntu120")
    raw = Path(raw)
    if not raw.is_dir():
        raise FileNotFoundError(f"--raw {raw}: not a directory of .skeleton files")
    files = sorted(raw.rglob("*.skeleton"), key=lambda p: (p.name, str(p)))
    if not files:
        raise FileNotFoundError(f"--raw {raw}: no .skeleton files found (searched recursively)")
    missing = set(read_name_list(missing_list)) if missing_list else set()
    items, skipped, seen = [], [], {}
    n_actions, n_setups = NUM_ACTIONS[dataset], NUM_SETUPS[dataset]
    for p in files:
        name = p.name[: -len(".skeleton")]
        try:
            f = parse_name(name)
        except ValueError:
            skipped.append(Reject(name, str(p), "skipped", "file name is not an NTU sample name SsssCcccPpppRrrrAaaa"))
            continue
        member = split_membership(name, dataset)
        if f["action"] < 1 or f["action"] > n_actions or f["setup"] < 1 or f["setup"] > n_setups:
            skipped.append(Reject(name, str(p), "skipped", f"not part of {dataset} (setup {f['setup']}, action "
                                  f"{f['action']}; {dataset} has setups 1-{n_setups}, actions 1-{n_actions})"))
            continue
        if name in seen:
            skipped.append(Reject(name, str(p), "skipped", f"duplicate of {seen[name]}", member))
            continue
        seen[name] = str(p)
        items.append(Item(name=name, path=str(p), label=f["action"] - 1, member=member,
                          listed_missing=name in missing))
    notes = []
    if missing_list:
        absent = sorted(missing - set(seen))
        if absent:
            notes.append(f"{len(absent)} of {len(missing)} names in --missing-list have no file in --raw "
                         f"(e.g. {', '.join(absent[:3])})")
    options = {"dataset": dataset, "raw": str(raw.resolve()), "missing_list": str(missing_list) if missing_list
               else None, "max_frames": max_frames, "actor_rule": f"drop bodies in <= {MIN_BODY_FRAMES - 1} frames, "
               "rank by motion, merge non-overlapping, keep 2", "empty_frames": "dropped"}
    return Plan(
        format=store_dataset or dataset, dataset=store_dataset or dataset, items=items, skipped=skipped,
        loader=functools.partial(load_clip, max_frames=max_frames), shape=(3, NUM_JOINTS, 2),
        class_names=class_names or (NTU60_CLASSES if dataset == "ntu60" else NTU120_CLASSES),
        splits=SPLITS[dataset], max_frames=max_frames, options=options, bounds=BOUNDS,
        extra_meta={"channels": ["x", "y", "z"], "joint_names": JOINT_NAMES, "bones": BONES, "fps": 30},
        notes=notes,
    )


# ---------------------------------------------------------------------------------------------------------- writing
def format_skeleton(num_frames: int, bodies: Sequence[tuple[str, np.ndarray, np.ndarray]], newline: str = "\r\n",
                    digits: int = 6) -> str:
    """The text of a ``.skeleton`` file (the inverse of ``read_skeleton``; used by the synthetic generator and tests).

    ``bodies``: ``(bodyID, frames (k,) 0-based increasing, xyz (k, 25, 3) metres)``. Depth/colour pixel coordinates
    are a pinhole projection of x, y, z with Kinect v2's nominal intrinsics (so they are plausible, not just zeros);
    orientations are 0 and every joint is "tracked" (2). Bodies of a frame are listed in the order given.
    """
    per_frame: list[list[tuple[str, np.ndarray]]] = [[] for _ in range(num_frames)]
    for bid, frames, xyz in bodies:
        for f, j in zip(np.asarray(frames).tolist(), np.asarray(xyz, dtype=np.float64)):
            per_frame[f].append((bid, j))
    jfmt = " ".join([f"%.{digits}f"] * 3 + ["%.4f"] * 4) + " 0 0 0 0 2"
    out = [str(num_frames)]
    for bodies_f in per_frame:
        out.append(str(len(bodies_f)))
        for bid, j in bodies_f:
            out.append(f"{bid} 0 1 1 1 1 0 0 0 2")
            out.append(str(len(j)))
            z = np.where(np.abs(j[:, 2]) > 1e-6, j[:, 2], 1e-6)
            proj = np.stack([256 + 365.0 * j[:, 0] / z, 212 - 365.0 * j[:, 1] / z,
                             960 + 1050.0 * j[:, 0] / z, 540 - 1050.0 * j[:, 1] / z], axis=1)
            out.extend(jfmt % tuple(r) for r in np.concatenate([j, proj], axis=1).tolist())
    return newline.join(out) + newline
