"""Evaluation (§4.1): top-1 / top-5 of ``p_c`` on the test subset's central crops, per-class accuracy, confusion
matrix and per-head losses; during training (every process evaluates positions ``rank::world_size``, counts are
summed) and afterwards from a run directory (``evaluate``)."""
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
from slnl.engine.step import build_model, forward, loss_of, no_op


@torch.no_grad()
def run_eval(net, fetch, n: int, batch_size: int, device: torch.device, precision: str, loss_fn, num_classes: int,
             info: D.DistInfo, mark_step: Callable[[], None] = no_op) -> EvalAccumulator:
    """Counts over the first ``n`` positions of ``fetch``'s subset, this process's share, summed over processes."""
    net.eval()
    acc = EvalAccumulator(num_classes)
    mine = np.arange(info.rank, n, info.world_size, dtype=np.int64)
    for a in range(0, len(mine), batch_size):
        x, y = to_device(*fetch(mine[a : a + batch_size]), device)
        mark_step()
        heads = forward(net, x, precision)
        total, parts = loss_fn(heads, y)
        losses = {"total": float(total), **{k: float(v) for k, v in parts.items()}}
        acc.update(heads.c, y, losses)
    t = acc.tensor().to(device)
    D.all_reduce_sum(t, info)
    acc.load_tensor(t.cpu())
    return acc


def evaluate(
    run_dir: str | os.PathLike,
    split: str | None = None,
    subset: str = "test",
    checkpoint: str = "last",
    device: str = "auto",
    batch_size: int | None = None,
    data: str | None = None,
) -> dict[str, Any]:
    """Evaluate a run's ``last.pt`` (the final model, as reported) on ``subset`` of ``split`` (default: the run's
    own split) with the central crop. Returns {top1, top5, n, loss, per_class_accuracy, confusion, class_names,
    split, subset, checkpoint, epoch, store}. Single process."""
    run_dir = Path(run_dir)
    if checkpoint != "last":
        raise ValueError(f"checkpoint: expected 'last' (runs keep only the final model: the paper reports the last "
                         f"epoch, and no epoch is selected on the test split), got {checkpoint!r}")
    cfg = TrainConfig.load(run_dir / "config.yaml")
    state = ckpt.load(run_dir / f"{checkpoint}.pt")
    dev = resolve_device(device)
    model = build_model(cfg).to(dev)
    model.load_state_dict(state["model"])
    store = data or cfg.data
    split = split or cfg.split
    ds = sdata.load(store, split=split, subset=subset, T=model.config.T, train=False, seed=cfg.seed)
    if ds.num_classes != model.config.num_classes:
        raise ValueError(f"{store}: {ds.num_classes} classes but the model in {run_dir} has "
                         f"{model.config.num_classes}")
    acc = run_eval(model, CPUFetcher(ds, pin=False), len(ds), batch_size or cfg.eval_batch_size or cfg.batch_size,
                   dev, resolve_precision(cfg.precision, dev), loss_of(cfg), ds.num_classes, D.DistInfo())
    out = acc.summary()
    present = {"p": model.fc_p is not None, "v": model.fc_v is not None, "c": True, "total": True}
    out["loss"] = {h: (v if present[h] else None) for h, v in out["loss"].items()}  # no loss for an absent head
    out.update(class_names=ds.class_names, split=split, subset=subset, checkpoint=checkpoint,
               epoch=state["epoch"], store=str(store))
    return out
