"""The training step — the only one. ``fit()``'s loop, ``slnl bench`` and the device checks all call it, so a
benchmark measures exactly the step a run takes, and a change here (fused Adam, ``sync_every``, NHWC) reaches all.

``build(config, device)`` makes what a ``TrainConfig`` trains (§4.1): the model (``slnl.models.build`` of the
preset with the config's overrides, initial weights from ``manual_seed(seed)``), its loss (the configured base loss
on each of the three heads, summed: Eq. 20–21; SMFL with γ = 2, m = 0.4 by default), Adam with weight decay, the
per-epoch exponential learning-rate decay, and how the model is called (``torch.compile``, DDP, a loss scaler for
fp16).

``TrainStep``: one optimiser step on one (per-process) batch ``x: (B, C, T, V, M)``, labels ``y: (B,)``:

1. zero the gradients; ``gradients()``: for each of ``accum_steps`` micro-batches, the forward under autocast
   (``forward()``: the heads in float32), the loss, and its backward scaled by ``1/accum_steps`` (DDP averages over
   processes on the last micro-batch only);
2. the non-finite check and the optimiser step. A step is non-finite when its loss or any gradient holds a NaN or
   ±inf (a finite loss can back-propagate a NaN; under fp16 the gradients are the loss scaler's to check, and its
   skipped overflow steps are routine). It is handled in one of two ways:

   * ``sync_every = 1`` (default): one small all-reduce per step — was any process's step non-finite, or was it
     asked to stop? — read on the host; a non-finite step is not taken (``StepResult.nonfinite``; ``fit`` stops with
     ``NonFiniteLossError``).
   * ``sync_every = N > 1``: no host-device synchronisation inside the N steps. A non-finite step is still never
     applied — fused Adam skips it on the device (its ``found_inf`` input, the protocol ``torch.amp.GradScaler``
     uses) — and the first such step is remembered on the device; ``check()``, the one synchronisation of N steps,
     returns it, by its number, for ``fit`` to raise.

``StepResult.sums`` are the step's float64 sums (``SUMS``: per-sample losses of the total and of each head, correct
predictions of ``p_c``, samples; zero for a skipped step), which the loop adds up over an epoch.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor, nn

from slnl import losses, models
from slnl.engine import distributed as D
from slnl.engine.config import TrainConfig
from slnl.engine.device import autocast, resolve_precision, seed_everything

HEADS = ("p", "v", "c")
SUMS = ("loss", "loss_p", "loss_v", "loss_c", "correct", "n")  # the float64 sums of a step, in this order


class NonFiniteLossError(FloatingPointError):
    """The training loss, a gradient or the weights became NaN or ±inf; the last good checkpoint is left as it was."""


def no_op() -> None:
    pass


def nonfinite_grads(params: list[Tensor], device: torch.device) -> Tensor:
    """Whether any of ``params``' gradients holds a NaN or ±inf, as a bool tensor on ``device`` (no host
    synchronisation). Each gradient's max-norm is NaN or inf exactly when it holds one (NaN propagates through the
    max; unlike the 2-norm it cannot overflow on a finite gradient)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), dtype=torch.bool, device=device)
    return ~torch.stack(torch._foreach_norm(grads, float("inf"))).isfinite().all()


def first_nonfinite(model: nn.Module) -> str | None:
    """The name of the model's first parameter or buffer that holds a NaN or ±inf, else None (one host
    synchronisation for the whole model)."""
    named = [(name, v) for name, v in [*model.named_parameters(), *model.named_buffers()] if v.is_floating_point()]
    if not named:
        return None
    finite = torch.stack([torch.isfinite(v).all() for _, v in named]).tolist()
    return next((name for (name, _), ok in zip(named, finite) if not ok), None)


def _reported_loss(loss: Tensor) -> Tensor:
    """The loss a non-finite step reports: this process's loss where it is non-finite, else NaN (the loss was finite:
    a gradient, or another process's loss, was not)."""
    return torch.where(torch.isfinite(loss), float("nan"), loss)


# ====================================================================================================================
# What a TrainConfig trains
# ====================================================================================================================
def build_model(cfg: TrainConfig) -> nn.Module:
    return models.build(cfg.preset, **dict(cfg.model))


def check_model(cfg: TrainConfig) -> None:
    """Refuse, before any work, a ``cfg.model`` that ``build_model`` would reject: an unknown ``ModelConfig`` field
    (named, with the valid ones) or a value outside its vocabulary (``transform``, ``attention``, ``affinity``, …).
    The models' own rules decide (``slnl.models.build``, ``ModelConfig.validate``): the model is built on the
    ``meta`` device, which allocates nothing. Shape fields the store decides later keep the preset's values here."""
    fields = {f.name for f in dataclasses.fields(models.ModelConfig)}
    unknown = sorted(set(cfg.model) - fields)
    if unknown:
        raise ValueError(f"model: unknown ModelConfig field(s) {', '.join(map(repr, unknown))}; the fields are "
                         f"{', '.join(sorted(fields))}")
    try:
        with torch.device("meta"):
            build_model(cfg)
    except TypeError as e:  # a value of the wrong kind (e.g. channels: "wide"): one line, like ValueError's
        raise ValueError(f"model: {e}") from None


