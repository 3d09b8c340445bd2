"""§4.1 data: sources → prepared stores → batches.

``prepare_dataset(format, raw, out)`` (also ``slnl prepare``) turns a download — or another codebase's files
(CTR-GCN's ``.npz``, PYSKL's ``.pkl``) — into a store; ``load(store, split, subset, T)`` opens one split as a torch
Dataset; ``GPUResidentLoader`` serves a whole split from the device; ``epoch_order`` is the one shuffle;
``fingerprint`` / ``check_fingerprint`` tell whether a store is the one a run used; ``synthetic.ensure_default()``
gives a fresh machine a real dataset. ``DATASETS`` names what a store can hold, ``FORMATS`` what ``prepare`` reads.

Module graph (no cycles): ``errors`` ← ``store`` ← ``pipeline`` ← the format modules (``ntu``, ``kinetics``,
``msr3d``, ``nwucla``, ``sbu``, ``ctrgcn``, ``pyskl``, ``npz``, ``synthetic``; raw text and JSON read through
``readers``) ← ``prepare``; ``sampling`` (torch) ← ``store``.

Attributes are imported lazily so that ``slnl --help`` and parser worker processes never pay for torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Store": "store", "canonical_split": "store", "read_meta": "store", "split_names": "store",
    "fingerprint": "store", "check_fingerprint": "store", "DATASETS": "store",
    "load": "sampling", "SkeletonDataset": "sampling", "GPUResidentLoader": "sampling", "epoch_order": "sampling",
    "crop_windows": "sampling", "resize_positions": "sampling",
    "prepare_dataset": "prepare", "FORMATS": "prepare",
    "DataFormatError": "errors", "StoreError": "errors", "StoreChangedError": "errors", "StoreExistsError": "errors",
}
_MODULES = ("ntu", "kinetics", "msr3d", "nwucla", "sbu", "ctrgcn", "pyskl", "npz", "synthetic", "store", "sampling",
            "pipeline", "prepare", "errors", "readers")
__all__ = sorted(_LAZY) + list(_MODULES)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
