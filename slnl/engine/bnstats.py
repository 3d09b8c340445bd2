"""Batch-norm statistics for evaluation: recomputed from the trained weights, with dropout inactive.

Why. Every block ends in ``dropout(relu(bn(.) + residual))`` (§4.1: "a dropout with ratio of 0.2 is applied to
each block"), so the next block's BN sees dropped-out activations during training. Its running statistics — the
exponential averages that PyTorch keeps in train mode and uses in eval mode — therefore describe activations scaled
by dropout's 1/(1-p) on the kept units, whose variance is larger than that of the activations the layer receives at
evaluation, when dropout is off: the "variance shift" of Li, Chen, Hu and Yang (CVPR 2019, "Understanding the
disharmony between dropout and batch normalization by variance shift"). What it changes on real data is measured
in ``docs/recipes.md``.

What. ``recompute`` replaces every BN layer's ``running_mean`` / ``running_var`` with the population statistics of
that layer's input over a fixed set of training clips, taken the way evaluation takes them — the central crop, no
dropout — in one forward pass in train mode (each BN normalises by its batch, as in training). For every BN layer
with input ``x`` (channels on dim 1) and ``n`` elements per channel over the whole pass::

    running_mean = Σx / n,    running_var = Σx² / n - running_mean²

(the population variance: what train-mode BN would divide by were the pass one batch). The pass runs at the
evaluation batch size (``TrainConfig.eval_batch_size``): each BN normalises by its batch's statistics, which approach
the population statistics that evaluation uses as the batch grows, so the layers after it see more nearly what they
will see at evaluation. The batch is global: its clips are the same whatever the number of processes (whole batches
dealt out to the processes, or each batch shared out under SyncBatchNorm), and sums are float64, summed over the
processes, so every process ends with the same statistics, those one process would compute. The clips are
``stats_positions``: at most ``STATS_CLIPS`` of the training subset, evenly spaced in store order (no random draw,
so the pass consumes no random numbers and a resumed run stays bit-identical). The cost is one forward pass of those
clips per evaluation: on NTU RGB+D (40 091 training clips, evaluated every epoch) about a tenth of an epoch's clips,
forward only. Weights are untouched; only the BN buffers change. The paper does not say how BN statistics are
estimated; this is PySlowFast's "precise BN" with dropout switched off, the remedy for the shift.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from slnl.engine import distributed as D
from slnl.engine.step import forward, no_op

STATS_CLIPS = 4096  # at most this many training clips per pass: statistics of ~10^7 elements per channel on NTU


def stats_positions(n: int, world_size: int = 1) -> np.ndarray:
    """Positions (in the training subset of ``n`` clips) of the pass: ``min(n, STATS_CLIPS)`` evenly spaced ones,
    cut to a multiple of ``world_size`` so that every process runs the same batches (SyncBatchNorm needs that)."""
    k = min(n, STATS_CLIPS)
    k -= k % world_size
    if k < 1:
        raise ValueError(f"recomputing BN statistics needs at least {world_size} training clip(s), got {n}")
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))[:k]


def _my_batches(positions: np.ndarray, batch_size: int, info: D.DistInfo, synced: bool) -> list[np.ndarray]:
    """This process's batches of the pass, such that every BN layer normalises over the same clips whatever the number
    of processes: ``positions`` cut into batches of ``batch_size`` (the global evaluation batch), dealt out to the
    processes in turn; under SyncBatchNorm (which normalises over all processes' inputs) each batch is shared out
    instead, its size rounded down to a multiple of the number of processes so that every share is equal."""
    W = info.world_size
    if synced and W > 1:
        b = max(W, batch_size - batch_size % W)
        return [positions[a : a + b][info.rank :: W] for a in range(0, len(positions), b)]
    return [positions[a : a + batch_size] for a in range(0, len(positions), batch_size)][info.rank :: W]


def snapshot(model: nn.Module) -> list[torch.Tensor]:
    """Copies of every BN layer's running statistics (mean, variance, batch counter), for ``restore``."""
    return [t.detach().clone() for bn in _bn_layers(model)
            for t in (bn.running_mean, bn.running_var, bn.num_batches_tracked)]


def restore(model: nn.Module, saved: list[torch.Tensor]) -> None:
    """Put back the statistics ``snapshot`` took: a pass on them leaves training's running averages as they were."""
    live = [t for bn in _bn_layers(model) for t in (bn.running_mean, bn.running_var, bn.num_batches_tracked)]
    for t, v in zip(live, saved, strict=True):
        t.copy_(v)


def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recompute(model: nn.Module, fetch: Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]],
              positions: np.ndarray, batch_size: int, device: torch.device, precision: str,
              info: D.DistInfo = D.DistInfo(), mark_step: Callable[[], None] = no_op) -> int:
    """Set every BN layer's running statistics of ``model`` to its input's population statistics over ``fetch``'s
    clips at ``positions`` (this process takes ``positions[rank::world_size]``), dropout inactive. ``fetch`` must
    give evaluation crops. Leaves ``model`` in eval mode; returns the number of BN layers updated."""
    bns = _bn_layers(model)
    if not bns:
        model.eval()
        return 0
    sums: dict[nn.Module, list[torch.Tensor]] = {}

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].detach().to(torch.float64).transpose(0, 1).reshape(args[0].shape[1], -1)
        s = sums.setdefault(module, [0.0, 0.0, 0])
        s[0], s[1], s[2] = s[0] + x.sum(1), s[1] + (x * x).sum(1), s[2] + x.shape[1]

    counters = [bn.num_batches_tracked.clone() for bn in bns]
    hooks = [bn.register_forward_pre_hook(record) for bn in bns]
    model.train()
    for m in model.modules():  # BN normalises by the batch as in training; dropout is off as in evaluation
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()
    try:
        for part in _my_batches(positions, batch_size, info, synced=any(isinstance(b, nn.SyncBatchNorm) for b in bns)):
            x, _ = fetch(part)
            mark_step()
            forward(model, x.to(device, non_blocking=True).float(), precision)
    finally:
        for h in hooks:
            h.remove()
        model.eval()
    for bn, counter in zip(bns, counters):
        if bn not in sums:
            raise RuntimeError(f"BN layer {bn} received no input during the statistics pass")
        s, s2, n = sums[bn]
        total = D.all_reduce_sum(torch.cat([s, s2, s.new_tensor([float(n)])]), info)
        c = bn.num_features
        mean, sq = total[:c] / total[-1], total[c : 2 * c] / total[-1]
        bn.running_mean.copy_(mean.to(bn.running_mean.dtype))
        bn.running_var.copy_((sq - mean * mean).clamp_min(0).to(bn.running_var.dtype))
        bn.num_batches_tracked.copy_(counter)  # the pass is not training
    return len(bns)