def loss_of(cfg: TrainConfig) -> losses.MultiTaskLoss:
    """``L = L_p + L_v + L_c`` with the configured base loss (Eq. 21)."""
    return losses.MultiTaskLoss(losses.make_loss(cfg.loss, gamma=cfg.gamma, m=cfg.m))


@dataclasses.dataclass
class Training:
    """What ``build`` makes of a (resolved) ``TrainConfig``."""

    model: nn.Module  # the bare model: parameters, state_dict, checkpoints
    net: nn.Module  # what the step calls: the model, compiled and/or wrapped in DDP as configured
    eval_net: nn.Module  # what evaluation calls: ``net`` without DDP
    loss_fn: losses.MultiTaskLoss
    opt: torch.optim.Adam
    sched: torch.optim.lr_scheduler.ExponentialLR
    scaler: torch.amp.GradScaler | None  # fp16 only
    device: torch.device
    precision: str  # fp32 | bf16 | fp16 (``auto`` resolved for the device)
    info: D.DistInfo
    mark_step: Callable[[], None]  # called before every forward (CUDA graphs need it; else a no-op)

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def build(cfg: TrainConfig, device: torch.device, info: D.DistInfo = D.DistInfo()) -> Training:
    """Model, loss, optimiser, scheduler and execution wrappers of a resolved ``cfg`` on ``device``."""
    seed_everything(cfg.seed)  # identical initial weights on every process (DDP also broadcasts rank 0's)
    model = build_model(cfg).to(device)
    if info.rank > 0:  # independent dropout streams per process; rank 0's equals a single-process run's
        seed_everything(cfg.seed + 7919 * info.rank)
    net: nn.Module = model
    if cfg.sync_bn and info.enabled and device.type == "cuda":
        net = model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if cfg.compile:
        net = torch.compile(net, mode=None if cfg.compile_mode == "default" else cfg.compile_mode)
    # CUDA graphs replay into fixed output buffers: each forward must say where the previous step ended.
    mark_step = (torch.compiler.cudagraph_mark_step_begin
                 if cfg.compile and cfg.compile_mode == "reduce-overhead" else no_op)
    # Evaluation bypasses DDP: processes evaluate different numbers of batches, and DDP's forward would start a
    # buffer broadcast (a collective) on each call.
    eval_net = net
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    # Fused Adam: one kernel per update; with sync_every > 1 it is also what skips a non-finite step on the device
    # (its found_inf input), without asking the host.
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                           fused=(cfg.fused_adam or cfg.sync_every > 1) or None)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)
    precision = resolve_precision(cfg.precision, device)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    return Training(model, net, eval_net, loss_of(cfg), opt, sched, scaler, device, precision, info, mark_step)


# ====================================================================================================================
# The step
# ====================================================================================================================
def forward(net: nn.Module, x: Tensor, precision: str) -> Any:
    """``net(x)`` under the precision's autocast; the heads come back in float32 (the loss is computed in float32
    whatever the forward's precision), the heads of a float64 model (the device check's reference) unchanged."""
    with autocast(precision, x.device):
        heads = net(x)
    return type(heads)(*[h.float() if h is not None and h.dtype in (torch.bfloat16, torch.float16) else h
                         for h in heads])


def gradients(net: nn.Module, loss_fn: Callable, x: Tensor, y: Tensor, precision: str, *, accum_steps: int = 1,
              scaler: torch.amp.GradScaler | None = None, mark_step: Callable[[], None] = no_op,
              no_sync: Callable[[], Any] | None = None, poison: bool = False) -> tuple[Tensor, set[str]]:
    """Forward, loss and backward of one batch in ``accum_steps`` equal micro-batches, adding to ``.grad`` (the
    caller zeroes it). Returns the ``SUMS`` (float64, on ``x``'s device) and the names of the heads that have a
    loss. ``no_sync``: DDP's context that defers the gradient all-reduce to the last micro-batch. ``poison``: make
    the loss NaN (fault injection for tests, ``SLNL_FAULT=nan@N``)."""
    micro = len(y) // accum_steps
    sums = torch.zeros(len(SUMS), dtype=torch.float64, device=x.device)
    seen: set[str] = set()
    for j in range(accum_steps):
        xj, yj = x[j * micro : (j + 1) * micro], y[j * micro : (j + 1) * micro]
        last = j == accum_steps - 1
        mark_step()
        with (no_sync() if no_sync is not None and not last else contextlib.nullcontext()):
            heads = forward(net, xj, precision)
            total, parts = loss_fn(heads, yj)
            if poison:
                total = total * float("nan")
            loss = total / accum_steps
            (scaler.scale(loss) if scaler else loss).backward()
        seen.update(parts)
        nj = float(len(yj))
        sums[0] += total.detach().double() * nj
        for k, h in enumerate(HEADS):
            if h in parts:
                sums[1 + k] += parts[h].detach().double() * nj
        sums[4] += (heads.c.detach().argmax(1) == yj).sum()
        sums[5] += nj
    return sums, seen


