"""Evaluation (§4.1): top-1 / top-5 of ``p_c`` on the test subset's central crops, per-class accuracy, confusion
matrix and per-head losses; during training (every process evaluates positions ``rank::world_size``, counts are
summed) and afterwards from a run directory or a checkpoint file (``evaluate``; ``load_model`` gives the model)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from slnl import data as sdata
from slnl.engine import checkpoint as ckpt
from slnl.engine import distributed as D
from slnl.engine.config import TrainConfig
from slnl.engine.device import resolve_device, resolve_precision
from slnl.engine.fetch import CPUFetcher, to_device
from slnl.engine.metrics import EvalAccumulator
from slnl.engine.rundir import check_store
from slnl.engine.step import build_model, forward, loss_of, no_op
from slnl.utils import resolve_path


@torch.no_grad()
def run_eval(net, fetch, n: int, batch_size: int, device: torch.device, precision: str, loss_fn, num_classes: int,
             info: D.DistInfo, mark_step: Callable[[], None] = no_op) -> EvalAccumulator:
    """Counts over the first ``n`` positions of ``fetch``'s subset, this process's share, summed over processes;
    ``batch_size`` is the global evaluation batch (each process takes its share of it)."""
    net.eval()
    acc = EvalAccumulator(num_classes)
    mine = np.arange(info.rank, n, info.world_size, dtype=np.int64)
    per_process = -(-batch_size // info.world_size)  # the batch is global, like training's; in eval mode a clip's
    for a in range(0, len(mine), per_process):       # prediction does not depend on the clips beside it
        x, y = to_device(*fetch(mine[a : a + per_process]), device)
        mark_step()
        heads = forward(net, x, precision)
        total, parts = loss_fn(heads, y)
        losses = {"total": float(total), **{k: float(v) for k, v in parts.items()}}
        acc.update(heads.c, y, losses)
    t = acc.tensor().to(device)
    D.all_reduce_sum(t, info)
    acc.load_tensor(t.cpu())
    return acc


def checkpoint_file(run: str | os.PathLike) -> Path:
    """The checkpoint of ``run``: a run directory's ``last.pt``, or ``run`` itself when it is a file; a missing one
    is a one-line ``FileNotFoundError`` saying what was expected."""
    run = resolve_path(run)  # relative: to the working directory or $SLNL_HOME, like every path slnl is given
    if run.is_dir():
        if not (run / ckpt.FILE).is_file():
            raise FileNotFoundError(f"{run}: no {ckpt.FILE} here; expected a run directory whose run has written its "
                                    "checkpoint, or a checkpoint file")
        return run / ckpt.FILE
    if run.is_file():
        return run
    note = (f" (a run keeps one checkpoint, {ckpt.FILE}, the final model: the paper reports the last epoch and "
            "nothing is selected on the test split)" if run.name != ckpt.FILE and run.suffix == ".pt" else "")
    raise FileNotFoundError(f"{run}: no such file or directory; expected a run directory or its checkpoint "
                            f"RUN/{ckpt.FILE}{note}")


def load_model(run: str | os.PathLike) -> tuple[torch.nn.Module, TrainConfig, dict[str, Any], Path]:
    """``(model in eval mode on the CPU, its TrainConfig, the checkpoint, the checkpoint's path)`` of a run directory
    (its ``last.pt``) or a checkpoint file. The configuration is the one the checkpoint carries, so a checkpoint
    file is enough. Weights of another model version are a one-line ``CheckpointError``. The store is not checked
    here: ``rundir.check_store`` is, by whoever reads the data."""
    path = checkpoint_file(run)
    state = ckpt.load(path)
    cfg = TrainConfig.from_dict(state["config"], source=f"{path} (config)")
    model = build_model(cfg)
    ckpt.load_weights(model, state, path)
    return model.eval(), cfg, state, path


def evaluate(
    run: str | os.PathLike,
    split: str | None = None,
    subset: str = "test",
    device: str = "auto",
    batch_size: int | None = None,
    data: str | None = None,
) -> dict[str, Any]:
    """Evaluate the final model of a run (a run directory's ``last.pt``, or a checkpoint file) on ``subset`` of
    ``split`` (default: the run's own split) with the central crop. ``data``: where the run's store is now (default:
    where it was); either way its content fingerprint must be the one the run recorded (``StoreChangedError``
    otherwise). Returns {top1, top5, n, loss, per_class_accuracy, confusion, class_names, split, subset,
    checkpoint, epoch, store}. Single process."""
    path = checkpoint_file(run)
    dev = resolve_device(device)
    model, cfg, state, path = load_model(path)
    store = resolve_path(data or cfg.data)  # a model file records its store relative to the home
    check_store(cfg, f"run {path.parent if path.name == ckpt.FILE else path}", store)
    model = model.to(dev)
    split = split or cfg.split
    ds = sdata.load(store, split=split, subset=subset, T=model.config.T, train=False, seed=cfg.seed)
    if ds.num_classes != model.config.num_classes:
        raise ValueError(f"{store}: {ds.num_classes} classes but the model in {path} has "
                         f"{model.config.num_classes}")
    acc = run_eval(model, CPUFetcher(ds, pin=False), len(ds), batch_size or cfg.eval_batch_size or cfg.batch_size,
                   dev, resolve_precision(cfg.precision, dev), loss_of(cfg), ds.num_classes, D.DistInfo())
    out = acc.summary()
    present = {"p": model.fc_p is not None, "v": model.fc_v is not None, "c": True, "total": True}
    out["loss"] = {h: (v if present[h] else None) for h, v in out["loss"].items()}  # no loss for an absent head
    out.update(class_names=ds.class_names, split=split, subset=subset, checkpoint=str(path),
               epoch=state["epoch"], store=str(store))
    return out
