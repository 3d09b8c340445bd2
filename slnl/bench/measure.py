"""One measurement: a configuration (``BenchConfig``), its training step timed, its peak memory, FLOPs and MFU.

* **The step is the engine's.** ``BenchConfig.train_config()`` is the ``TrainConfig`` that ``fit()`` would run
  (the preset's protocol: loss, Adam, learning rate; the row's model and execution options), ``slnl.engine.step.build``
  makes its model, loss and optimiser exactly as ``fit()`` does, and each timed step is one call of the engine's
  ``TrainStep`` — the object ``fit()``'s loop calls: zero_grad, forward under autocast, loss, backward, the
  per-step non-finite check (one flag read on the host), the optimiser step, and the loss/accuracy sums.
  Not included: fetching the batch (``fit()`` gathers it from the store; see ``slnl bench gpu-train
  --engine`` for ``fit()``'s own rate), the learning-rate decay and evaluation.
* **Inputs** are random: ``x ~ N(0, 1)`` of the preset's shape ``(B, C, T, V, M)`` and uniform labels, already on
  the device. The model has no data-dependent control flow, so timings on random data are those on real clips; two
  batches alternate so that no cache keeps one batch hot.
* **Time**: ``warmup`` steps are run and discarded (allocator warm-up, cuDNN/oneDNN plan selection, and for
  ``compile`` the compilation itself), then ``steps`` steps are timed one by one with a host clock after a device
  synchronisation; the median step time gives ``samples/s = B / median``.
* **Peak memory**: ``slnl.bench.memory``; each configuration runs in a fresh process (``measure_isolated``).
* **FLOPs, MFU**: ``slnl.bench.flops``, on one eager step of the same configuration.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch.profiler import ProfilerActivity, profile

from slnl.bench.flops import flop_breakdown, mfu, peak_tflops_for
from slnl.bench.memory import MemoryProbe, tensor_bytes
from slnl.bench.provenance import device_info
from slnl import recipes
from slnl.engine.config import TrainConfig
from slnl.engine.device import resolve_device
from slnl.engine.step import TrainStep, build, gradients
from slnl.models import PRESETS, NonLocal
from slnl.utils import atomic_write_json

# MFU needs a datasheet peak per precision (slnl.bench.flops.PEAK_TFLOPS: bf16, tf32, fp32); fp16 has none there.
PRECISIONS = ("fp32", "bf16")

# BenchConfig fields that set a ModelConfig field themselves (BenchConfig.model may not set them again)
_OWN_FIELDS = ("m1", "recompute", "nonlocal_impl", "channels_last")


def _slug(value: Any) -> str:
    """A ModelConfig value in a file-name-safe name: lists joined by 'x', other characters dropped."""
    text = "x".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return re.sub(r"[^A-Za-z0-9.]", "", text)


@dataclass
class BenchConfig:
    """One measured configuration: what is trained (preset, ``m1``, other model fields such as a dataset's shape; the
    rest of the preset's ``TrainConfig``), how it executes (non-local implementation, precision, compile, NHWC, fused
    Adam, device), how it is timed."""

    preset: str = "cpu"
    batch_size: int = 4
    m1: int | None = None  # None keeps the preset's
    # any other ModelConfig field (slnl.models.build overrides), e.g. a dataset's shape: MSR Action3D is
    # {"num_joints": 20, "num_persons": 1, "num_classes": 20}; the presets are NTU-shaped (25 joints, 2 persons)
    model: dict[str, Any] = field(default_factory=dict)
    nonlocal_impl: str = "fused"
    # fused non-local: selective recomputation (slnl.models.nonlocal_.RECOMPUTE); None keeps the preset's, so that a
    # preset is measured as it trains (the `small` preset turns it off)
    recompute: str | None = None
    precision: str = "fp32"
    compile: bool = False
    compile_mode: str = "default"  # torch.compile mode; "reduce-overhead" replays the step as CUDA graphs
    channels_last: bool = False  # ModelConfig.channels_last: the blocks run on NHWC feature maps
    fused_adam: bool = False  # TrainConfig.fused_adam: torch.optim.Adam(fused=True)
    device: str = "cpu"
    steps: int = 10
    warmup: int = 3
    threads: int = 1
    peak_tflops: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.batch_size < 1 or self.steps < 1 or self.warmup < 0 or self.threads < 1:
            raise ValueError(
                f"need batch_size >= 1, steps >= 1, warmup >= 0, threads >= 1; got batch_size={self.batch_size}, "
                f"steps={self.steps}, warmup={self.warmup}, threads={self.threads}"
            )
        if self.m1 is not None and self.m1 < 0:
            raise ValueError(f"m1 must be >= 0 (number of SLnL blocks), got {self.m1}")
        own = sorted(set(self.model) & set(_OWN_FIELDS))
        if own:
            raise ValueError(f"model overrides {own} have their own BenchConfig fields: set {own} instead")
        self.train_config()  # the engine validates the rest (compile_mode, device, …) with its own messages

    def train_config(self) -> TrainConfig:
        """The (resolved) ``TrainConfig`` whose step this configuration measures: the recipe of the preset's name
        (``slnl.recipes``: its loss, Adam and learning rate, the adopted m and M1 on its split) with this
        configuration's model and execution options."""
        model: dict[str, Any] = {**self.model, "nonlocal_impl": self.nonlocal_impl,
                                 "channels_last": self.channels_last}
        if self.recompute is not None:
            model["recompute"] = self.recompute
        if self.m1 is not None:
            model["m1"] = self.m1
        return recipes.config_for(self.preset, model=model, batch_size=self.batch_size, precision=self.precision,
                                  device=self.device, compile=self.compile, compile_mode=self.compile_mode,
                                  fused_adam=self.fused_adam, seed=self.seed)

    @property
    def name(self) -> str:
        """A short, unique, file-name-safe slug of the configuration."""
        m1 = "" if self.m1 is None else f"-m1{self.m1}"
        comp = "-eager"
        if self.compile:
            comp = "-compiled" + {"default": "", "reduce-overhead": "-cudagraphs", "max-autotune-no-cudagraphs":
                                  "-autotune"}[self.compile_mode]
        rc = "" if self.recompute in (None, PRESETS[self.preset].recompute) else f"-recompute{self.recompute}"
        opts = ("-cl" if self.channels_last else "") + ("-fusedadam" if self.fused_adam else "")
        shape = "".join(f"-{k}{_slug(v)}" for k, v in sorted(self.model.items()))
        return (f"{self.preset}{shape}-b{self.batch_size}{m1}-{self.nonlocal_impl}{rc}-{self.precision}{comp}{opts}"
                f"-train")


