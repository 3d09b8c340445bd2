"""``fit(config) -> Result`` and ``evaluate(run_dir)``: the paper's training protocol (§4.1), resumable, on one CPU,
one GPU or many (torchrun).

One optimiser step (Eq. 20–21): the model gives ``Heads(p, v, c)``; the loss is ``L = L_p + L_v + L_c`` with the
configured base loss (SMFL by default, γ = 2, m = 0.4); Adam (weight decay 5e-4) updates; the learning rate decays by
``lr_decay`` once per epoch. Evaluation predicts with ``p_c`` on the test subset's central crops (ratio 0.95) and
reports top-1 / top-5.

An epoch is ``floor(n_train / batch_size)`` optimiser steps over ``epoch_order(n_train, seed, epoch)``: the last,
incomplete batch is left out (every step has a full batch for BatchNorm and an equal share per process); the
shuffle changes every epoch, so over epochs every sample is used.

Run directory
-------------
``config.yaml``   the resolved TrainConfig (plus ``model_config``: the full ModelConfig that was built)
``metrics.jsonl`` one JSON object per finished epoch (see below); ``metrics.csv`` the same, flattened
``last.pt``       checkpoint to resume from (every epoch, and every ``checkpoint_every_steps`` steps); see
                  ``slnl.engine.checkpoint`` for its contents
``best.pt``       checkpoint of the epoch with the best test top-1 so far
``result.json``   written once, when the run has finished (its presence marks a finished run)

``metrics.jsonl`` entries: ``epoch`` (1-based), ``lr`` (used during the epoch), ``train`` {``loss`` {total, p, v,
c: mean per sample}, ``top1`` (accuracy of ``p_c`` on the training crops), ``samples``, ``steps``}, ``val`` (null on
epochs without evaluation) {``top1``, ``top5``, ``loss`` {total, p, v, c}, ``n``}, ``epoch_time_s``,
``train_time_s``, ``eval_time_s``, ``samples_per_s`` (training samples per second, all processes together).

``result.json`` schema (``RESULT_SCHEMA_VERSION``):

* ``top1``, ``top5``: fractions in [0, 1], test subset, central crop, the **final** model (after the last epoch).
  This is what tables report; the best-epoch numbers below are selected on the test set and therefore optimistic.
* ``best``: {``epoch``, ``top1``, ``top5``} of the epoch with the highest test top-1 (``best.pt``).
* ``last_epoch``, ``epochs``; ``n_test``, ``n_train``; ``split``, ``dataset``, ``store``.
* ``per_class_accuracy``: list over classes (null for a class without test samples); ``class_names``;
  ``confusion``: ``confusion[true][predicted]`` counts of the final evaluation; ``test_loss`` {total, p, v, c}.
* ``metrics``: the per-epoch history (as in metrics.jsonl).
* ``config``: the resolved TrainConfig; ``model_config``: the full ModelConfig; ``num_params``.
* ``timings``: ``train_s`` (sum of epoch training times), ``eval_s``, ``wall_s`` (this process, this session),
  ``samples_per_s`` (mean over epochs).
* ``software``: slnl / python / torch / numpy / CUDA versions; ``git_commit``; ``device`` {type, name, count,
  world_size, precision, data_mode}; ``finished_at`` (UTC ISO time); ``schema``.

Fault injection (tests only): the environment variable ``SLNL_FAULT`` = ``kill@N`` (SIGKILL this process after
optimiser step N), ``term@N`` (send SIGTERM to itself after step N), ``nan@N`` (make step N's loss NaN). N counts
optimiser steps from the start of the run (1-based).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import logging
import os
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from slnl.engine import checkpoint as ckpt
from slnl.engine import distributed as D
from slnl.engine.config import TrainConfig, as_config, config_diff, save_config
from slnl.engine.metrics import EvalAccumulator, write_metrics
from slnl.utils import atomic_write_json

log = logging.getLogger("slnl.engine")

RESULT_SCHEMA_VERSION = 1
HEADS = ("p", "v", "c")
RUN_FILES = ("config.yaml", "metrics.jsonl", "metrics.csv", "result.json", "last.pt", "best.pt")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or ±inf; the last good checkpoint is left as it was."""


class TrainingInterrupted(RuntimeError):
    """SIGTERM / SIGINT arrived; a checkpoint was written and the run can be resumed (``resume=True``)."""

    def __init__(self, message: str, signum: int, run_dir: Path):
        super().__init__(message)
        self.signum, self.run_dir = signum, run_dir


