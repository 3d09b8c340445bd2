"""Evaluation metrics (top-1 / top-5 on the concatenated head ``p_c``, §4.1) and the per-epoch metrics files.

Everything is kept as *counts* (a confusion matrix, top-k hit counts, loss sums) so that results from several
processes add up exactly (``all_reduce(SUM)``) and fractions are taken once, at the end.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import Tensor

from slnl.utils import atomic_write_text


def topk_hits(logits: Tensor, target: Tensor, ks: Iterable[int] = (1, 5)) -> dict[int, int]:
    """Number of samples whose label is among the ``k`` highest logits, for each ``k`` (clipped to #classes).

    Ties are broken by ``torch.topk``'s order; with float logits ties have measure zero.
    """
    ks = tuple(ks)
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices  # (B, kmax)
    hit = top.eq(target[:, None])
    return {k: int(hit[:, : min(k, kmax)].any(dim=1).sum()) for k in ks}


@dataclass
class EvalAccumulator:
    """Counts over an evaluation pass: confusion matrix (rows = true class, columns = predicted), top-5 hits,
    summed per-head losses. ``tensor()``/``from_tensor()`` flatten it for one ``all_reduce``."""

    num_classes: int
    confusion: Tensor = field(init=False)
    top5: int = 0
    n: int = 0
    loss_sums: dict[str, float] = field(default_factory=dict)

    HEADS = ("total", "p", "v", "c")

    def __post_init__(self) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        self.loss_sums = {h: 0.0 for h in self.HEADS}

    def update(self, logits_c: Tensor, target: Tensor, losses: dict[str, float] | None = None) -> None:
        logits_c, target = logits_c.detach().float().cpu(), target.detach().cpu()
        pred = logits_c.argmax(dim=1)
        idx = target * self.num_classes + pred
        self.confusion += torch.bincount(idx, minlength=self.num_classes ** 2).view(self.num_classes, -1)
        self.top5 += topk_hits(logits_c, target, (5,))[5]
        self.n += int(target.numel())
        for h, v in (losses or {}).items():
            self.loss_sums[h] += float(v) * int(target.numel())

    def tensor(self) -> Tensor:
        extra = torch.tensor([self.top5, self.n, *[self.loss_sums[h] for h in self.HEADS]], dtype=torch.float64)
        return torch.cat([self.confusion.flatten().double(), extra])

    def load_tensor(self, t: Tensor) -> None:
        c2 = self.num_classes ** 2
        self.confusion = t[:c2].round().long().view(self.num_classes, self.num_classes)
        self.top5, self.n = int(round(float(t[c2]))), int(round(float(t[c2 + 1])))
        self.loss_sums = {h: float(t[c2 + 2 + i]) for i, h in enumerate(self.HEADS)}

    def summary(self) -> dict[str, Any]:
        """top1, top5 (fractions), per-class accuracy (None for a class with no test sample), losses, confusion."""
        n = max(self.n, 1)
        per_class_n = self.confusion.sum(dim=1)
        diag = self.confusion.diagonal()
        per_class = [float(d) / float(c) if c > 0 else None for d, c in zip(diag.tolist(), per_class_n.tolist())]
        return {
            "top1": float(diag.sum()) / n,
            "top5": self.top5 / n,
            "n": self.n,
            "loss": {h: self.loss_sums[h] / n for h in self.HEADS},
            "per_class_accuracy": per_class,
            "confusion": self.confusion.tolist(),
        }


# ---------------------------------------------------------------------------------------------------------------
# Per-epoch metrics files. History is the list of per-epoch dicts kept in the checkpoint; the files are rewritten
# from it atomically every epoch, so they always agree with the checkpoint a resumed run continues from.
# ---------------------------------------------------------------------------------------------------------------
# The per-epoch evaluation is on the *test* split and is named so: the paper (§4.1) has no validation split, and
# nothing (no epoch, no checkpoint) is selected on these numbers; a run reports its final epoch.
TEST = "test"  # key of a history entry's test evaluation: {top1, top5, loss {total, p, v, c}, n}, or null
TEST_TOP1, TEST_TOP5, TEST_LOSS = f"{TEST}_top1", f"{TEST}_top5", f"{TEST}_loss"  # its metrics.csv columns
# Every evaluation is made with both BN statistics (slnl.engine.bnstats): training's running averages and statistics
# recomputed from the training clips; TEST is the one the run's bn_stats names, these keys hold {top1, top5, loss}
# of each, and BN_COLUMNS[mode] their metrics.csv columns (test_top1_running, test_top1_recomputed, ...).
BN_MODES = ("running", "recomputed")
BN_COLUMNS = {mode: (f"{TEST_TOP1}_{mode}", f"{TEST_TOP5}_{mode}") for mode in BN_MODES}
TRAIN_LOSS = "train_loss"  # the training loss L (Eq. 21) per sample; per head: TRAIN_LOSS_HEAD (its three terms)
TRAIN_LOSS_HEAD = {h: f"{TRAIN_LOSS}_{h}" for h in ("p", "v", "c")}

CSV_COLUMNS = (
    "epoch", "lr", TRAIN_LOSS, *TRAIN_LOSS_HEAD.values(), "train_top1", TEST_TOP1, TEST_TOP5, TEST_LOSS,
    "epoch_time_s", "samples_per_s", "steps", *(c for cols in BN_COLUMNS.values() for c in cols),
)


def flat_row(h: dict[str, Any]) -> dict[str, Any]:
    """One history entry → one CSV row (nested train/test dicts flattened, missing values empty)."""
    tr, te = h.get("train", {}), h.get(TEST) or {}
    tl = tr.get("loss", {})
    return {
        "epoch": h["epoch"], "lr": h["lr"],
        TRAIN_LOSS: tl.get("total"), **{col: tl.get(head) for head, col in TRAIN_LOSS_HEAD.items()},
        "train_top1": tr.get("top1"),
        TEST_TOP1: te.get("top1"), TEST_TOP5: te.get("top5"), TEST_LOSS: (te.get("loss") or {}).get("total"),
        "epoch_time_s": h.get("epoch_time_s"), "samples_per_s": h.get("samples_per_s"), "steps": tr.get("steps"),
        **{c: (h.get(f"{TEST}_{mode}") or {}).get(k) for mode, cols in BN_COLUMNS.items()
           for c, k in zip(cols, ("top1", "top5"))},
    }


def write_metrics(run_dir: str | os.PathLike, history: list[dict[str, Any]]) -> None:
    """``metrics.jsonl`` (one history entry per line) and ``metrics.csv`` (``flat_row`` of each), atomically."""
    run_dir = Path(run_dir)
    atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for h in history:
        w.writerow({k: ("" if v is None else v) for k, v in flat_row(h).items()})
    atomic_write_text(run_dir / "metrics.csv", buf.getvalue())
