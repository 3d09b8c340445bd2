"""CTR-GCN's NTU files (Chen et al. 2021, with SGN's preprocessing, Zhang et al. 2020): ``NTU60_CS.npz`` → a store.

Layout (``np.savez``, one file per protocol; CTR-GCN's ``data/ntu*/seq_transformation.py`` writes them)::

    x_train  float32 (N_train, 300, 150)   per frame the 150 values are (M=2, V=25, C=3): person, joint, x y z
    y_train  float (N_train, K)            one-hot, K = 60 (NTU-60) or 120 (NTU-120)
    x_test, y_test                         the same for the test side

Files: ``NTU60_CS.npz`` (xsub), ``NTU60_CV.npz`` (xview), ``NTU120_CSub.npz`` (xsub), ``NTU120_CSet.npz`` (xset).
The protocol comes from the file name (CS→xsub, CV→xview, CSub→xsub, CSet→xset) or ``split=``; the dataset
(ntu60 / ntu120) from K. One file holds one protocol, so the store has one split. The files hold no sample names:
rows are named ``train_00000``, ``test_00000``, ... in file order (CTR-GCN's feeder names them ``train_0``, ...).
Labels are the position of the one positive entry of ``y``; a row that is not one-hot is rejected.

Valid frames: the script pads every clip with zero frames to 300 (``align_frames``). A clip's valid frames run up to
its last frame holding a non-zero value; CTR-GCN's feeder counts the non-zero frames instead, which is the same
number since its preprocessing removes every frame where nobody is present. An all-zero row is rejected.

How its preprocessing differs from ours (``slnl.data.ntu``), so that results on these files are compared knowingly:

* **Centred, not rotated**: ``seq_translation`` subtracts from every frame the position of joint 2 (middle of the
  spine) of actor 1 in actor 1's first frame; ours keeps Kinect camera coordinates. (A rotation to a canonical
  view is 2s-AGCN's ``pre_normalization``; CTR-GCN's NTU files do not use it.)
* **Denoising**: bodies present in <= 11 frames are dropped (as ours), then bodies whose x extent exceeds 0.8 × their
  y extent in >= 69.754 % of their frames; the rest are ranked by motion, and actor slots are filled by comparing
  frame *intervals* (first to last frame) for overlap, where ours compares the actual frames. A few two-person and
  noisy clips therefore differ in which body fills which slot.
* **Frames**: frames where neither actor is present are removed (as ours); frames holding NaN are removed by the
  script, where ours rejects the file.

Plausibility (``BOUNDS``): centred metres, within ±10 m like raw Kinect camera space (``slnl.data.ntu``).

Reading: ``x_*`` is memory-mapped out of the .npz when the member is stored uncompressed (``np.savez``, what the
script writes); a compressed member (``np.savez_compressed``) is first decompressed into an anonymous temporary file
and mapped from there. Either way memory holds one chunk of rows, not the 7 GB of NTU-60's training side. Object
arrays (which need pickle) are refused.
"""
from __future__ import annotations

import os
import re
import shutil
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import ntu
from .errors import DataFormatError
from .pipeline import Bounds, Item, Plan, Reject
from .store import canonical_split

FRAME_VALUES = 150  # M=2 x V=25 x C=3
BOUNDS = Bounds(("x", "y", "z"), (-10.0,) * 3, (10.0,) * 3, "metres, centred on the spine by CTR-GCN")
PROTOCOLS = {"cs": "xsub", "cv": "xview", "csub": "xsub", "cset": "xset"}
_NAME = re.compile(r"(?i)ntu[-_]?(60|120)?[-_]?(csub|cset|cs|cv)$")
_LOCAL_HEADER = 30  # bytes of a zip local file header before its name and extra field


def split_from_name(path: str | os.PathLike) -> str | None:
    """``NTU60_CS.npz`` → ``xsub``, ``NTU60_CV`` → ``xview``, ``NTU120_CSub`` → ``xsub``, ``NTU120_CSet`` → ``xset``."""
    m = _NAME.search(Path(path).stem)
    return PROTOCOLS[m.group(2).lower()] if m else None


# ---------------------------------------------------------------------------------------------------------- reading
def _npy_header(path: Path, key: str, f) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(f)
        read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}[version]
        shape, fortran, dtype = read(f)
    except (ValueError, KeyError) as e:
        raise DataFormatError(path, key, "a .npy array (format 1.0 or 2.0)", f"{type(e).__name__}: {e}") from None
    if dtype.hasobject:
        raise DataFormatError(path, key, "a numeric array", f"dtype {dtype} (Python objects need pickle: refused)")
    return shape, fortran, dtype