@dataclass
class Result:
    """What ``fit`` returns: final test ``top1`` / ``top5`` (fractions), the run directory, the per-epoch history and
    the full ``result.json`` content."""

    top1: float
    top5: float
    run_dir: Path
    history: list[dict[str, Any]]
    result: dict[str, Any]

    @classmethod
    def from_result(cls, result: dict[str, Any], run_dir: Path) -> "Result":
        return cls(result["top1"], result["top5"], Path(run_dir), result["metrics"], result)


# ====================================================================================================================
# Public API
# ====================================================================================================================
def fit(config: TrainConfig | dict[str, Any]) -> Result:
    """Train one configuration into its run directory and return the result (see the module docstring).

    Re-running a finished configuration with ``resume=True`` returns the stored result without training (or trains
    on if ``epochs`` was raised); without ``resume`` or ``overwrite`` a directory that holds a run is an error, so no
    finished or half-finished work is ever replaced by accident.
    """
    cfg = as_config(config).resolve()
    device = _resolve_device(cfg.device)
    info = D.setup(device.type)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    cfg.precision = _resolve_precision(cfg.precision, device)  # the saved config names the precision actually used
    saved_flags = _set_determinism(cfg.deterministic)
    try:
        return _Trainer(cfg, device, info).run()
    finally:
        _restore_determinism(saved_flags)
        D.teardown(info)


def resume(run_dir: str | os.PathLike, **runtime: Any) -> Result:
    """Continue (or return) the run in ``run_dir`` with its saved configuration; ``runtime`` may change fields that
    do not alter what is trained (device, progress, num_workers, data_mode, compile, epochs to extend, …)."""
    cfg = TrainConfig.load(Path(run_dir) / "config.yaml")
    return fit(cfg.replace(out=str(run_dir), resume=True, **runtime))


def evaluate(
    run_dir: str | os.PathLike,
    split: str | None = None,
    subset: str = "test",
    checkpoint: str = "last",
    device: str = "auto",
    batch_size: int | None = None,
    data: str | None = None,
) -> dict[str, Any]:
    """Evaluate a run's ``last.pt`` (or ``best.pt``) on ``subset`` of ``split`` (default: the run's own split) with
    the central crop. Returns {top1, top5, n, loss, per_class_accuracy, confusion, class_names, split, subset,
    checkpoint, epoch}. Single process."""
    from slnl import data as sdata
    from slnl import losses

    run_dir = Path(run_dir)
    if checkpoint not in ("last", "best"):
        raise ValueError(f"checkpoint: expected 'last' or 'best', got {checkpoint!r}")
    cfg = TrainConfig.load(run_dir / "config.yaml")
    state = ckpt.load(run_dir / f"{checkpoint}.pt")
    dev = _resolve_device(device)
    model = _build_model(cfg).to(dev)
    model.load_state_dict(state["model"])
    store = data or cfg.data
    split = split or cfg.split
    ds = sdata.load(store, split=split, subset=subset, T=model.config.T, train=False, seed=cfg.seed)
    if ds.num_classes != model.config.num_classes:
        raise ValueError(f"{store}: {ds.num_classes} classes but the model in {run_dir} has "
                         f"{model.config.num_classes}")
    precision = _resolve_precision(cfg.precision, dev)
    loss_fn = losses.MultiTaskLoss(losses.make_loss(cfg.loss, gamma=cfg.gamma, m=cfg.m))
    fetch = _CPUFetcher(ds, pin=False)
    acc = _run_eval(model, fetch, len(ds), batch_size or cfg.eval_batch_size or cfg.batch_size, dev, precision,
                    loss_fn, ds.num_classes, D.DistInfo())
    out = acc.summary()
    out.update(class_names=ds.class_names, split=split, subset=subset, checkpoint=checkpoint,
               epoch=state["epoch"], store=str(store))
    return out


# ====================================================================================================================
# Device, precision, determinism
# ====================================================================================================================
def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} but CUDA is not available in this torch build ({torch.__version__})")
    return dev


def _resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


def _autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _set_determinism(on: bool) -> tuple[bool, bool, bool, bool]:
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by deterministic cuBLAS
        torch.use_deterministic_algorithms(True, warn_only=True)  # CUDA ops without a deterministic kernel warn
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    else:
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest kernels
    return saved


def _restore_determinism(saved: tuple[bool, bool, bool, bool]) -> None:
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]


