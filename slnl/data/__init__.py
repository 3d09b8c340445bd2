"""§4.1 data: raw datasets → prepared stores → batches.

``prepare_dataset(name, raw, out)`` (also ``slnl prepare``) turns a download into a store; ``load(store, split,
subset, T)`` opens one split as a torch Dataset; ``GPUResidentLoader`` serves a whole split from the device;
``epoch_order`` is the one shuffle; ``synthetic.ensure_default()`` gives a fresh machine a real dataset.

Attributes are imported lazily so that parser worker processes (which import ``slnl.data.ntu`` etc.) never pay for,
or inherit threads from, torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "load": "store", "Store": "store", "canonical_split": "store",
    "SkeletonDataset": "sampling", "GPUResidentLoader": "sampling", "EpochSampler": "sampling",
    "epoch_order": "sampling", "crop_windows": "sampling", "resize_positions": "sampling",
    "prepare_dataset": "prepare", "DataFormatError": "errors",
}
__all__ = sorted(_LAZY) + ["ntu", "kinetics", "msr3d", "npz", "synthetic", "store", "sampling", "prepare"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in ("ntu", "kinetics", "msr3d", "npz", "synthetic", "store", "sampling", "prepare", "errors"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