def options_of(config: dict[str, Any]) -> str:
    """The execution options beyond the plain eager path of a row's stored config, for tables ("-" when none).
    Rows written by earlier versions may carry ``attention_kernels="cudnn"`` (cuDNN attention allowed in the fused
    non-local, which the package leaves out); it is shown as measured."""
    mode = config.get("compile_mode", "default")
    flags = (("compile" + ("" if mode == "default" else f":{mode}"), config.get("compile")),
             ("channels_last", config.get("channels_last")),
             ("cudnn-attn", config.get("attention_kernels") == "cudnn"),
             ("fused-adam", config.get("fused_adam")))
    opts = [name for name, on in flags if on]
    return ", ".join(opts) or "-"


def fit_runnable(row: dict[str, Any], preset: str) -> bool:
    """A training row of ``preset``'s own model (m1 and shape of the preset) with a finite loss, measured with what
    ``fit()`` runs (rows of earlier versions with cuDNN attention allowed are not)."""
    c = row.get("config", {})
    return (bool(row.get("train_samples_per_s")) and c.get("preset") == preset and c.get("m1") is None
            and not c.get("model")
            and c.get("attention_kernels", "default") == "default"
            and row.get("train", {}).get("loss_finite", True) is not False)


# ====================================================================================================================
# In this process
# ====================================================================================================================
def _time_steps(step: Callable[[int], Any], n: int, sync: Callable[[], None]) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU time (all threads, user + system) of each of ``n`` steps."""
    wall, cpu = [], []
    for i in range(n):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        step(i)
        sync()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def _summarise(wall: list[float], cpu: list[float], batch_size: int) -> dict[str, Any]:
    med = statistics.median(wall)
    return {
        "step_time_s_median": med, "step_time_s_mean": statistics.fmean(wall),
        "step_time_s_min": min(wall), "step_time_s_max": max(wall), "step_times_s": wall,
        # On a CPU shared with other processes the wall time depends on them; the process's own CPU time (one
        # thread: the work the step needs) does much less. On CUDA it is the host's share of the step.
        "step_cpu_time_s_median": statistics.median(cpu), "step_cpu_times_s": cpu,
        "samples_per_s": batch_size / med,
    }


def _attention_ops(fn: Callable[[], Any]) -> list[str]:
    """Names of the attention operators ``fn()`` dispatches to (torch profiler, CPU side: aten op names)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sorted({e.key for e in prof.key_averages() if "attention" in e.key and e.key.startswith("aten::_")})