class StepResult(NamedTuple):
    sums: Tensor  # SUMS of the step (float64, on the device); zero for a step skipped on the device
    heads: set[str]  # heads with a loss (a single-stream row has no p or v head)
    stop: bool  # a process was asked to stop (SIGTERM / SIGINT): act at this step boundary
    nonfinite: Tensor | None  # sync_every = 1: the step was non-finite and NOT taken; its ``_reported_loss``

    @property
    def loss(self) -> Tensor:
        return self.sums[0] / self.sums[5]


class TrainStep:
    """``step(x, y, global_step)``: one optimiser step (see the module docstring); ``check()`` is the
    synchronisation point of ``sync_every > 1``; ``new_epoch()`` forgets the epoch's first non-finite step."""

    def __init__(self, training: Training, accum_steps: int = 1, sync_every: int = 1):
        self.t = training
        self.accum_steps = accum_steps
        self.deferred = sync_every > 1
        self.no_sync = training.net.no_sync if training.info.enabled else None
        self.params = [p for group in training.opt.param_groups for p in group["params"]]
        self.new_epoch()

    def new_epoch(self) -> None:
        dev = self.t.device
        self.first_bad = torch.zeros((), dtype=torch.int64, device=dev)  # global step number, 0 = none yet
        self.first_bad_loss = torch.zeros((), dtype=torch.float64, device=dev)

    def __call__(self, x: Tensor, y: Tensor, global_step: int, stop: bool = False,
                 poison: bool = False) -> StepResult:
        """Step number ``global_step`` (1-based, counted from the start of the run) on ``x``, ``y`` (on the
        device); ``stop``: this process has been asked to stop."""
        t = self.t
        t.opt.zero_grad(set_to_none=True)
        sums, heads = gradients(t.net, t.loss_fn, x, y, t.precision, accum_steps=self.accum_steps, scaler=t.scaler,
                                mark_step=t.mark_step, no_sync=self.no_sync, poison=poison)
        bad = ~torch.isfinite(sums[0])  # on the device: a non-finite loss or gradient (the module docstring)
        if t.scaler is None:
            bad = bad | nonfinite_grads(self.params, t.device)
        if self.deferred:
            if t.info.enabled:  # every process skips the step if any saw it non-finite (a device collective)
                bad = D.all_reduce_max(bad.double(), t.info) > 0
            t.opt.found_inf = bad.float()  # read by fused Adam's step: 1 = leave everything unchanged
            t.opt.step()
            new_bad = (self.first_bad == 0) & bad
            self.first_bad = torch.where(new_bad, global_step, self.first_bad)
            self.first_bad_loss = torch.where(new_bad, _reported_loss(sums[0] / sums[5]), self.first_bad_loss)
            return StepResult(torch.where(bad, torch.zeros_like(sums), sums), heads, stop and not t.info.enabled,
                              None)
        # One small collective per step: was any process's step non-finite, or was one asked to stop?
        flags = torch.stack([bad.double(), torch.tensor(float(stop), dtype=torch.float64, device=t.device)])
        bad_any, stop_any = D.all_reduce_max(flags, t.info).tolist()
        if bad_any:
            return StepResult(sums, heads, bool(stop_any), _reported_loss(sums[0] / sums[5]))
        if t.scaler:
            t.scaler.step(t.opt)
            t.scaler.update()
        else:
            t.opt.step()
        return StepResult(sums, heads, bool(stop_any), None)

    def check(self, stop: bool) -> tuple[int, Tensor, bool]:
        """``sync_every > 1``: the one host-device synchronisation of N steps. Returns ``(number of the epoch's
        first non-finite step or 0, this process's loss at it, whether any process was asked to stop)``; processes
        agree on the step (it was all-reduced when it happened)."""
        flags = torch.stack([self.first_bad.double(),
                             torch.tensor(float(stop), dtype=torch.float64, device=self.t.device)])
        bad_step, stop_any = D.all_reduce_max(flags, self.t.info).tolist()
        return int(bad_step), self.first_bad_loss, bool(stop_any)
