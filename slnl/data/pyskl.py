"""PYSKL's NTU annotations (Duan et al. 2022): ``ntu60_3danno.pkl`` / ``ntu120_3danno.pkl`` → a store.

Layout (a pickle, written by PYSKL's tools with ``mmcv.dump``)::

    {"split": {"xsub_train": [frame_dir, ...], "xsub_val": [...], "xview_train": [...], "xview_val": [...]},
     "annotations": [{"frame_dir": "S001C001P001R001A001", "label": 0, "total_frames": T,
                      "keypoint": float (M, T, V=25, C=3), ...}, ...]}

(NTU-120: ``xsub_*`` and ``xset_*``.) Every split in the file becomes a store split: ``<split>_train`` is our
train side, ``<split>_val`` our test side (``xsub_val`` → ``xsub`` test). A sample named in no split list is
skipped and reported. ``frame_dir`` (the NTU sample name) names the row, ``label`` (0-based) is its class; the
dataset (ntu60 / ntu120) follows from the labels (any label >= 60 means NTU-120) or else the file name.

Clip: ``keypoint`` ``(M, T, V, C)`` becomes ``(C, T, V, 2)``; M is 1 or 2 (slot 2 of a one-person clip is zero, as
in our stores); more than two persons, a shape other than ``(M, total_frames, 25, 3)`` (e.g. PYSKL's 2-D
annotations, C = 2) or a label outside the classes rejects the sample. All ``T`` frames are kept, in place.

How its preprocessing differs from ours (``slnl.data.ntu``): the keypoints are the raw Kinect 3-D joints (metres,
camera space), not centred or rotated — PYSKL normalises at load time (``PreNormalize3D``), as our model's
coordinate transformer learns to. Body selection is PYSKL's own denoising of the raw files; frames are as PYSKL
kept them (ours drops frames where no kept body is present).

Plausibility (``BOUNDS``): raw Kinect v2 camera space, ±10 m (``slnl.data.ntu``).

Safety: a pickle can run any code while it loads. This one is read by ``SafeUnpickler``, which admits only what a
file of numbers needs — numpy arrays, dtypes and scalars (``numpy.core`` / ``numpy._core`` names, as numpy 1.x and
2.x write them) and builtin containers — and refuses anything else before it is called, naming it.
"""
from __future__ import annotations

import codecs
import collections
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from . import ntu
from .errors import DataFormatError
from .pipeline import Bounds, Item, Plan, Reject
from .store import canonical_split, split_order

BOUNDS = Bounds(("x", "y", "z"), (-10.0,) * 3, (10.0,) * 3, "metres, Kinect v2 camera space")
SIDES = {"train": True, "val": False, "test": False}