def _loadavg() -> list[float] | None:
    # Other processes on the same cores slow a CPU measurement down; the load average says how busy the host was.
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def measure(cfg: BenchConfig) -> dict[str, Any]:
    """Measure one configuration in this process (see the module docstring). Returns the result row."""
    torch.set_num_threads(cfg.threads)
    tcfg = cfg.train_config()
    device = resolve_device(cfg.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    t = build(tcfg, device)  # fit()'s model, loss and optimiser
    step = TrainStep(t, tcfg.accum_steps, tcfg.sync_every)  # fit()'s step
    model = t.model.train()
    c = model.config
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    batches = [(torch.randn(cfg.batch_size, c.in_channels, c.T, c.num_joints, c.num_persons, generator=gen).to(device),
                torch.randint(0, c.num_classes, (cfg.batch_size,), generator=gen).to(device)) for _ in range(2)]
    info = device_info(device)
    peak, basis = (cfg.peak_tflops, "given by --peak-tflops") if cfg.peak_tflops else (None, None)
    if peak is None and device.type == "cuda":
        peak, basis = peak_tflops_for(info["name"], cfg.precision, bool(torch.backends.cudnn.allow_tf32))
    row: dict[str, Any] = {
        "name": cfg.name, "train_samples_per_s": None, "peak_memory_bytes": None,
        "config": dataclasses.asdict(cfg), "train_config": tcfg.to_dict(),
        "step": f"{TrainStep.__module__}.{TrainStep.__qualname__}",
        "model": {"preset": cfg.preset, "overrides": dict(tcfg.model), "params": t.num_params,
                  "input_shape": [cfg.batch_size, c.in_channels, c.T, c.num_joints, c.num_persons],
                  "num_classes": c.num_classes},
        "device_name": info["name"], "device": info, "peak_tflops": peak, "peak_basis": basis,
        "loadavg_before": _loadavg(),
    }

    results = []

    def train_step(i: int) -> None:
        x, y = batches[i % 2]
        results.append(step(x, y, global_step=len(results) + 1))

    for i in range(cfg.warmup):
        train_step(i)
    if device.type == "cuda":
        torch.cuda.empty_cache()

    def resident() -> int:
        state = [v for s in t.opt.state.values() for v in s.values() if torch.is_tensor(v)]
        grads = [p.grad for p in model.parameters()]
        return tensor_bytes([*model.parameters(), *model.buffers(), *grads, *state, *(b[0] for b in batches)])

    probe = MemoryProbe(device)
    probe.start(resident)
    res = {**_summarise(*_time_steps(train_step, cfg.steps, sync), cfg.batch_size), **probe.stop()}

    # Model FLOPs (MFU's definition): the selective recomputation's second q/k/v projection is not counted.
    t.opt.zero_grad(set_to_none=True)
    nonlocals = [m for m in model.modules() if isinstance(m, NonLocal)]
    saved = [m.recompute for m in nonlocals]
    for m in nonlocals:
        m.recompute = "never"
    x, y = batches[0]
    # One sample: FLOPs per sample do not depend on the batch (BN, pooling are not counted).
    row["flops_breakdown"] = flop_breakdown(model, x[:1], y[:1], t.loss_fn, t.precision)
    for m, r in zip(nonlocals, saved):
        m.recompute = r
    res["flops_per_sample"] = sum(row["flops_breakdown"]["train_flops_per_sample_by_op"].values())
    res["achieved_tflops"] = res["flops_per_sample"] * res["samples_per_s"] / 1e12
    res["mfu"] = mfu(res["flops_per_sample"], res["samples_per_s"], peak)
    # which attention kernels the eager step really used
    row["attention_ops"] = _attention_ops(lambda: gradients(model, t.loss_fn, x, y, t.precision))
    t.opt.zero_grad(set_to_none=True)
    res["final_loss"] = float(results[-1].loss)  # a NaN here would make the timings meaningless
    res["loss_finite"] = all(r.nonfinite is None and bool(torch.isfinite(r.loss)) for r in results)
    row["train"] = res
    row["train_samples_per_s"] = res["samples_per_s"]
    row["peak_memory_bytes"] = res["peak_memory_bytes"]
    row["loadavg_after"] = _loadavg()
    return row


def safe_measure(cfg: BenchConfig) -> dict[str, Any]:
    """``measure``; an exception becomes a row with an ``error`` (a suite goes on with the next configuration)."""
    try:
        return measure(cfg)
    except Exception as e:
        return {"name": cfg.name, "config": dataclasses.asdict(cfg), "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc()}


# ====================================================================================================================
# In a fresh process (clean memory high-water mark, clean compile caches, a timeout)
# ====================================================================================================================
def measure_isolated(cfg: BenchConfig, timeout_s: float = 600.0) -> dict[str, Any]:
    """Run ``measure(cfg)`` in a fresh Python process; a crash or timeout becomes a row with an ``error`` field."""
    env = dict(os.environ)
    env.update(MALLOC_MMAP_THRESHOLD_="131072", OMP_NUM_THREADS=str(cfg.threads),
               MKL_NUM_THREADS=str(cfg.threads), PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory(prefix="slnl-bench-") as tmp:
        cpath, opath = Path(tmp) / "config.json", Path(tmp) / "row.json"
        cpath.write_text(json.dumps(dataclasses.asdict(cfg)))
        cmd = [sys.executable, "-m", "slnl.bench.measure", str(cpath), str(opath)]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"name": cfg.name, "config": dataclasses.asdict(cfg),
                    "error": f"timed out after {timeout_s:.0f} s"}
        wall = time.perf_counter() - t0
        if not opath.exists():
            return {"name": cfg.name, "config": dataclasses.asdict(cfg),
                    "error": f"worker exited with status {proc.returncode} and wrote no result",
                    "stderr_tail": proc.stderr[-4000:]}
        row = json.loads(opath.read_text())
        row["wall_s"] = wall
        return row


if __name__ == "__main__":  # the worker of measure_isolated: python -m slnl.bench.measure CONFIG.json OUT.json
    atomic_write_json(sys.argv[2], safe_measure(BenchConfig(**json.loads(Path(sys.argv[1]).read_text()))))