def _seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _build_model(cfg: TrainConfig) -> nn.Module:
    from slnl.models import build

    return build(cfg.preset, **dict(cfg.model))


# ====================================================================================================================
# Batches: the per-process slice of global batch `step` of epoch `epoch` is a pure function of (seed, epoch, step)
# ====================================================================================================================
def _rank_positions(order: np.ndarray, step: int, batch_size: int, info: D.DistInfo) -> np.ndarray:
    """Positions (in the subset) of this process's share of global batch ``step``: ``order[step*B:(step+1)*B]`` cut
    into ``world_size`` consecutive pieces; rank r takes piece r."""
    per_rank = batch_size // info.world_size
    start = step * batch_size + info.rank * per_rank
    return order[start : start + per_rank]


class _CPUFetcher:
    """Batches from ``SkeletonDataset`` items (the dataset reads only the cropped frames from the memory map)."""

    def __init__(self, ds, pin: bool):
        self.ds, self.pin = ds, pin

    def __call__(self, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        items = [self.ds[int(i)] for i in positions]
        x = torch.stack([it[0] for it in items])
        y = torch.tensor([it[1] for it in items], dtype=torch.int64)
        if self.pin:
            x, y = x.pin_memory(), y.pin_memory()
        return x, y

    def batches(self, pos_lists: list[np.ndarray], num_workers: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if num_workers == 0:
            for p in pos_lists:
                yield self(p)
            return
        # Worker processes copy the dataset (with its epoch set) at iterator creation; the batch sampler is the
        # explicit list of positions, and the loader gets its own generator so it never draws from the global torch
        # RNG (which would shift the dropout stream and break bit-exact resumption).
        loader = torch.utils.data.DataLoader(
            self.ds, batch_sampler=[p.tolist() for p in pos_lists], num_workers=num_workers,
            pin_memory=self.pin, generator=torch.Generator().manual_seed(0), persistent_workers=False,
        )
        yield from loader


class _GPUFetcher:
    """Batches gathered from a ``GPUResidentLoader``'s device copy of the split (crop + resize on the device)."""

    def __init__(self, ds, device: torch.device, dtype: torch.dtype):
        from slnl.data import GPUResidentLoader

        self.ds = ds
        self.loader = GPUResidentLoader(ds, batch_size=1, device=device, dtype=dtype, shuffle=False)

    def __call__(self, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        batch = getattr(self.loader, "batch", None)
        if batch is not None:
            return batch(positions)
        # Same arithmetic as GPUResidentLoader.__iter__ for an explicit list of positions.
        from slnl.data.sampling import lerp, resize_positions

        L, ds, T, dev = self.loader, self.ds, self.ds.T, self.loader.device
        start, length = ds.crop(positions)
        i0, i1, w = resize_positions(start, length, T)
        p = torch.from_numpy(np.asarray(positions)).to(dev)[:, None]
        x0 = L.data[p, torch.from_numpy(i0).to(dev)].float()
        x1 = L.data[p, torch.from_numpy(i1).to(dev)].float()
        wt = torch.from_numpy(w).to(dev).view(len(positions), T, 1, 1, 1)
        x = lerp(x0, x1, wt).permute(0, 2, 1, 3, 4).contiguous()
        return x, L.labels[p[:, 0]]

    def batches(self, pos_lists: list[np.ndarray], num_workers: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for p in pos_lists:
            yield self(p)


def _split_bytes(ds, dtype_bytes: int) -> int:
    rows = ds.indices
    t_max = int(np.asarray(ds.num_frames[rows]).max()) if len(rows) else 1
    C, _, V, M = ds.x.shape[1:]
    return len(rows) * t_max * C * V * M * dtype_bytes


# ====================================================================================================================
# Evaluation (every process evaluates positions rank::world; counts are summed)
# ====================================================================================================================
@torch.no_grad()
def _run_eval(model, fetch, n: int, batch_size: int, device, precision, loss_fn, num_classes, info) -> EvalAccumulator:
    model.eval()
    acc = EvalAccumulator(num_classes)
    mine = np.arange(info.rank, n, info.world_size, dtype=np.int64)
    for a in range(0, len(mine), batch_size):
        x, y = fetch(mine[a : a + batch_size])
        x, y = x.to(device, non_blocking=True).float(), y.to(device, non_blocking=True)
        with _autocast(precision, device):
            heads = model(x)
        heads = type(heads)(*[h.float() if h is not None else None for h in heads])
        total, parts = loss_fn(heads, y)
        losses = {"total": float(total), **{k: float(v) for k, v in parts.items()}}
        acc.update(heads.c, y, losses)
    t = acc.tensor().to(device)
    D.all_reduce_sum(t, info)
    acc.load_tensor(t.cpu())
    return acc


# ====================================================================================================================
# The trainer
# ====================================================================================================================
class _Stop:
    """SIGTERM/SIGINT → a flag read at the next step boundary (a checkpoint is written, then the run stops)."""

    def __init__(self) -> None:
        self.signum = 0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_Stop":
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGINT):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def _handler(self, signum, frame) -> None:
        if self.signum:  # a second signal: stop now
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}")
        self.signum = signum
        log.warning("%s received: finishing the current step, writing a checkpoint, stopping",
                    signal.Signals(signum).name)

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def _fault() -> tuple[str, int] | None:
    spec = os.environ.get("SLNL_FAULT")
    if not spec:
        return None
    try:
        kind, n = spec.split("@")
        if kind not in ("kill", "term", "nan"):
            raise ValueError
        return kind, int(n)
    except ValueError:
        raise ValueError(f"SLNL_FAULT={spec!r}: expected kill@N, term@N or nan@N") from None


class _Trainer:
    def __init__(self, cfg: TrainConfig, device: torch.device, info: D.DistInfo):
        self.cfg, self.device, self.info = cfg, device, info
        self.precision = _resolve_precision(cfg.precision, device)
        self.t_start = time.time()

    # ------------------------------------------------------------------------------------------------ setup
    def _open_data(self) -> None:
        from slnl import data as sdata
        from slnl.models import PRESETS

        cfg, info = self.cfg, self.info
        if cfg.data is None:
            # Rank 0 generates the built-in synthetic store first; the others then find it ready.
            if info.is_main:
                store = sdata.synthetic.ensure_default()
            D.barrier(info)
            if not info.is_main:
                store = sdata.synthetic.ensure_default()
            cfg.data = str(Path(store).resolve())
        else:
            cfg.data = str(Path(cfg.data).expanduser().resolve())
        cfg.split = sdata.canonical_split(cfg.split)  # CS → xsub, CV → xview: one name per run in configs and paths
        # Shape-dependent model fields come from the store; a conflicting explicit override is an error.
        T = cfg.model.get("T", PRESETS[cfg.preset].T)
        self.train_ds = sdata.load(cfg.data, split=cfg.split, subset="train", T=T, seed=cfg.seed)
        self.test_ds = sdata.load(cfg.data, split=cfg.split, subset="test", T=T, train=False, seed=cfg.seed)
        _, C, _, V, M = self.train_ds.x.shape
        derived = dict(num_classes=self.train_ds.num_classes, in_channels=int(C), num_joints=int(V),
                       num_persons=int(M))
        for k, v in derived.items():
            if k in cfg.model and cfg.model[k] != v:
                raise ValueError(f"model.{k}={cfg.model[k]!r} does not match the store {cfg.data} ({k}={v})")
            cfg.model[k] = v
        n, B, W = len(self.train_ds), cfg.batch_size, info.world_size
        if B % W or (B // W) % cfg.accum_steps:
            raise ValueError(f"batch_size={B} must be divisible by world_size={W} × accum_steps={cfg.accum_steps} "
                             "(batch_size is the global batch; see slnl.engine.config)")
        if n < B:
            raise ValueError(f"{cfg.data} split {cfg.split!r}: {n} training samples, fewer than one batch "
                             f"(batch_size={B}); lower batch_size")
        if len(self.test_ds) == 0:
            raise ValueError(f"{cfg.data} split {cfg.split!r}: the test subset is empty")
        self.steps_per_epoch = n // B  # drop_last: every step sees a full global batch (BN, equal rank shares)
        if cfg.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.max_steps_per_epoch)

    def _prepare_dir(self) -> str:
        """Decide what to do with the run directory: 'fresh' | 'resume' | 'finished'. Rank 0 decides; all follow."""
        cfg, info = self.cfg, self.info
        self.run_dir = Path(cfg.out) if cfg.out else cfg.default_out()
        cfg.out = str(self.run_dir)
        decision: tuple[str, str | None] = ("fresh", None)
        if info.is_main:
            decision = self._decide()
        decision = D.broadcast_object(decision, info)
        if decision[1] is not None:
            raise FileExistsError(decision[1]) if decision[0] == "exists" else ValueError(decision[1])
        if decision[0] == "fresh" and info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for f in RUN_FILES:
                (self.run_dir / f).unlink(missing_ok=True)
        D.barrier(info)
        return decision[0]

    def _decide(self) -> tuple[str, str | None]:
        cfg, d = self.cfg, self.run_dir
        finished, has_ckpt = (d / "result.json").is_file(), (d / "last.pt").is_file()
        if cfg.overwrite:
            return "fresh", None
        if not (finished or has_ckpt):
            return ("resume" if cfg.resume and (d / "config.yaml").is_file() else "fresh"), None
        if not cfg.resume:
            what = "a finished run (result.json)" if finished else "an unfinished run (last.pt)"
            return "exists", (f"{d} holds {what}; pass resume=True (--resume) to continue or return it, or "
                              "overwrite=True (--overwrite) to start again from scratch")
        if not (d / "config.yaml").is_file():
            return "mismatch", f"{d} has last.pt but no config.yaml; cannot tell what it trained (overwrite=True?)"
        saved = TrainConfig.load(d / "config.yaml")
        diff = config_diff(saved, cfg)
        if diff:
            lines = "; ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items())
            return "mismatch", (f"{d}: cannot resume with a different configuration ({lines}); use another out "
                                "directory or overwrite=True")
        if cfg.epochs < saved.epochs:
            return "mismatch", f"{d}: epochs={cfg.epochs} is fewer than the run's saved epochs={saved.epochs}"
        if finished and cfg.epochs == saved.epochs:
            return "finished", None
        return "resume", None

    def _build(self) -> None:
        from slnl import losses

        cfg, info, device = self.cfg, self.info, self.device
        _seed_everything(cfg.seed)  # identical initial weights on every process (DDP also broadcasts rank 0's)
        self.model = _build_model(cfg).to(device)
        self.model_config = dataclasses.asdict(self.model.config)
        if info.rank > 0:  # independent dropout streams per process; rank 0's equals a single-process run's
            _seed_everything(cfg.seed + 7919 * info.rank)
        net: nn.Module = self.model
        if cfg.sync_bn and info.enabled and device.type == "cuda":
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
            self.model = net
        if cfg.compile:
            net = torch.compile(net)
        if info.enabled:
            net = nn.parallel.DistributedDataParallel(
                net, device_ids=[device.index] if device.type == "cuda" else None)
        self.net = net
        # Evaluation bypasses DDP: processes evaluate different numbers of batches, and DDP's forward would start
        # a buffer broadcast (a collective) on each call.
        self.eval_net = net.module if info.enabled else net
        self.loss_fn = losses.MultiTaskLoss(losses.make_loss(cfg.loss, gamma=cfg.gamma, m=cfg.m))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.ExponentialLR(self.opt, gamma=cfg.lr_decay)
        self.scaler = torch.amp.GradScaler(device.type) if self.precision == "fp16" else None
        self.num_params = sum(p.numel() for p in self.model.parameters())

        # Data path: the whole split on the GPU when asked (or, in auto mode, when it fits comfortably).
        mode = cfg.data_mode
        if mode == "gpu" and device.type != "cuda":
            raise ValueError(f"data_mode='gpu' needs a CUDA device, got device={device}")
        dtype = torch.float32
        if mode == "auto":
            mode = "cpu"
            if device.type == "cuda":
                free, _ = torch.cuda.mem_get_info(device)
                need32 = _split_bytes(self.train_ds, 4) + _split_bytes(self.test_ds, 4)
                if need32 < 0.4 * free:
                    mode = "gpu"
                elif need32 // 2 < 0.4 * free:  # half-precision storage: ~3 significant digits, ample for joints
                    mode, dtype = "gpu", torch.float16
        self.data_mode = mode
        if mode == "gpu":
            self.train_fetch = _GPUFetcher(self.train_ds, device, dtype)
            self.test_fetch = _GPUFetcher(self.test_ds, device, dtype)
        else:
            pin = device.type == "cuda"
            self.train_fetch, self.test_fetch = _CPUFetcher(self.train_ds, pin), _CPUFetcher(self.test_ds, pin)

    # ------------------------------------------------------------------------------------------------ state
    def _rank_state(self) -> dict[str, Any]:
        return {"rng": ckpt.rng_state(self.device), "sums": self.sums.cpu().clone(),
                "train_time": self.train_time, "heads": sorted(self.heads_seen)}

    def _checkpoint(self, path_name: str = "last.pt", extra: dict[str, Any] | None = None) -> None:
        per_rank = D.all_gather_object(self._rank_state(), self.info)  # collective: every process calls this
        if self.info.is_main:
            state = {
                "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "scaler": self.scaler.state_dict() if self.scaler else None,
                "epoch": self.epoch, "step": self.step, "global_step": self.global_step,
                "per_rank": per_rank, "history": self.history, "best": self.best, "last_eval": self.last_eval,
                "config": self.cfg.to_dict(), "world_size": self.info.world_size,
                "saved_at": time.time(), **(extra or {}),
            }
            ckpt.save(state, self.run_dir / path_name)

    def _restore(self) -> None:
        state = None
        if self.info.is_main and (self.run_dir / "last.pt").is_file():
            state = ckpt.load(self.run_dir / "last.pt")
        state = D.broadcast_object(state, self.info)
        if state is None:
            return
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step, self.global_step = state["epoch"], state["step"], state["global_step"]
        self.history, self.best, self.last_eval = state["history"], state["best"], state.get("last_eval")
        per_rank = state["per_rank"]
        if len(per_rank) == self.info.world_size:
            mine = per_rank[self.info.rank]
            ckpt.set_rng_state(mine["rng"], self.device)
            self.sums = mine["sums"].to(self.device)
        else:
            # Different number of processes: data order and crops are unchanged (pure functions of seed, epoch,
            # step); only the dropout streams differ from an uninterrupted run. Partial-epoch sums go to rank 0.
            log.warning("resuming a %d-process checkpoint with %d processes: not bit-identical to an "
                        "uninterrupted run (dropout random streams differ)", len(per_rank), self.info.world_size)
            total = sum(r["sums"] for r in per_rank)
            self.sums = (total if self.info.is_main else torch.zeros_like(total)).to(self.device)
        self.train_time = per_rank[0]["train_time"]
        self.heads_seen = set(per_rank[0]["heads"])
        log.info("resumed %s at epoch %d, step %d (global step %d)", self.run_dir, self.epoch + 1, self.step,
                 self.global_step)

    # ------------------------------------------------------------------------------------------------ run
    def run(self) -> Result:
        cfg, info = self.cfg, self.info
        self._open_data()
        action = self._prepare_dir()
        if action == "finished":
            log.info("%s is finished; returning its result.json", self.run_dir)
            import json

            return Result.from_result(json.loads((self.run_dir / "result.json").read_text()), self.run_dir)
        self._build()
        self.epoch, self.step, self.global_step = 0, 0, 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.last_eval: dict[str, Any] | None = None
        self.sums = torch.zeros(6, dtype=torch.float64, device=self.device)  # loss total,p,v,c; correct; n
        self.train_time, self.eval_time_total = 0.0, 0.0
        self.heads_seen: set[str] = set()
        if action == "resume":
            self._restore()
        if info.is_main:
            save_config(cfg, self.run_dir / "config.yaml", self.model_config)
            write_metrics(self.run_dir, self.history)  # agrees with the checkpoint we continue from
        self.fault = _fault()
        with _Stop() as stop:
            self.stop = stop
            while self.epoch < cfg.epochs:
                self._train_epoch()
        return self._finish()

    def _progress(self, total: int, initial: int):
        show = self.cfg.progress if self.cfg.progress is not None else sys.stderr.isatty()
        if not (show and self.info.is_main):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, unit="sample", unit_scale=True, dynamic_ncols=True, leave=False,
                    desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}")

    def _train_epoch(self) -> None:
        cfg, info, device = self.cfg, self.info, self.device
        B, S = cfg.batch_size, self.steps_per_epoch
        micro = B // info.world_size // cfg.accum_steps
        self.train_ds.set_epoch(self.epoch)
        from slnl.data import epoch_order

        order = epoch_order(len(self.train_ds), cfg.seed, self.epoch)
        pos_lists = [_rank_positions(order, s, B, info) for s in range(self.step, S)]
        lr = self.opt.param_groups[0]["lr"]
        bar = self._progress(S * B, self.step * B)
        t0 = time.perf_counter()
        t_mark = t0
        self.net.train()
        for x, y in self.train_fetch.batches(pos_lists, cfg.num_workers):
            x, y = x.to(device, non_blocking=True).float(), y.to(device, non_blocking=True)
            self.opt.zero_grad(set_to_none=True)
            step_sums = torch.zeros(6, dtype=torch.float64, device=device)
            for j in range(cfg.accum_steps):
                xj, yj = x[j * micro : (j + 1) * micro], y[j * micro : (j + 1) * micro]
                sync = j == cfg.accum_steps - 1
                with (self.net.no_sync() if info.enabled and not sync else contextlib.nullcontext()):
                    with _autocast(self.precision, device):
                        heads = self.net(xj)
                    heads = type(heads)(*[h.float() if h is not None else None for h in heads])
                    total, parts = self.loss_fn(heads, yj)
                    if self.fault and self.fault[0] == "nan" and self.global_step + 1 == self.fault[1]:
                        total = total * float("nan")
                    loss = total / cfg.accum_steps
                    (self.scaler.scale(loss) if self.scaler else loss).backward()
                self.heads_seen.update(parts)
                nj = float(len(yj))
                step_sums[0] += total.detach().double() * nj
                for k, h in enumerate(HEADS):
                    if h in parts:
                        step_sums[1 + k] += parts[h].detach().double() * nj
                step_sums[4] += (heads.c.detach().argmax(1) == yj).sum()
                step_sums[5] += nj
            # One small collective per step: did any process see a non-finite loss or a stop signal?
            flags = torch.stack([(~torch.isfinite(step_sums[0])).double(),
                                 torch.tensor(float(self.stop.signum > 0), dtype=torch.float64, device=device)])
            bad, stop = D.all_reduce_max(flags, info).tolist()
            if bad:
                self._nonfinite(step_sums)
            if self.scaler:
                self.scaler.step(self.opt)
                self.scaler.update()
            else:
                self.opt.step()
            self.sums += step_sums
            self.step += 1
            self.global_step += 1
            now = time.perf_counter()
            self.train_time += now - t_mark
            t_mark = now
            if bar is not None:
                bar.update(B)
                bar.set_postfix(loss=f"{float(step_sums[0] / step_sums[5]):.4f}", refresh=False)
            if stop:
                self._interrupt(bar)
            if cfg.checkpoint_every_steps and self.global_step % cfg.checkpoint_every_steps == 0 and self.step < S:
                self._checkpoint()
            self._maybe_fault()
            t_mark = time.perf_counter()  # checkpoint time is not training time
        if bar is not None:
            bar.close()
        self._end_epoch(lr, time.perf_counter() - t0)

    def _maybe_fault(self) -> None:
        if not self.fault or self.global_step != self.fault[1]:
            return
        kind = self.fault[0]
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif kind == "term":
            os.kill(os.getpid(), signal.SIGTERM)

    def _nonfinite(self, step_sums: torch.Tensor) -> None:
        value = float(step_sums[0] / step_sums[5])
        msg = (f"non-finite training loss ({value}) at epoch {self.epoch + 1}, step {self.step + 1} "
               f"(global step {self.global_step + 1}) of {self.run_dir}; the optimiser step was not taken and the "
               f"last good checkpoint {self.run_dir / 'last.pt'} is kept. Try a lower lr or precision='fp32'.")
        log.error(msg)
        D.barrier(self.info)
        raise NonFiniteLossError(msg)

    def _interrupt(self, bar) -> None:
        if bar is not None:
            bar.close()
        self._checkpoint()
        D.barrier(self.info)  # no process exits before rank 0 has written the checkpoint
        signum = self.stop.signum or signal.SIGTERM
        msg = (f"{signal.Signals(signum).name}: stopped at epoch {self.epoch + 1}, step {self.step} of "
               f"{self.steps_per_epoch}; checkpoint written to {self.run_dir / 'last.pt'} (resume with resume=True)")
        log.warning(msg)
        raise TrainingInterrupted(msg, int(signum), self.run_dir)

    def _end_epoch(self, lr: float, wall: float) -> None:
        cfg, info = self.cfg, self.info
        sums = D.all_reduce_sum(self.sums.clone(), info).cpu()
        n = max(float(sums[5]), 1.0)
        train = {
            "loss": {"total": float(sums[0]) / n,
                     **{h: (float(sums[1 + k]) / n if h in self.heads_seen else None) for k, h in enumerate(HEADS)}},
            "top1": float(sums[4]) / n, "samples": int(sums[5]), "steps": self.steps_per_epoch,
        }
        with warnings.catch_warnings():
            # A run resumed from a checkpoint written after the epoch's last step calls sched.step() with no
            # optimizer.step() in this process; torch warns about an order that is correct here.
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
            self.sched.step()
        val, eval_time = None, 0.0
        last = self.epoch + 1 == cfg.epochs
        if (self.epoch + 1) % cfg.eval_every == 0 or last:
            t = time.perf_counter()
            D.broadcast_buffers(self.model, info)  # every process evaluates rank 0's BN statistics
            acc = _run_eval(self.eval_net, self.test_fetch, len(self.test_ds), cfg.eval_batch_size, self.device,
                            self.precision, self.loss_fn, self.test_ds.num_classes, info)
            eval_time = time.perf_counter() - t
            summary = acc.summary()
            summary["loss"] = {h: (v if h == "total" or h in self.heads_seen else None)
                               for h, v in summary["loss"].items()}
            self.last_eval = {**summary, "epoch": self.epoch + 1}
            val = {k: summary[k] for k in ("top1", "top5", "loss", "n")}
        entry = {
            "epoch": self.epoch + 1, "lr": lr, "train": train, "val": val,
            "epoch_time_s": self.train_time + eval_time, "train_time_s": self.train_time, "eval_time_s": eval_time,
            "samples_per_s": train["samples"] / self.train_time if self.train_time > 0 else None,
        }
        self.history.append(entry)
        self.eval_time_total += eval_time
        improved = val is not None and (self.best is None or val["top1"] > self.best["top1"])
        if improved:
            self.best = {"epoch": self.epoch + 1, "top1": val["top1"], "top5": val["top5"]}
        # Position: epoch done, next is step 0 of the next epoch; per-epoch sums start again.
        self.epoch, self.step = self.epoch + 1, 0
        self.sums.zero_()
        self.train_time = 0.0
        if improved:
            self._checkpoint("best.pt")
        self._checkpoint("last.pt")
        if info.is_main:
            write_metrics(self.run_dir, self.history)
        v = f"test top-1 {val['top1']:.4f} top-5 {val['top5']:.4f}" if val else "no eval"
        log.info("epoch %d/%d  loss %.4f  train top-1 %.4f  %s  lr %.3g  %.1fs  %.0f samples/s", entry["epoch"],
                 cfg.epochs, train["loss"]["total"], train["top1"], v, lr, entry["epoch_time_s"],
                 entry["samples_per_s"] or 0.0)
        if self.stop.signum:
            self._interrupt(None)

    def _finish(self) -> Result:
        from slnl.utils import git_commit, software_versions

        cfg, info = self.cfg, self.info
        ev = self.last_eval
        if ev is None or ev["epoch"] != cfg.epochs:
            raise RuntimeError(f"{self.run_dir}: the run ended without a final evaluation (internal error)")
        dev = self.device
        result = {
            "schema": RESULT_SCHEMA_VERSION,
            "top1": ev["top1"], "top5": ev["top5"],
            "best": self.best, "last_epoch": cfg.epochs, "epochs": cfg.epochs,
            "n_test": ev["n"], "n_train": len(self.train_ds), "split": cfg.split,
            "dataset": self.train_ds.meta.get("dataset"), "store": cfg.data,
            "per_class_accuracy": ev["per_class_accuracy"], "class_names": list(self.train_ds.class_names),
            "confusion": ev["confusion"], "test_loss": ev["loss"],
            "metrics": self.history,
            "config": cfg.to_dict(), "model_config": _plain(self.model_config), "num_params": self.num_params,
            "timings": {
                "train_s": sum(h["train_time_s"] for h in self.history),
                "eval_s": sum(h["eval_time_s"] for h in self.history),
                "wall_s": time.time() - self.t_start,
                "samples_per_s": float(np.mean([h["samples_per_s"] for h in self.history if h["samples_per_s"]]))
                if self.history else None,
            },
            "software": software_versions(), "git_commit": git_commit(),
            "device": {
                "type": dev.type,
                "name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_name(),
                "count": info.world_size, "world_size": info.world_size, "precision": self.precision,
                "data_mode": self.data_mode, "torch_threads": torch.get_num_threads(),
            },
            "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        if info.is_main:
            atomic_write_json(self.run_dir / "result.json", result)
        D.barrier(info)
        return Result.from_result(result, self.run_dir)


def _plain(obj: Any) -> Any:
    from slnl.engine.config import _plain as p

    return p(obj)


def _cpu_name() -> str:
    import platform

    return platform.processor() or platform.machine()