# ---------------------------------------------------------------------------------------------------------- pickle
def _latin1(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it to carry bytes (``encode(str, "latin1")``), and nothing else."""
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode(..., {encoding!r}): only latin1 text-to-bytes is admitted")
    return codecs.encode(text, "latin1")


def _allowed() -> dict[tuple[str, str], Any]:
    """The admitted globals, mapped to this numpy's own functions (taken from what it pickles, not imported by a
    private module name, so the table is right on numpy 1.x and 2.x alike)."""
    reconstruct = np.zeros(0).__reduce__()[0]  # numpy(._)core.multiarray._reconstruct
    scalar = np.float32(0).__reduce__()[0]  # numpy(._)core.multiarray.scalar
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]  # numpy(._)core.numeric._frombuffer (protocol 5)
    out: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for pkg in ("numpy.core", "numpy._core"):
        out[(f"{pkg}.multiarray", "_reconstruct")] = reconstruct
        out[(f"{pkg}.multiarray", "scalar")] = scalar
        out[(f"{pkg}.numeric", "_frombuffer")] = frombuffer
    for mod in ("builtins", "__builtin__"):  # protocol 2 names Python 2's module
        out.update({(mod, "set"): set, (mod, "frozenset"): frozenset, (mod, "bytearray"): bytearray})
    out[("collections", "OrderedDict")] = collections.OrderedDict
    out[("_codecs", "encode")] = _latin1
    return out


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle referenced a global (a function or class) outside ``SafeUnpickler.ALLOWED``."""


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and builtin containers, and refuses every other global.

    Admitted: ``numpy.ndarray``, ``numpy.dtype``, ``numpy.core/_core.multiarray._reconstruct`` and ``.scalar``,
    ``numpy.core/_core.numeric._frombuffer``; ``set``, ``frozenset``, ``bytearray``, ``collections.OrderedDict``
    (also under Python 2's ``__builtin__``); ``_codecs.encode`` restricted to latin1 (how protocol 2 carries bytes).
    Lists, dicts, tuples, strings and numbers need no global. Anything else raises ``pickle.UnpicklingError``
    naming it, before it is called; so does a persistent id.
    """

    ALLOWED: dict[tuple[str, str], Any] = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedGlobal(f"persistent id {pid!r}")


def safe_load(path: str | os.PathLike) -> Any:
    """Unpickle ``path`` with ``SafeUnpickler``; a refused global or a malformed file is one ``DataFormatError``."""
    try:
        with open(path, "rb") as f:
            return SafeUnpickler(f).load()
    except RefusedGlobal as e:
        raise DataFormatError(path, None, "a pickle of numpy arrays and builtin containers only", f"a reference to "
                              f"{e}, refused before it could run (a data file has no reason to hold one)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise DataFormatError(path, None, "a readable pickle", f"{type(e).__name__}: {e}") from None


# ---------------------------------------------------------------------------------------------------------- plan
class _Clips:
    """The loader of a plan: annotation ``index`` as a clip ``(3, T, 25, 2)`` (the pickle is already in memory)."""

    def __init__(self, annotations: list):
        self.annotations = annotations

    def __call__(self, path: str, index: int) -> tuple[np.ndarray, dict]:
        a = self.annotations[index]
        at = f"annotations[{index}].keypoint"
        kp = a.get("keypoint")
        if not isinstance(kp, np.ndarray) or not np.issubdtype(kp.dtype, np.number):
            raise DataFormatError(path, at, "a numeric array (M, T, 25, 3)", type(kp).__name__)
        T = a.get("total_frames", kp.shape[1] if kp.ndim == 4 else None)
        if kp.ndim != 4 or kp.shape[2:] != (ntu.NUM_JOINTS, 3) or kp.shape[1] != T or kp.shape[0] < 1:
            raise DataFormatError(path, at, f"shape (M, total_frames={T}, 25, 3) (3-D NTU joints)",
                                  f"shape {kp.shape}")
        M = kp.shape[0]
        if M > 2:
            raise DataFormatError(path, at, "at most 2 persons (M <= 2)", f"M = {M}")
        x = np.zeros((3, kp.shape[1], ntu.NUM_JOINTS, 2), dtype=np.float32)
        x[..., :M] = kp.transpose(3, 1, 2, 0)  # (M, T, V, C) -> (C, T, V, M)
        return x, {"persons": int(M)}


def _splits(path: Path, d: dict) -> dict[str, dict[str, bool]]:
    """``{frame_dir: {split: is_train}}`` from the file's ``split`` lists."""
    member: dict[str, dict[str, bool]] = {}
    if not isinstance(d, dict) or not d:
        raise DataFormatError(path, "split", "a dict {'<split>_train' | '<split>_val': [frame_dir, ...]}",
                              type(d).__name__)
    for key, names in d.items():
        split, _, side = str(key).rpartition("_")
        if not split or side not in SIDES or not isinstance(names, (list, tuple)):
            raise DataFormatError(path, f"split[{key!r}]", "keys '<split>_train' / '<split>_val' holding lists of "
                                  "frame_dir names", f"{key!r}: {type(names).__name__}")
        split = canonical_split(split)
        for n in names:
            was = member.setdefault(str(n), {}).setdefault(split, SIDES[side])
            if was != SIDES[side]:
                raise DataFormatError(path, f"split[{key!r}]", f"each name on one side of {split}",
                                      f"{n} on both sides")
    return member


def plan(raw: str | os.PathLike) -> Plan:
    """The bulk plan for one PYSKL NTU annotation file: every annotation is a record."""
    raw = Path(raw)
    if not raw.is_file():
        raise FileNotFoundError(f"--raw {raw}: no such file (expected PYSKL's ntu60_3danno.pkl or ntu120_3danno.pkl)")
    d = safe_load(raw)
    if not isinstance(d, dict) or not isinstance(d.get("annotations"), list) or "split" not in d:
        raise DataFormatError(raw, None, 'a dict with "split" and "annotations" (PYSKL\'s annotation file)',
                              type(d).__name__ if not isinstance(d, dict) else f"keys {sorted(map(str, d))}")
    anns = d["annotations"]
    member = _splits(raw, d["split"])
    splits = tuple(split_order({s for m in member.values() for s in m}))
    labels = [a.get("label") if isinstance(a, dict) else None for a in anns]
    big = any(isinstance(v, (int, np.integer)) and v >= 60 for v in labels)
    dataset = "ntu120" if big or "120" in raw.stem else "ntu60"
    classes = ntu.NTU60_CLASSES if dataset == "ntu60" else ntu.NTU120_CLASSES
    items, skipped, seen = [], [], set()
    for i, (a, label) in enumerate(zip(anns, labels)):
        name = str(a.get("frame_dir")) if isinstance(a, dict) else f"annotations[{i}]"
        m = {s: member.get(name, {}).get(s) for s in splits}
        where = f"annotations[{i}]"
        if not isinstance(a, dict) or not isinstance(a.get("frame_dir"), str):
            skipped.append(Reject(name, str(raw), "rejected", f"{raw}, at {where}: expected a dict with a frame_dir "
                                  "string", None, where, "a dict with a frame_dir string", type(a).__name__))
        elif name in seen:
            skipped.append(Reject(name, str(raw), "rejected", f"{raw}, at {where}: frame_dir {name} again", m,
                                  where, "each frame_dir once", f"{name} again"))
        elif isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < len(classes):
            skipped.append(Reject(name, str(raw), "rejected", f"{raw}, at {where}.label: expected a class index "
                                  f"0..{len(classes) - 1}, found {label!r}", m, f"{where}.label",
                                  f"a class index 0..{len(classes) - 1}", repr(label)))
        elif all(v is None for v in m.values()):
            skipped.append(Reject(name, str(raw), "skipped", "named in no split list of the file", m))
        else:
            items.append(Item(name=name, path=str(raw), label=int(label), member=m, kwargs={"index": i},
                              where=where))
        seen.add(name)
    absent = sorted(set(member) - seen)
    notes = [f"{len(absent)} name(s) in the split lists have no annotation (e.g. {', '.join(absent[:3])})"] \
        if absent else []
    return Plan(
        format="pyskl", dataset=dataset, items=items, skipped=skipped, loader=_Clips(anns),
        shape=(3, ntu.NUM_JOINTS, 2), class_names=classes, splits=splits, max_frames=None, bounds=BOUNDS,
        options={"dataset": dataset, "raw": str(raw.resolve()), "splits": {s: f"{s}_train / {s}_val" for s in splits}},
        extra_meta={"channels": ["x", "y", "z"], "joint_names": ntu.JOINT_NAMES, "bones": ntu.BONES, "fps": 30,
                    "preprocessing": "PYSKL: raw Kinect camera-space joints (normalised by PYSKL at load time)"},
        notes=notes, in_process=True,
    )
