"""Any dataset: a documented ``.npz`` a user writes from any source, checked and converted to a store.

Layout (``np.savez(path, **arrays)``; no pickled objects)::

    x            float32 (N, C, T, V, M)   clips; frames >= num_frames[i] must be zero (padding)
    labels       integer (N,)              0-based class, < len(class_names)
    num_frames   integer (N,)              valid frames per clip, 1 <= num_frames <= T
    names        str (N,)                  unique sample names
    class_names  str (K,)                  class k's name
    <split>_train, <split>_test            bool (N,), one pair per split (e.g. xsub_train, xsub_test); disjoint
    joint_names  str (V,)                  optional
    bones        integer (E, 2)            optional (child, parent) pairs, 0-based joint indices

Write one with ``np.savez("mine.npz", x=x.astype(np.float32), labels=y, num_frames=n, names=np.array(names),
class_names=np.array(classes), xsub_train=tr, xsub_test=~tr)``; check it with ``slnl prepare npz --check
mine.npz`` (every problem is explained, not just the first); convert with ``slnl prepare npz --raw mine.npz --out
DIR``. Each clip must have a non-zero value somewhere in its valid frames (an all-zero clip is a missing sample).
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from .errors import DataFormatError
from .pipeline import Item, Plan
from .store import split_order

REQUIRED = ("x", "labels", "num_frames", "names", "class_names")
OPTIONAL = ("joint_names", "bones")


def _open(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], list[str]]:
    problems: list[str] = []
    arrays: dict[str, np.ndarray] = {}
    try:
        z = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return {}, [f"{path}: no such file"]
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        return {}, [f"{path}: not a readable .npz archive ({e})"]
    if not isinstance(z, np.lib.npyio.NpzFile):
        return {}, [f"{path}: a single .npy array, expected an .npz archive of named arrays"]
    with z:
        for k in z.files:
            try:
                arrays[k] = z[k]
            except ValueError as e:  # object arrays need pickle, which we refuse (arbitrary code on load)
                problems.append(f"{k}: stored as pickled Python objects ({e}); save strings as np.array(list_of_str)"
                                " (a str array) and numbers as numeric arrays")
    return arrays, problems


def check(path: str | os.PathLike) -> list[str]:
    """Every problem of the .npz at ``path`` as a sentence naming the array and what was expected; [] when valid."""
    a, problems = _open(path)
    return problems if not a and problems else _problems(a, problems)


def _problems(a: dict[str, np.ndarray], problems: list[str]) -> list[str]:
    """``problems`` extended with every problem of the arrays ``a`` (``check``'s work once the file is open)."""
    for k in REQUIRED:
        if k not in a and not any(p.startswith(f"{k}:") for p in problems):
            problems.append(f"{k}: missing (required: {', '.join(REQUIRED)} and one <split>_train/<split>_test pair)")
    x = a.get("x")
    N = T = V = None
    if x is not None:
        if x.ndim != 5:
            problems.append(f"x: expected 5 dimensions (N, C, T, V, M), found shape {x.shape}")
            x = None
        elif not np.issubdtype(x.dtype, np.floating):
            problems.append(f"x: expected float32 values, found dtype {x.dtype}")
            x = None
        else:
            N, _, T, V, _ = x.shape
            if x.dtype != np.float32:
                problems.append(f"x: expected dtype float32, found {x.dtype} (convert with x.astype(np.float32))")
            bad = ~np.isfinite(x)
            if bad.any():
                idx = np.argwhere(bad)[0]
                problems.append(f"x: {int(bad.sum())} NaN/inf value(s), first at x[{', '.join(map(str, idx))}]")
    labels, nf, names, classes = a.get("labels"), a.get("num_frames"), a.get("names"), a.get("class_names")
    for k, arr in (("labels", labels), ("num_frames", nf)):
        if arr is None:
            continue
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            problems.append(f"{k}: expected a 1-D integer array, found dtype {arr.dtype}, shape {arr.shape}")
        elif N is not None and len(arr) != N:
            problems.append(f"{k}: expected {N} entries (x has N={N}), found {len(arr)}")
    for k, arr in (("names", names), ("class_names", classes), ("joint_names", a.get("joint_names"))):
        if arr is not None and (arr.ndim != 1 or arr.dtype.kind != "U"):
            problems.append(f"{k}: expected a 1-D str array, found dtype {arr.dtype}, shape {arr.shape}")
    K = len(classes) if classes is not None and classes.ndim == 1 else None
    if labels is not None and labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer) and len(labels):
        out = (labels < 0) | (K is not None and labels >= K)
        if np.any(out):
            i = int(np.flatnonzero(out)[0])
            problems.append(f"labels: expected values in 0..{(K or 0) - 1} (one per class_names entry), found "
                            f"{int(labels[i])} at index {i} ({int(np.count_nonzero(out))} out of range)")
    if names is not None and names.ndim == 1:
        if N is not None and len(names) != N:
            problems.append(f"names: expected {N} entries (x has N={N}), found {len(names)}")
        u, c = np.unique(names, return_counts=True)
        if (c > 1).any():
            problems.append(f"names: expected unique names, found {int((c > 1).sum())} repeated (e.g. "
                            f"{u[c > 1][0]!r})")
    if nf is not None and nf.ndim == 1 and np.issubdtype(nf.dtype, np.integer) and T is not None and len(nf) == N:
        out = (nf < 1) | (nf > T)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            problems.append(f"num_frames: expected 1..{T} (T of x), found {int(nf[i])} at index {i} "
                            f"({int(out.sum())} out of range)")
        elif x is not None:
            t = np.arange(T)[None, :]
            pad = np.abs(x).max(axis=(1, 3, 4)) > 0  # (N, T): frame holds a non-zero value
            beyond = (pad & (t >= nf[:, None])).any(axis=1)
            if beyond.any():
                i = int(np.flatnonzero(beyond)[0])
                problems.append(f"x: sample {i} has non-zero values beyond num_frames={int(nf[i])} (padding must be "
                                f"zero; {int(beyond.sum())} sample(s)); is num_frames too small?")
            empty = ~(pad & (t < nf[:, None])).any(axis=1)
            if empty.any():
                i = int(np.flatnonzero(empty)[0])
                problems.append(f"x: sample {i} is all zeros in its {int(nf[i])} valid frame(s) (zero valid frames; "
                                f"{int(empty.sum())} sample(s)); leave missing samples out")
    splits = sorted({k.rsplit("_", 1)[0] for k in a if k.endswith(("_train", "_test"))})
    if not splits:
        problems.append("splits: no <split>_train / <split>_test boolean arrays (e.g. xsub_train, xsub_test)")
    for s in splits:
        tr, te = a.get(f"{s}_train"), a.get(f"{s}_test")
        if tr is None or te is None:
            only = f"{s}_train" if te is None else f"{s}_test"
            problems.append(f"{s}: expected both {s}_train and {s}_test, found only {only}")
            continue
        ok = True
        for k, m in ((f"{s}_train", tr), (f"{s}_test", te)):
            if m.dtype != bool or m.ndim != 1 or (N is not None and len(m) != N):
                problems.append(f"{k}: expected a bool array of length N={N}, found dtype {m.dtype}, shape {m.shape}")
                ok = False
        if ok and (tr & te).any():
            problems.append(f"{s}: {int((tr & te).sum())} sample(s) in both {s}_train and {s}_test")
    bones = a.get("bones")
    if bones is not None:
        if bones.ndim != 2 or bones.shape[1] != 2 or not np.issubdtype(bones.dtype, np.integer):
            problems.append(f"bones: expected an integer (E, 2) array, found dtype {bones.dtype}, shape {bones.shape}")
        elif V is not None and ((bones < 0) | (bones >= V)).any():
            problems.append(f"bones: expected joint indices 0..{V - 1} (0-based), found {bones.min()}..{bones.max()}")
    jn = a.get("joint_names")
    if jn is not None and V is not None and jn.ndim == 1 and len(jn) != V:
        problems.append(f"joint_names: expected V={V} names, found {len(jn)}")
    known = set(REQUIRED) | set(OPTIONAL) | {f"{s}_{t}" for s in splits for t in ("train", "test")}
    for k in sorted(set(a) - known):
        problems.append(f"{k}: unknown array (expected only {', '.join(REQUIRED + OPTIONAL)} and split masks)")
    return problems