def read_member(path: str | os.PathLike, key: str) -> np.ndarray:
    """Array ``key`` of the .npz ``path``, read-only, without loading it (see the module docstring)."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataFormatError(path, None, "a .npz archive written by np.savez", f"{type(e).__name__}: {e}") from None
    with zf:
        try:
            info = zf.getinfo(f"{key}.npy")
        except KeyError:
            have = ", ".join(n.removesuffix(".npy") for n in zf.namelist())
            raise DataFormatError(path, key, f"an array {key!r} (x_train, y_train, x_test, y_test)",
                                  f"only {have or 'nothing'}") from None
        if info.compress_type == zipfile.ZIP_STORED:
            with open(path, "rb") as f:
                f.seek(info.header_offset)
                head = f.read(_LOCAL_HEADER)
                if head[:4] != b"PK\x03\x04":
                    raise DataFormatError(path, key, "a zip local file header", repr(head[:4]))
                name_len, extra_len = struct.unpack("<HH", head[26:30])
                f.seek(info.header_offset + _LOCAL_HEADER + name_len + extra_len)
                shape, fortran, dtype = _npy_header(path, key, f)
                offset = f.tell()
            src = path
        else:  # compressed: inflate once into an unnamed file (deleted when the map is), then map it
            src = tempfile.TemporaryFile()
            with zf.open(info) as member:
                shutil.copyfileobj(member, src, 16 << 20)
            src.seek(0)
            shape, fortran, dtype = _npy_header(path, key, src)
            offset = src.tell()
    if int(np.prod(shape)) == 0:
        return np.empty(shape, dtype)
    return np.memmap(src, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


class _Rows:
    """The loader of a plan: row ``row`` of ``x_<part>`` as a clip ``(3, T, 25, 2)`` cut to its valid frames."""

    def __init__(self, x: dict[str, np.ndarray]):
        self.x = x

    def __call__(self, path: str, part: str, row: int) -> tuple[np.ndarray, dict]:
        r = np.asarray(self.x[part][row], dtype=np.float32)  # (300, 150)
        present = np.flatnonzero((r != 0).any(axis=1))  # NaN counts as present: check_clip rejects it, by place
        if not len(present):
            raise DataFormatError(path, f"x_{part}[{row}]", "a clip with a non-zero value (an all-zero row is a "
                                  "missing sample)", f"all {len(r)} frames zero")
        T = int(present[-1]) + 1
        clip = r[:T].reshape(T, 2, ntu.NUM_JOINTS, 3).transpose(3, 0, 2, 1)  # (T, M, V, C) -> (C, T, V, M)
        return np.ascontiguousarray(clip), {"padding_frames": len(r) - T, "zero_frames_inside": T - len(present)}


# ---------------------------------------------------------------------------------------------------------- plan
def plan(raw: str | os.PathLike, split: str | None = None) -> Plan:
    """The bulk plan for one CTR-GCN NTU file: every row of ``x_train`` and ``x_test`` is a record."""
    raw = Path(raw)
    if not raw.is_file():
        raise FileNotFoundError(f"--raw {raw}: no such file (expected CTR-GCN's NTU60_CS.npz or a sibling)")
    split = canonical_split(split) if split else split_from_name(raw)
    if split is None:
        raise ValueError(f"--raw {raw.name}: cannot tell the protocol from the file name (expected NTU60_CS, "
                         "NTU60_CV, NTU120_CSub or NTU120_CSet); pass --split xsub|xview|xset")
    x = {part: read_member(raw, f"x_{part}") for part in ("train", "test")}
    y = {part: np.asarray(read_member(raw, f"y_{part}")) for part in ("train", "test")}
    K = None
    for part in ("train", "test"):
        if x[part].ndim != 3 or x[part].shape[2] != FRAME_VALUES:
            raise DataFormatError(raw, f"x_{part}", f"shape (N, T, {FRAME_VALUES}) = per frame (M=2, V=25, C=3)",
                                  f"shape {x[part].shape}")
        if y[part].ndim != 2 or len(y[part]) != len(x[part]) or y[part].shape[1] not in (60, 120):
            raise DataFormatError(raw, f"y_{part}", f"one-hot labels of shape ({len(x[part])}, 60 or 120)",
                                  f"shape {y[part].shape}")
        if K not in (None, y[part].shape[1]):
            raise DataFormatError(raw, f"y_{part}", f"{K} classes like y_train", f"{y[part].shape[1]}")
        K = y[part].shape[1]
    dataset = "ntu60" if K == 60 else "ntu120"
    if split not in ntu.SPLITS[dataset]:
        raise ValueError(f"--raw {raw.name}: protocol {split} is not one of {dataset}'s "
                         f"({', '.join(ntu.SPLITS[dataset])}); pass --split")
    width = max(5, len(str(max(len(x["train"]), len(x["test"])))))
    items, skipped = [], []
    for part in ("train", "test"):
        member = {split: part == "train"}
        positive = y[part] > 0
        for i in range(len(y[part])):
            name = f"{part}_{i:0{width}d}"
            row = y[part][i]
            if positive[i].sum() != 1 or row[positive[i]][0] != 1 or (row < 0).any():
                skipped.append(Reject(name, str(raw), "rejected", f"{raw}, at y_{part}[{i}]: expected a one-hot "
                                      f"row, found {np.count_nonzero(row)} non-zero value(s)", member,
                                      f"y_{part}[{i}]", "a one-hot row", f"{np.count_nonzero(row)} non-zero"))
                continue
            items.append(Item(name=name, path=str(raw), label=int(np.argmax(row)), member=member,
                              kwargs={"part": part, "row": i}, where=f"x_{part}[{i}]"))
    return Plan(
        format="ctrgcn", dataset=dataset, items=items, skipped=skipped, loader=_Rows(x), shape=(3, ntu.NUM_JOINTS, 2),
        class_names=ntu.NTU60_CLASSES if dataset == "ntu60" else ntu.NTU120_CLASSES, splits=(split,),
        max_frames=None, bounds=BOUNDS,
        options={"dataset": dataset, "raw": str(raw.resolve()), "split": split,
                 "valid_frames": "up to the last non-zero frame"},
        extra_meta={"channels": ["x", "y", "z"], "joint_names": ntu.JOINT_NAMES, "bones": ntu.BONES, "fps": 30,
                    "preprocessing": "CTR-GCN: centred on joint 2 of actor 1's first frame, not rotated"},
        in_process=True,
    )
