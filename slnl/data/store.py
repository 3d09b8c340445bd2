"""The prepared store on disk (docs/design.md, "Data"): its layout, opening it, its identity, installing a new one.

A store is a directory::

    x.npy           float32 (N, C, T_max, V, M)   clips; frames >= num_frames[i] are zero padding, never read
    labels.npy      int64 (N,)                     0-based class index
    num_frames.npy  int64 (N,)                     valid frames per clip, >= 1
    splits.npz      bool (N,) masks "<split>_train", "<split>_test" (a sample may be in neither, never in both)
    rejects.tsv     every source file (or record) not kept, with the reason
    meta.json       dataset, source_format, layout, class_names, names (one per row), splits, counts per split,
                    summary, provenance (software versions, options, inputs key), "fingerprint", "prepared_at",
                    "format", "complete": true (the file is written last)

``x.npy`` is opened with ``mmap_mode="r"``: a store of any size opens in milliseconds and costs memory only for the
frames a batch reads. A directory without ``meta.json`` (or without ``"complete": true``) is an unfinished
preparation, never a store.

Identity. ``meta.json["fingerprint"]`` is a BLAKE2b-256 digest of the store's content — every array's dtype, shape
and bytes (``x``, ``labels``, ``num_frames``, each split mask) and the meta fields that say what the numbers mean
(``IDENTITY_FIELDS``) — computed by ``prepare`` from the files it wrote, streamed (memory stays at one block
whatever the store's size). Two stores with the same fingerprint hold the same data; dates, timings, paths and
software versions are not part of it. ``fingerprint(store)`` reads it (cheap); ``check_fingerprint(store,
expected, what)`` is what a run, a resumed run or a report calls to refuse other data; ``compute_fingerprint``
recomputes it from the files (to verify a store byte for byte); ``write_store`` writes a small store from arrays,
fingerprint included.

Replacing. ``prepare`` builds the new store in a hidden directory inside ``--out`` and then ``install()``s it file by
file: the old ``meta.json`` is removed first and the new one written last, so a reader sees the old store, an
unfinished one (which it refuses), or the new store — never a mixture that reads as complete. Files in ``--out`` that
are not part of the store layout (a synthetic set's ``raw/``, your notes) are left alone.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import StoreChangedError, StoreError, StoreExistsError

#: The datasets a store can hold (``meta.json["dataset"]``, the ``--dataset`` of experiments); ``npz`` is your own
#: data in slnl's documented .npz layout. Preparation formats (what ``slnl prepare`` reads) are
#: ``slnl.data.prepare.FORMATS``: CTR-GCN's and PYSKL's files hold ntu60 / ntu120.
DATASETS: tuple[str, ...] = ("synthetic", "ntu60", "ntu120", "kinetics", "msr3d", "nwucla", "sbu", "npz")
#: Split names in their canonical order (other names, e.g. from a user's .npz, follow alphabetically). ``fold1`` ...
#: ``fold5`` are SBU's five cross-validation folds; no alias maps to them.
SPLITS: tuple[str, ...] = ("xsub", "xview", "xset", "default", "fold1", "fold2", "fold3", "fold4", "fold5")
SPLIT_ALIASES = {"cs": "xsub", "cv": "xview", "x-sub": "xsub", "x-view": "xview", "x-set": "xset", "cset": "xset",
                 "csub": "xsub"}
STORE_FORMAT = 2  # 2: meta.json carries "fingerprint" and "prepared_at"
ARRAY_FILES = ("x.npy", "labels.npy", "num_frames.npy", "splits.npz")
STORE_FILES = ARRAY_FILES + ("rejects.tsv", "meta.json")  # meta.json last: the order install() follows
#: meta.json fields that define what the arrays mean, hashed into the fingerprint with the arrays.
IDENTITY_FIELDS = ("dataset", "class_names", "names", "splits", "channels", "joint_names", "bones")
_BLOCK_BYTES = 64 << 20  # fingerprint read size


def canonical_split(split: str) -> str:
    """``CS``→``xsub``, ``CV``→``xview`` (case-insensitive); other names pass through lower-cased."""
    s = split.strip().lower()
    return SPLIT_ALIASES.get(s, s)


def split_order(names) -> list[str]:
    """Split names in canonical order: ``SPLITS`` first, in that order, then any other name alphabetically."""
    return sorted(names, key=lambda s: (SPLITS.index(s) if s in SPLITS else len(SPLITS), s))


class Store:
    """An opened store: ``x`` (memory map), ``labels``, ``num_frames``, ``splits`` (dict of masks), ``meta``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.meta: dict[str, Any] = read_meta(self.root)
        if not self.meta.get("complete"):
            raise StoreError(f"{self.root}: preparation did not finish (meta.json has no \"complete\": true); "
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
            raise StoreError(f"{self.root}: inconsistent store: x {self.x.shape}, labels {N}, "
                             f"num_frames {len(self.num_frames)}, names {len(self.names)}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def split_names(self) -> list[str]:
        return split_order({k.rsplit("_", 1)[0] for k in self.splits})

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


# ---------------------------------------------------------------------------------------------------------- reading
def read_meta(store_dir: str | Path) -> dict[str, Any]:
    """The store's ``meta.json`` as a dict; one-line errors for a directory without one or with invalid JSON."""
    path = Path(store_dir) / "meta.json"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{Path(store_dir)} is not a prepared store (no meta.json); prepare one with `slnl prepare <format> "
            f"--raw SOURCE --out {Path(store_dir)}` or use slnl.data.synthetic.ensure_default()") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}): {e.msg}") from None


def complete_meta(store_dir: str | Path) -> dict[str, Any] | None:
    """The meta of the complete store in ``store_dir``; ``None`` when there is none (absent, unfinished, unreadable)."""
    try:
        meta = read_meta(store_dir)
    except (FileNotFoundError, ValueError, OSError):
        return None
    return meta if isinstance(meta, dict) and meta.get("complete") is True else None


def split_names(store_dir: str | Path) -> list[str]:
    """The splits a store holds, from ``splits.npz``'s masks, in canonical order (xsub, xview, xset, default,
    fold1 ... fold5, then others)."""
    with np.load(Path(store_dir) / "splits.npz") as z:
        return split_order({k.rsplit("_", 1)[0] for k in z.files if k.endswith(("_train", "_test"))})


def split_counts(splits: dict[str, np.ndarray]) -> dict[str, dict[str, int]]:
    """``{"xsub": {"train": 40091, "test": 16487}, ...}`` from the masks."""
    out: dict[str, dict[str, int]] = {}
    for k, m in sorted(splits.items()):
        name, sub = k.rsplit("_", 1)
        out.setdefault(name, {})[sub] = int(np.count_nonzero(m))
    return out


# ---------------------------------------------------------------------------------------------------------- identity
def compute_fingerprint(store_dir: str | Path, meta: dict[str, Any] | None = None) -> str:
    """BLAKE2b-256 (hex) of the arrays' dtype, shape and bytes and of the meta's ``IDENTITY_FIELDS``, streamed.

    ``meta`` defaults to the directory's ``meta.json`` (``prepare`` passes the meta it is about to write).
    """
    root = Path(store_dir)
    meta = read_meta(root) if meta is None else meta
    h = hashlib.blake2b(digest_size=32)

    def add(name: str, a: np.ndarray) -> None:
        h.update(f"{name}|{a.dtype.str}|{list(a.shape)}\n".encode())
        if a.size == 0:
            return
        a = a.reshape(len(a), -1) if a.ndim else a.reshape(1)
        rows = max(1, _BLOCK_BYTES // max(1, a[0].nbytes))
        for s in range(0, len(a), rows):
            h.update(np.ascontiguousarray(a[s : s + rows]).data)  # a view for a C-ordered memory map: no copy

    for name in ("x", "labels", "num_frames"):
        add(name, np.load(root / f"{name}.npy", mmap_mode="r"))
    with np.load(root / "splits.npz") as z:
        for k in sorted(z.files):
            add(f"splits/{k}", np.asarray(z[k], dtype=bool))
    h.update(json.dumps({k: meta.get(k) for k in IDENTITY_FIELDS}, sort_keys=True).encode())
    return h.hexdigest()


def fingerprint(store_dir: str | Path) -> str:
    """The content fingerprint ``prepare`` recorded in the store's meta.json (a 64-digit hex string).

    A store prepared before fingerprints existed has none: that is a ``StoreError`` telling to re-run ``prepare``
    (recomputing it silently on every run would hash a multi-GB store each time, and would vouch for files nobody
    prepared with this version).
    """
    meta = read_meta(store_dir)
    fp = meta.get("fingerprint")
    if not (isinstance(fp, str) and len(fp) == 64):
        raise StoreError(f"{Path(store_dir)}: no content fingerprint in meta.json (store format "
                         f"{meta.get('format', 1)}, prepared by an older slnl); re-run `slnl prepare ... --force "
                         f"--out {Path(store_dir)}` to record one")
    return fp


def check_fingerprint(store_dir: str | Path, expected: str, what: str) -> None:
    """Raise ``StoreChangedError`` (one line) unless the store's fingerprint is ``expected``.

    ``what`` names who recorded ``expected``, e.g. ``"run results/runs/abc"``; the message reads "<store>: not the
    store <what> used (...)".
    """
    fp = fingerprint(store_dir)
    if fp != expected:
        meta = read_meta(store_dir)
        raise StoreChangedError(
            f"{Path(store_dir)}: not the store {what} used: this one was prepared {meta.get('prepared_at', '?')} "
            f"(fingerprint {fp[:12]}), {what} recorded fingerprint {str(expected)[:12]}; point it at the store it "
            "used, or start afresh on this one")


# ---------------------------------------------------------------------------------------------------------- writing
def check_target(out: str | Path, force: bool = False) -> dict[str, Any] | None:
    """Refuse (``StoreExistsError``) to prepare into ``out`` when it holds a complete store, unless ``force``.

    Returns the existing store's meta (``None`` when there is none). An unfinished preparation is not a store: it is
    resumed, so this passes.
    """
    meta = complete_meta(out)
    if meta is None or force:
        return meta
    when = meta.get("prepared_at") or meta.get("provenance", {}).get("date", "?")
    raise StoreExistsError(f"{out} already holds a {meta.get('dataset')} store (prepared {when}); pass --force to "
                           "replace it, or choose another --out")


def write_store(root: str | Path, x: np.ndarray, labels: np.ndarray, num_frames: np.ndarray,
                splits: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """A complete store in ``root`` from arrays in memory: tests, benchmarks, a few clips of your own (a real dataset
    goes through ``slnl prepare``, which validates every clip, records rejects and provenance, and replaces a store
    safely). ``splits``: ``{"<split>_train": mask, "<split>_test": mask}``; ``meta``: at least ``dataset``,
    ``class_names``, ``names`` and ``splits``. The content ``fingerprint`` and ``format`` are recorded, and
    ``meta.json`` is written last, with ``"complete": true``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "x.npy", np.asarray(x, dtype=np.float32))
    np.save(root / "labels.npy", np.asarray(labels, dtype=np.int64))
    np.save(root / "num_frames.npy", np.asarray(num_frames, dtype=np.int64))
    np.savez(root / "splits.npz", **{k: np.asarray(v, dtype=bool) for k, v in splits.items()})
    meta = {**meta, "format": STORE_FORMAT}
    meta["fingerprint"] = compute_fingerprint(root, meta)
    (root / "meta.json").write_text(json.dumps({**meta, "complete": True}))
    return root


def install(build: str | Path, out: str | Path) -> None:
    """Move the complete store in ``build`` into ``out`` (same file system), ``meta.json`` last (module docstring)."""
    build, out = Path(build), Path(out)
    missing = [n for n in STORE_FILES if not (build / n).is_file()]
    if missing:
        raise StoreError(f"{build}: not a finished store (missing {', '.join(missing)})")
    out.mkdir(parents=True, exist_ok=True)
    try:
        (out / "meta.json").unlink()  # from here on readers refuse `out` as unfinished, until the new meta lands
    except FileNotFoundError:
        pass
    _fsync_dir(out)
    for name in STORE_FILES:
        os.replace(build / name, out / name)
    _fsync_dir(out)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
