"""Checkpoints: everything a run needs to continue *bit for bit* where it stopped.

A checkpoint (``last.pt``, ``best.pt``) is one ``torch.save`` dict, written atomically (temporary file + rename, so
a SIGKILL during the write leaves the previous file intact):

====================  ==============================================================================================
``format``            ``CHECKPOINT_FORMAT`` (bumped when the layout changes)
``model``             ``state_dict`` of the bare model (no DDP / torch.compile prefixes)
``optimizer``         Adam's state (moments, step counts)
``scheduler``         ExponentialLR state (``last_epoch``)
``scaler``            GradScaler state (fp16 only) or None
``epoch``, ``step``   position: the next optimiser step to run is ``step`` of epoch ``epoch`` (0-based); an
                      end-of-epoch checkpoint has ``step = 0`` of the next epoch
``global_step``       optimiser steps done so far
``per_rank``          one entry per process: RNG states (python, numpy, torch CPU, its CUDA device) and the sums of
                      the unfinished epoch's training metrics
``history``           the per-epoch metrics so far (metrics.jsonl is rewritten from it)
``best``              best test top-1 so far: {epoch, top1, top5} or None
``config``            the resolved TrainConfig as a dict
``world_size``        number of processes that wrote it
====================  ==============================================================================================

Data order needs no state: the shuffle of epoch ``e`` and every random crop are pure functions of
``(seed, epoch, sample index)`` (``slnl.data.epoch_order``, ``dataset.set_epoch``), so the sampler position *is*
``step``.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slnl.utils import atomic_torch_save

CHECKPOINT_FORMAT = 1


def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """Every random state this process draws from: python, numpy, torch CPU and, for a CUDA ``device``, that
    device's generator only (touching the other GPUs would create a CUDA context on each from every process)."""
    cuda = device is not None and device.type == "cuda"
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if cuda else None,
    }


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def save(state: dict[str, Any], path: str | os.PathLike) -> None:
    state = {"format": CHECKPOINT_FORMAT, **state}
    atomic_torch_save(state, path)


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint on the CPU; a clear error for a missing, truncated or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint here")
    try:
        # weights_only=False: the checkpoint holds RNG states (numpy/python tuples); we only load files we wrote.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - re-raised with the file's name
        raise RuntimeError(f"{path}: cannot read checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or "format" not in state:
        raise RuntimeError(f"{path}: not an slnl checkpoint (no 'format' key)")
    if state["format"] != CHECKPOINT_FORMAT:
        raise RuntimeError(f"{path}: checkpoint format {state['format']}, this slnl reads {CHECKPOINT_FORMAT}")
    return state
