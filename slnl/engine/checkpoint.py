"""Checkpoints: everything a run needs to continue *bit for bit* where it stopped, in a file that loading cannot
turn into running code.

A run keeps one checkpoint, ``last.pt`` (``FILE``): the model of the final epoch once the run has finished (the paper
reports the last epoch; no checkpoint is selected on the test split). It is one ``torch.save`` dict, written
atomically (temporary file + rename, so a SIGKILL during the write leaves the previous file intact):

====================  ==============================================================================================
``format``            ``CHECKPOINT_FORMAT`` (bumped when the layout changes)
``model``             ``state_dict`` of the bare model (no DDP / torch.compile prefixes)
``optimizer``         Adam's state (moments, step counts)
``scheduler``         ExponentialLR state (``last_epoch``)
``scaler``            GradScaler state (fp16 only) or None
``epoch``, ``step``   position: the next optimiser step to run is ``step`` of epoch ``epoch`` (0-based); an
                      end-of-epoch checkpoint has ``step = 0`` of the next epoch
``global_step``       optimiser steps done so far
``per_rank``          one entry per process: RNG states (``rng_state``) and the sums of the unfinished epoch's
                      training metrics
``history``           the per-epoch metrics so far (metrics.jsonl is rewritten from it)
``last_eval``         the latest test evaluation (counts, confusion matrix), or None
``config``            the resolved TrainConfig as a dict; its ``store_fingerprint`` names the data trained on
``world_size``        number of processes that wrote it
``git_commit``        the commit of the slnl that wrote it (named when a later model cannot load it)
====================  ==============================================================================================

Only tensors and plain values (dict, list, tuple, str, int, float, bool, None) are stored — ``save`` refuses anything
else — so that ``load`` reads with ``torch.load(weights_only=True)``: a file that needs arbitrary unpickling (a
tampered or foreign file, whose pickled objects could call ``os.system``) is refused before any of it runs. RNG
states are stored in that form too: Python's ``random.getstate()`` as ``[version, int64 tensor, gauss_next]`` and
NumPy's legacy state as ``(kind, int64 tensor, pos, has_gauss, cached_gaussian)`` — the Mersenne Twister's 32-bit
words held exactly in int64 (a uint32 tensor does not survive the pickling ``all_gather_object`` uses between
processes in this torch).

Data order needs no state: the shuffle of epoch ``e`` and every random crop are pure functions of
``(seed, epoch, sample index)`` (``slnl.data.epoch_order``, ``dataset.set_epoch``), so the sampler position *is*
``step``.
"""
from __future__ import annotations

import os
import pickle
import random
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from slnl.utils import atomic_torch_save

CHECKPOINT_FORMAT = 2  # 2: tensors and plain values only (read with weights_only=True); RNG states as tensors
FILE = "last.pt"  # a run's one checkpoint: resumed from, evaluated, analysed
_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


class CheckpointError(ValueError):
    """A checkpoint file that this slnl will not or cannot use; the message is one line naming the file and saying
    what to do. A ``ValueError``: the file given is an unacceptable argument (the command line prints one line)."""


def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """Every random state this process draws from — python, numpy, torch CPU and, for a CUDA ``device``, that
    device's generator only (touching the other GPUs would create a CUDA context on each from every process) — as
    tensors and plain values (module docstring)."""
    cuda = device is not None and device.type == "cuda"
    version, mt, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": [version, torch.tensor(mt, dtype=torch.int64), gauss_next],
        "numpy": (str(kind), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                  float(cached)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if cuda else None,
    }


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    version, mt, gauss_next = state["python"]
    random.setstate((int(version), tuple(int(v) for v in mt.tolist()), gauss_next))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _check_plain(obj: Any, where: str = "state") -> None:
    """Raise TypeError unless ``obj`` is made of tensors and plain values only (what ``weights_only`` loads)."""
    if isinstance(obj, (dict, OrderedDict)):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"checkpoint {where}: key {k!r} of type {type(k).__name__}; keys must be str or int")
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(obj, _PLAIN):
        raise TypeError(f"checkpoint {where}: {type(obj).__module__}.{type(obj).__name__} is not a tensor or a plain "
                        "value; a checkpoint holds only those, so that it loads with weights_only=True")


def save(state: dict[str, Any], path: str | os.PathLike) -> None:
    state = {"format": CHECKPOINT_FORMAT, **state}
    _check_plain(state)
    atomic_torch_save(state, path)


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint on the CPU without running code from it; ``CheckpointError`` (one line naming the file)
    for a file that needs arbitrary unpickling, a truncated or foreign file, or another checkpoint format;
    ``FileNotFoundError`` for a missing one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint here")
    try:
        # weights_only=True: torch's restricted unpickler builds tensors and plain containers only, and refuses
        # every other global (os.system included) before calling it. An explicit True is not overridden by
        # TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f" (it refers to {found.group(1)})" if found else ""
        raise CheckpointError(
            f"{path}: refused: loading it would need arbitrary unpickling{what}, which can run code; an slnl "
            f"checkpoint (format {CHECKPOINT_FORMAT}) holds only tensors and plain values. Not loaded: it is foreign, "
            "tampered with, or from an earlier slnl — train the run again") from None
    except Exception as e:  # noqa: BLE001 - truncated / not a torch file: re-raised as one line naming the file
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(e).__name__}: {_first_line(e)})") from None
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"{path}: not an slnl checkpoint (no 'format' key)")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {state['format']}, this slnl reads {CHECKPOINT_FORMAT}; "
                              "train the run again")
    return state


# What a model file keeps of a checkpoint: enough to evaluate and predict (slnl eval / predict, slnl.load_model),
# not to resume training (no optimiser, RNG or history: a third of last.pt's size).
MODEL_KEYS = ("format", "model", "config", "epoch", "global_step", "world_size", "git_commit")


def export_model(state: dict[str, Any], path: str | os.PathLike, class_names: list[str] | None = None,
                 **config_changes: Any) -> None:
    """Write the model of a checkpoint ``state`` alone (``MODEL_KEYS``, ``class_names`` when given) to ``path``,
    atomically, in the checkpoint format (it loads as one, with ``weights_only=True``). ``config_changes``: fields of
    the stored configuration to rewrite, e.g. paths made relative for a file that is committed."""
    out = {k: state[k] for k in MODEL_KEYS if k in state}
    out["config"] = {**state["config"], **config_changes}
    if class_names is not None:
        out["class_names"] = [str(n) for n in class_names]
    save(out, path)


def load_weights(model: nn.Module, state: dict[str, Any], path: str | os.PathLike) -> None:
    """``model.load_state_dict(state["model"])``, strict; weights of another model version (missing or unexpected
    parameters, other shapes) are one ``CheckpointError`` line naming the file and what to do."""
    weights, own = state["model"], model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    shapes = [f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in weights and tuple(weights[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = [f"{label} {_few(names)}" for label, names in
                 (("missing", missing), ("unexpected", unexpected), ("other shapes:", shapes)) if names]
        commit = state.get("git_commit")
        raise CheckpointError(
            f"{path}: written by an incompatible version of the model ({'; '.join(parts)}); this slnl cannot use "
            "these weights: train the run again (slnl train ... --overwrite), or use the slnl that wrote it"
            + (f" (commit {commit[:12]})" if commit else ""))
    model.load_state_dict(weights)


def _few(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""
