"""MSR Action3D (Li, Zhang, Liu 2010): ``aXX_sYY_eZZ_skeleton3D.txt`` → ``(3, T, 20, 1)`` (x, y, z).

Each line is ``x y z c`` (real-world coordinates and a confidence ``c``), 20 lines (joints) per frame. Rules:

* the 557 sequences named in ``files_used_in_cvpr12_paper.txt`` are the standard set (the other 10 files are
  corrupt or empty); files not listed are skipped and reported, listed names without a file are reported;
* frames whose 20 joints are all (0, 0, 0) are sensor drop-outs and are removed (counted in ``info``); the ``c``
  column is discarded (C = 3, M = 1).

Splits (protocols; docs/msr3d-anchor.md has the evidence for what each published number means):

* ``xsub``: subjects 1, 3, 5, 7, 9 train, 2, 4, 6, 8, 10 test, all 20 classes (284 / 273 clips) — the fixed
  cross-subject split usually meant by "the MSR Action3D cross-subject protocol". One split, one accuracy.
* ``lie1`` … ``lie10``: the ten 5/5 subject splits of the Lie group method's release (Vemulapalli, Arrate and
  Chellappa 2014), read from ``tr_te_splits.mat`` (fields ``tr_subjects`` / ``te_subjects``, one split per row;
  split ``lieK`` = row K: its training subjects train, the other five test, all 20 classes). The released code
  reports the accuracy averaged over these splits, so the comparison with its number (89.48, most likely such a
  mean: the paper's own wording was not found) is the mean of our accuracies over ``lie1`` … ``lie10``
  (``MEAN_OVER_LIE``), not ``xsub``, which is none of the ten. Made only when the .mat is next to the raw files or
  given as ``plan(splits_mat=...)``; otherwise they are absent and a one-line note says so. A .mat whose splits
  differ from the release's (``LIE_TRAIN``) is used as given, with a note; a malformed one is a
  ``DataFormatError`` naming the file and the field expected. The file's ``action_sets`` (Li et al.'s AS1-AS3) are
  not read: every split here has all 20 classes.
* ``xsub-val``, for choosing a recipe without the test subjects: subjects 1, 3, 5 train, 7, 9 validate (the
  split's test side); the test subjects 2, 4, 6, 8, 10 are not in it. (The lie splits have no validation split:
  their test subjects differ from split to split, so a recipe is chosen once, on ``xsub-val``.)

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
SPLITS: tuple[str, ...] = ("xsub", "xsub-val")  # always made; lie1 ... lie10 only with the .mat (LIE_SPLITS)
SUBJECTS = frozenset(range(1, 11))
# The Lie group release's subject splits (Vemulapalli et al. 2014, data/MSRAction3D/tr_te_splits.mat: ten rows of
# five training subjects; the other five test), sorted. lieK = row K. The file is read, not these: they only tell
# whether a given file is the release's.
SPLITS_MAT = "tr_te_splits.mat"
LIE_TRAIN: tuple[frozenset[int], ...] = tuple(frozenset(r) for r in (
    (1, 2, 3, 5, 10), (2, 3, 4, 5, 10), (2, 3, 5, 6, 7), (2, 3, 5, 6, 8), (2, 3, 5, 6, 9), (2, 3, 5, 6, 10),
    (2, 3, 5, 7, 8), (2, 3, 5, 7, 9), (2, 3, 5, 8, 10), (2, 3, 5, 9, 10)))
LIE_SPLITS: tuple[str, ...] = tuple(f"lie{k + 1}" for k in range(len(LIE_TRAIN)))
# The Lie group release's code averages its MSR Action3D accuracy over its ten splits (docs/msr3d-anchor.md): the
# figure of ours to set beside its number is the mean over lie1 ... lie10, under this key.
MEAN_OVER_LIE = "mean over lie1-lie10"
# Published top-1 (%) on the 557 sequences, all 20 actions, cross-subject: what the paper's final model is compared
# with on MSR Action3D, in place of Table 1's NTU numbers (slnl.report). 89.48 is not an accuracy on xsub's 273 test
# clips (244/273 = 89.38, 245/273 = 89.74); the Lie group code averages over the ten splits of tr_te_splits.mat
# (docs/msr3d-anchor.md), so it is set beside our mean over lie1 ... lie10 (slnl.report.results.DATASET_REPEATS).
PUBLISHED: dict[str, dict[str, float]] = {
    MEAN_OVER_LIE: {"Lie group (Vemulapalli, Arrate and Chellappa 2014)": 89.48},
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


def _member(subject: int, lie: tuple[frozenset[int], ...] = ()) -> dict[str, bool | None]:
    """Split membership of a subject's clips: True = train side, False = test side, None = not in the split.
    ``lie``: the training subjects of lie1, lie2, ... (empty: no lie splits); their test side is the other subjects
    of 1-10."""
    val = True if subject in VAL_TRAIN else False if subject in VAL_HELD_OUT else None
    out: dict[str, bool | None] = {"xsub": subject in XSUB_TRAIN, "xsub-val": val}
    for k, train in enumerate(lie):
        out[f"lie{k + 1}"] = True if subject in train else False if subject in SUBJECTS else None
    return out


def read_splits_mat(path: str | os.PathLike) -> tuple[frozenset[int], ...]:
    """``tr_te_splits.mat`` → the training subjects of each split (row k of ``tr_subjects`` = split k + 1).

    Read with ``scipy.io.loadmat`` (a MATLAB v4-v7.2 file; data only, nothing is executed). ``tr_subjects`` and
    ``te_subjects`` must be numeric K × n matrices of whole subject numbers 1-10 with as many rows, and each row's
    training and test subjects disjoint and together 1-10. Anything else: ``DataFormatError`` naming the file and
    the field (and row) expected.
    """
    path = Path(path)
    want = ("fields tr_subjects and te_subjects: K × 5 matrices of subject numbers 1-10 (row k = split k's "
            "training / test subjects)")
    from scipy.io import loadmat  # scipy is a dependency; imported here, where a .mat is read

    try:
        m = loadmat(str(path))
    except Exception as e:  # MatReadError, ValueError (not a .mat), NotImplementedError (v7.3 / HDF5), ...
        raise DataFormatError(path, None, f"a MATLAB .mat file (v4-v7.2, as scipy.io.loadmat reads) with {want}",
                              f"unreadable: {short(' '.join(str(e).split()), 120)}") from None
    fields = sorted(k for k in m if not k.startswith("__"))
    rows = {}
    for f in ("tr_subjects", "te_subjects"):
        if f not in m:
            raise DataFormatError(path, f, f"a field {f!r}, with {want}",
                                  f"no such field (fields: {', '.join(fields) or 'none'})")
        a = np.asarray(m[f])
        if a.dtype.kind not in "iuf" or a.ndim != 2 or not a.size:
            raise DataFormatError(path, f, "a numeric K × n matrix of subject numbers 1-10",
                                  f"a {a.dtype} array of shape {a.shape}")
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(a) | (a != np.round(a)) | (a < 1) | (a > 10)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise DataFormatError(path, f"{f}[{i + 1}, {j + 1}]", "a whole subject number 1-10", f"{a[i, j]!r}")
        rows[f] = [[int(v) for v in r] for r in a]
    tr, te = rows["tr_subjects"], rows["te_subjects"]
    if len(tr) != len(te):
        raise DataFormatError(path, "te_subjects", f"as many rows as tr_subjects ({len(tr)}): one per split",
                              f"{len(te)} rows")
    out = []
    for k, (a, b) in enumerate(zip(tr, te)):
        if len(set(a)) != len(a) or len(set(b)) != len(b) or set(a) & set(b) or set(a) | set(b) != SUBJECTS:
            raise DataFormatError(path, f"tr_subjects[{k + 1}] / te_subjects[{k + 1}]",
                                  "distinct training and test subjects that together are subjects 1-10",
                                  f"training {a}, test {b}")
        out.append(frozenset(a))
    return tuple(out)


def _lie_splits(raw: Path, splits_mat: str | os.PathLike | None
                ) -> tuple[tuple[frozenset[int], ...], list[str], str | None]:
    """(training subjects per lie split, notes, the .mat used): from ``splits_mat``, else ``raw/tr_te_splits.mat``
    when there; none (and a note) without either. A given ``splits_mat`` that does not exist is an error."""
    if splits_mat is not None:
        path = Path(splits_mat)
        if not path.is_file():
            raise FileNotFoundError(f"--splits-mat {path}: not found (the Lie group release's {SPLITS_MAT}, fields "
                                    "tr_subjects and te_subjects)")
    else:
        path = raw / SPLITS_MAT
        if not path.is_file():
            return (), [f"no {SPLITS_MAT} in {raw} and no --splits-mat: splits lie1-lie{len(LIE_TRAIN)} (the Lie "
                        "group protocol's ten subject splits) not made; xsub and xsub-val are"], None
    lie = read_splits_mat(path)
    notes = []
    if lie != LIE_TRAIN:
        notes.append(f"{path}: its {len(lie)} subject split(s) differ from the Lie group release's ten; lie1-"
                     f"lie{len(lie)} follow the file, so their mean is not the published protocol's")
    return lie, notes, str(path)


def plan(raw: str | os.PathLike, used_list: str | os.PathLike | None = None,
         splits_mat: str | os.PathLike | None = None):
    """The bulk plan: the standard 557 sequences, 20 classes; splits ``xsub``, ``xsub-val`` and, with a
    ``tr_te_splits.mat`` (``splits_mat``, default ``raw/tr_te_splits.mat`` when present), ``lie1`` … ``lie10``."""
    raw = Path(raw)
    if not raw.is_dir():
        raise FileNotFoundError(f"--raw {raw}: not a directory")
    if used_list is None:
        used_list = raw / "files_used_in_cvpr12_paper.txt"
        if not used_list.is_file():
            raise FileNotFoundError(f"{used_list} not found: pass --used-list (the list of the 557 standard "
                                    "sequences, files_used_in_cvpr12_paper.txt)")
    lie, notes, mat = _lie_splits(raw, splits_mat)
    used = [Path(n).name.replace("_skeleton3D", "") for n in read_name_list(used_list)]
    files = {p.name.replace("_skeleton3D.txt", ""): p for p in raw.glob("a*_s*_e*_skeleton3D.txt")}
    items, skipped = [], []
    for name in sorted(set(used)):
        f = parse_name(name)
        member = _member(f["subject"], lie)
        p = files.pop(name, None)
        if not 1 <= f["action"] <= len(CLASS_NAMES):
            skipped.append(Reject(name, str(p), "skipped", f"action {f['action']} outside 1-20", member))
        elif p is None:
            skipped.append(Reject(name, str(raw / f"{name}_skeleton3D.txt"), "rejected",
                                  "named by the used list but the file is absent", member))
        else:
            items.append(Item(name=name, path=str(p), label=f["action"] - 1, member=member))
    for name, p in sorted(files.items()):
        member = _member(parse_name(name)["subject"], lie)
        skipped.append(Reject(name, str(p), "skipped", f"not among the standard sequences ({Path(used_list).name})",
                              member))
    if len(used) != len(set(used)):
        notes.append(f"{len(used) - len(set(used))} duplicate name(s) in {used_list}")
    return Plan(
        format="msr3d", dataset="msr3d", items=items, skipped=skipped, loader=read_sequence,
        shape=(3, NUM_JOINTS, 1), class_names=CLASS_NAMES, max_frames=None, bounds=BOUNDS,
        splits=SPLITS + tuple(f"lie{k + 1}" for k in range(len(lie))),
        options={"dataset": "msr3d", "raw": str(raw.resolve()), "used_list": str(used_list), "splits_mat": mat,
                 "zero_frames": "dropped", "channels": "x y z (c dropped)"},
        extra_meta={"channels": ["x", "y", "z"], "joint_names": JOINT_NAMES, "fps": 15},
        notes=notes,
    )
