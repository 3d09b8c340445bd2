"""The prepared store on disk (docs/design.md, "Data") and ``load()``.

A store is a directory::

    x.npy           float32 (N, C, T_max, V, M)   clips; frames >= num_frames[i] are zero padding, never read
    labels.npy      int64 (N,)                     0-based class index
    num_frames.npy  int64 (N,)                     valid frames per clip, >= 1
    splits.npz      bool (N,) masks "<split>_train", "<split>_test"
    meta.json       dataset, layout, class_names, names (one per row), splits, counts per split, provenance
                    (software versions, options, date, source), "complete": true (written last)
    rejects.tsv     files that were skipped or rejected, with the reason (bulk preparation only)

``x.npy`` is opened with ``mmap_mode="r"``: a store of any size loads in milliseconds and costs memory only for the
frames a batch reads. ``meta.json`` is written last and atomically, so a directory without it (or without
``"complete": true``) is an interrupted preparation, never a store.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

SPLIT_ALIASES = {"cs": "xsub", "cv": "xview", "x-sub": "xsub", "x-view": "xview", "x-set": "xset", "cset": "xset"}
STORE_FORMAT = 1


def canonical_split(split: str) -> str:
    """``CS``→``xsub``, ``CV``→``xview`` (case-insensitive); other names pass through lower-cased."""
    s = split.strip().lower()
    return SPLIT_ALIASES.get(s, s)


class Store:
    """An opened store: ``x`` (memory map), ``labels``, ``num_frames``, ``splits`` (dict of masks), ``meta``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"{self.root} is not a prepared store (no meta.json); prepare one with `slnl prepare <dataset> "
                f"--raw DIR --out {self.root}` or use slnl.data.synthetic.ensure_default()")
        self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        if not self.meta.get("complete"):
            raise RuntimeError(f"{self.root}: preparation did not finish (meta.json has no \"complete\": true); "
                               "re-run `slnl prepare` with the same --out to resume")
        self.x = np.load(self.root / "x.npy", mmap_mode="r")
        self.labels = np.load(self.root / "labels.npy")
        self.num_frames = np.load(self.root / "num_frames.npy")
        with np.load(self.root / "splits.npz") as z:
            self.splits = {k: z[k].astype(bool) for k in z.files}
        self.names: list[str] = self.meta["names"]
        self.class_names: list[str] = self.meta["class_names"]
        N = len(self.labels)
        if not (self.x.shape[0] == len(self.num_frames) == len(self.names) == N):
            raise ValueError(f"{self.root}: inconsistent store: x {self.x.shape}, labels {N}, "
                             f"num_frames {len(self.num_frames)}, names {len(self.names)}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def split_names(self) -> list[str]:
        return sorted({k.rsplit("_", 1)[0] for k in self.splits})

    def rows(self, split: str, subset: str) -> np.ndarray:
        """Store rows of ``subset`` ("train" | "test" | "all") of ``split`` (aliases accepted)."""
        if subset == "all":
            return np.arange(len(self.labels), dtype=np.int64)
        split = canonical_split(split)
        key = f"{split}_{subset}"
        if subset not in ("train", "test"):
            raise ValueError(f"subset must be 'train', 'test' or 'all', got {subset!r}")
        if key not in self.splits:
            raise KeyError(f"{self.root}: no split {split!r} in this {self.meta.get('dataset')} store; "
                           f"available: {', '.join(self.split_names)} (aliases: CS=xsub, CV=xview)")
        return np.flatnonzero(self.splits[key]).astype(np.int64)


def load(
    store_dir: str | Path,
    split: str = "xsub",
    subset: str = "train",
    T: int = 64,
    train: bool | None = None,
    seed: int = 0,
):
    """One split/subset of a prepared store as a ``SkeletonDataset`` (see ``slnl.data.sampling``).

    ``train`` (default ``subset == "train"``) selects the random crop (ratio ~ U[0.5, 1]) vs. the central crop (0.95)
    of §4.1; every crop is resized to ``T`` frames. Crops are a pure function of ``(seed, epoch, store row)``.
    """
    from .sampling import SkeletonDataset

    st = Store(store_dir)
    rows = st.rows(split, subset)
    return SkeletonDataset(
        x=st.x, labels=st.labels, num_frames=st.num_frames, names=st.names, indices=rows,
        class_names=st.class_names, T=T, train=(subset == "train") if train is None else train, seed=seed,
        meta=st.meta, store_dir=str(st.root),
    )


def split_counts(splits: dict[str, np.ndarray]) -> dict[str, dict[str, int]]:
    """``{"xsub": {"train": 40091, "test": 16487}, ...}`` from the masks."""
    out: dict[str, dict[str, int]] = {}
    for k, m in sorted(splits.items()):
        name, sub = k.rsplit("_", 1)
        out.setdefault(name, {})[sub] = int(np.count_nonzero(m))
    return out


def read_meta(store_dir: str | Path) -> dict[str, Any] | None:
    """The store's meta.json, or ``None`` when absent or unreadable (an unfinished store)."""
    p = Path(store_dir) / "meta.json"
    try:
        return json.loads(p.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