class _Rows:
    """The loader of a plan: row ``row`` of ``x`` cut to its valid frames (the arrays are already in memory)."""

    def __init__(self, x: np.ndarray, num_frames: np.ndarray):
        self.x, self.num_frames = x, num_frames

    def __call__(self, path: str, row: int) -> tuple[np.ndarray, dict]:
        return self.x[row, :, : int(self.num_frames[row])], {}


def plan(raw: str | os.PathLike) -> Plan:
    """Validate ``raw`` (see ``check``; the first problem raises ``DataFormatError``) and plan its rows as records.

    The checks are those of every format (``slnl.data.pipeline.check_clip``) except the plausibility bound: slnl
    cannot know the units of your data, so only finite values are required.
    """
    a, problems = _open(raw)
    problems = problems if not a and problems else _problems(a, problems)
    if problems:
        more = f" (and {len(problems) - 1} more; run `slnl prepare npz --check {raw}`)" if len(problems) > 1 else ""
        raise DataFormatError(raw, problems[0].split(":", 1)[0], "a valid slnl .npz (see slnl/data/npz.py)",
                              problems[0].split(": ", 1)[-1] + more)
    x = a["x"]
    N, C, T, V, M = x.shape
    splits = tuple(split_order({k.rsplit("_", 1)[0] for k in a if k.endswith(("_train", "_test"))}))
    items = []
    for i, (name, label) in enumerate(zip(a["names"].tolist(), a["labels"].tolist())):
        member = {s: True if a[f"{s}_train"][i] else False if a[f"{s}_test"][i] else None for s in splits}
        items.append(Item(name=name, path=str(raw), label=int(label), member=member, kwargs={"row": i},
                          where=f"x[{i}]"))
    return Plan(
        format="npz", dataset=Path(raw).stem, items=items, skipped=[], loader=_Rows(x, a["num_frames"]),
        shape=(C, V, M), class_names=a["class_names"].tolist(), splits=splits, max_frames=None,
        options={"dataset": "npz", "raw": str(Path(raw).resolve())}, bounds=None,
        extra_meta={"joint_names": a["joint_names"].tolist() if "joint_names" in a else None,
                    "bones": a["bones"].tolist() if "bones" in a else None},
        in_process=True,
    )
