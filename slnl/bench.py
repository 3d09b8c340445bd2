"""``slnl bench``: throughput, peak memory, FLOPs and MFU of SLnL-rFA training and inference steps.

What one measurement is (one *configuration*: preset, batch size, m1, non-local implementation, precision, eager or
compiled, device):

* **Inputs** are random: ``x ~ N(0, 1)`` of the preset's shape ``(B, C, T, V, M)`` and uniform labels. The model has
  no data-dependent control flow, so timings on random data are those on real clips; two batches alternate so that
  no cache keeps one batch hot. The data pipeline is timed separately (``bench_data``) and compared with the step.
* **Training step** = ``zero_grad`` + forward (under bf16 autocast for ``--precision bf16``) + the paper's loss
  (SMFL, gamma = 2, m = 0.4, summed over the three heads, Eq. 21) + backward + ``Adam(lr=1e-3, weight_decay=5e-4)``
  step (§4.1). **Inference step** = ``eval()`` forward under ``torch.inference_mode``.
* **Time**: ``warmup`` steps are run and discarded (allocator warm-up, cuDNN/oneDNN plan selection, and for
  ``--compile`` the compilation itself), then ``steps`` steps are timed one by one with a host clock after a device
  synchronisation; the median step time gives ``samples/s = B / median``.
* **Peak memory** (``peak_memory_bytes``), the memory the step needs at its highest point *including* the weights,
  gradients, Adam state and the batch:

  - CUDA: ``torch.cuda.max_memory_allocated()`` over the timed steps (the peak counter is reset after warm-up).
  - CPU: the process's resident set cannot be split into "ours" and "the interpreter's", so it is measured as
    ``resident tensor bytes between steps`` (weights, gradients, Adam state, inputs: counted exactly) ``+ (VmHWM -
    VmRSS)`` over the timed steps, where VmHWM is the kernel's high-water mark of the resident set, reset after
    warm-up by writing ``5`` to ``/proc/self/clear_refs``. Each configuration runs in a fresh subprocess with
    ``MALLOC_MMAP_THRESHOLD_=131072`` so that glibc serves every large tensor by ``mmap`` and gives it back on free
    (the default *dynamic* threshold would keep freed buffers up to 32 MiB in the heap, and a later step would then
    reuse them without raising VmHWM). ``step_peak_memory_bytes`` is the second term alone.
* **FLOPs** are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one eager step of the same configuration:
  matrix products, convolutions and attention (forward + backward for training, forward for inference), the
  operations that run on matrix units; element-wise work, FFTs and the optimizer are not counted (the usual MFU
  convention, PaLM appendix B). These are *model* FLOPs: ``count_flops`` adds the CPU flash-attention kernel, which
  PyTorch's counter lacks, and counts a fused attention backward without the affinity recomputation that flash
  kernels do (``_attention_flop_mapping``), so fused and reference non-local count the same FLOPs.
* **MFU** = ``FLOPs/sample * samples/s / peak``; ``peak`` is the datasheet's dense rate for the device and the
  precision actually used (``PEAK_TFLOPS``): bf16 for ``--precision bf16``; for fp32 the TF32 rate when cuDNN may use
  TF32 (PyTorch's default for convolutions, which dominate this model), else the plain FP32 rate. CPUs have no
  entry: MFU is ``null`` unless ``--peak-tflops`` gives the peak.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from slnl.engine.config import COMPILE_MODES  # one list of torch.compile modes for fit() and the bench
from slnl.utils import REPO_ROOT, atomic_write_json, atomic_write_text, git_commit

RESULTS_DIR = REPO_ROOT / "results" / "bench"

# Dense (no structured sparsity) datasheet rates in TFLOP/s, matched against ``torch.cuda.get_device_name()`` by the
# longest key that occurs in it. The SXM H100 reports itself as "NVIDIA H100 80GB HBM3"; the H200 shares its compute.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H200": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "H100 NVL": {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0},
    "H100 PCIe": {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2},
    "H100": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "A100": {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5},
}

# §4.1: batch 32 / 128, 300 / 100 epochs (NTU / Kinetics). Training clips per split (NTU RGB+D 60: Shahroudy et al.
# 2016 after removing the 302 samples with missing skeletons; Kinetics-skeleton: ST-GCN's release, about 240k).
PAPER_BATCH = {"ntu": 32, "kinetics": 128}
PAPER_EPOCHS = {"ntu": 300, "kinetics": 100}
TRAIN_CLIPS = {("ntu60", "xsub"): 40_320, ("ntu60", "xview"): 37_920, ("kinetics", "default"): 240_000}

PRECISIONS = ("fp32", "bf16")
NONLOCAL_IMPLS = ("fused", "reference")
MODES = ("train", "infer", "both")
ATTENTION_KERNELS = ("default", "cudnn")


# ====================================================================================================================
# Configuration
# ====================================================================================================================
@dataclass
class BenchConfig:
    """One measured configuration. ``m1=None`` keeps the preset's value."""

    preset: str = "cpu"
    batch_size: int = 4
    m1: int | None = None
    nonlocal_impl: str = "fused"
    recompute: str = "auto"  # fused non-local: selective recomputation (slnl.models.nonlocal_.RECOMPUTE)
    precision: str = "fp32"
    compile: bool = False
    compile_mode: str = "default"  # torch.compile mode; "reduce-overhead" replays the step as CUDA graphs
    channels_last: bool = False  # ModelConfig.channels_last: the blocks run on NHWC feature maps
    attention_kernels: str = "default"  # "cudnn": also allow cuDNN attention (slnl.models.nonlocal_.FUSED_BACKENDS)
    fused_adam: bool = False  # torch.optim.Adam(fused=True): one kernel for the whole update
    device: str = "cpu"
    steps: int = 10
    warmup: int = 3
    mode: str = "train"
    threads: int = 1
    peak_tflops: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.nonlocal_impl not in NONLOCAL_IMPLS:
            raise ValueError(f"nonlocal must be one of {NONLOCAL_IMPLS}, got {self.nonlocal_impl!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode must be one of {COMPILE_MODES}, got {self.compile_mode!r}")
        if self.compile_mode != "default" and not self.compile:
            raise ValueError(f"compile_mode={self.compile_mode!r} needs compile=True")
        if self.attention_kernels not in ATTENTION_KERNELS:
            raise ValueError(f"attention_kernels must be one of {ATTENTION_KERNELS}, got {self.attention_kernels!r}")
        if self.batch_size < 1 or self.steps < 1 or self.warmup < 0 or self.threads < 1:
            raise ValueError(
                f"need batch_size >= 1, steps >= 1, warmup >= 0, threads >= 1; got batch_size={self.batch_size}, "
                f"steps={self.steps}, warmup={self.warmup}, threads={self.threads}"
            )
        if self.m1 is not None and self.m1 < 0:
            raise ValueError(f"m1 must be >= 0 (number of SLnL blocks), got {self.m1}")

    @property
    def name(self) -> str:
        """A short, unique, file-name-safe slug of the configuration."""
        m1 = "" if self.m1 is None else f"-m1{self.m1}"
        comp = "-eager"
        if self.compile:
            comp = "-compiled" + {"default": "", "reduce-overhead": "-cudagraphs", "max-autotune-no-cudagraphs":
                                  "-autotune"}[self.compile_mode]
        rc = "" if self.recompute == "auto" else f"-recompute{self.recompute}"
        opts = ("-cl" if self.channels_last else "") + ("-cudnn" if self.attention_kernels == "cudnn" else "") + (
            "-fusedadam" if self.fused_adam else "")
        return (f"{self.preset}-b{self.batch_size}{m1}-{self.nonlocal_impl}{rc}-{self.precision}{comp}{opts}"
                f"-{self.mode}")

    @property
    def options(self) -> str:
        """The execution options beyond the plain eager path, for tables ("-" when none)."""
        opts = [name for name, on in (("compile" + ("" if self.compile_mode == "default" else f":{self.compile_mode}"),
                                       self.compile), ("channels_last", self.channels_last),
                                      ("cudnn-attn", self.attention_kernels == "cudnn"),
                                      ("fused-adam", self.fused_adam)) if on]
        return ", ".join(opts) or "-"


# ====================================================================================================================
# FLOPs and MFU
# ====================================================================================================================
def _attention_flop_mapping() -> dict[Any, Callable[..., int]]:
    """FLOP formulas for fused attention that count *model* FLOPs, so that fused = reference.

    * PyTorch registers no formula for the CPU flash kernel (``_scaled_dot_product_flash_attention_for_cpu``): its
      forward gets PyTorch's own ``sdpa_flop_count`` (QK^T and PV, 2 FLOPs per multiply-add).
    * PyTorch's backward formulas for fused attention include the recomputation of QK^T that flash kernels do instead
      of storing the affinity (5 products). The reference implementation stores it (4 products). MFU is about the
      model's arithmetic, not a kernel's choice to recompute, so every fused backward here counts 4 products:
      ``sdpa_backward_flop_count - (QK^T)``, which equals the reference's einsum backward exactly.
    The wrappers receive shapes, not tensors (FlopCounterMode's ``shape_wrapper``).
    """
    import torch
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten

    def fwd(q, k, v, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_flop_count(q, k, v)

    def bwd(grad_out, q, k, v, *args, out_shape=None, **kwargs) -> int:
        b, h, s_q, d_q = q
        s_k = k[2]
        return fc.sdpa_backward_flop_count(grad_out, q, k, v) - fc.bmm_flop((b * h, s_q, d_q), (b * h, d_q, s_k))

    mapping: dict[Any, Callable[..., int]] = {}
    for name in ("_scaled_dot_product_flash_attention_for_cpu",):
        if hasattr(aten, name):
            mapping[getattr(aten, name)] = fwd
    for name in ("_scaled_dot_product_flash_attention_for_cpu_backward", "_scaled_dot_product_flash_attention_backward",
                 "_scaled_dot_product_efficient_attention_backward", "_scaled_dot_product_cudnn_attention_backward"):
        if hasattr(aten, name):
            mapping[getattr(aten, name)] = bwd
    return mapping


def count_flops(fn: Callable[[], Any]) -> int:
    """Total FLOPs (2 per multiply-add) of the matrix products, convolutions and attention that ``fn()`` runs."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=_attention_flop_mapping())
    with counter:
        fn()
    return int(counter.get_total_flops())


def flop_breakdown(model: Any, x: Any, y: Any, loss_fn: Any) -> dict[str, Any]:
    """Where a sample's FLOPs go: forward FLOPs per part of the network, and training FLOPs per kind of operator.

    The forward is attributed to modules exactly (each module's own FLOPs, without its children's): the non-local
    attention proper (q·k and affinity·v, per ``dims``), the non-local projections (W_ϕ, W_ψ, W_g, W_w), the local
    convolutions, the residual projections, the frequency attention (DFTs and gates), the transform network and the
    heads. The training step (forward + backward) is split by operator: attention, convolution, matrix product.
    Per sample: ``x``'s batch size divides everything.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from slnl.models import NonLocal

    B = x.shape[0]
    counter = FlopCounterMode(display=False, custom_mapping=_attention_flop_mapping())
    with torch.no_grad(), counter:
        model(x)
    totals = {name.partition(".")[2]: sum(ops.values()) for name, ops in counter.get_flop_counts().items()
              if name != "Global"}
    modules = dict(model.named_modules())
    parts: dict[str, float] = {}
    for name, total in totals.items():
        mod = modules.get(name)
        if mod is None:
            continue
        own = total - sum(totals.get(f"{name}.{child}" if name else child, 0) for child, _ in mod.named_children())
        if own == 0:
            continue
        leaf, parent = name.rpartition(".")[2], modules.get(name.rpartition(".")[0])
        if isinstance(mod, NonLocal):
            part = f"non-local attention ({mod.dims})"
        elif isinstance(parent, NonLocal):
            part = "non-local projections"
        elif leaf in ("t_local", "s_local", "st_local"):
            part = "local convolutions"
        elif ".residual" in name:
            part = "residual projections"
        elif ".frequency" in name:
            part = "frequency attention"
        elif ".transform" in name:
            part = "transform"
        elif leaf.startswith("fc_"):
            part = "heads"
        else:
            part = "other"
        parts[part] = parts.get(part, 0.0) + own / B

    counter = FlopCounterMode(display=False, custom_mapping=_attention_flop_mapping())
    with counter:
        loss, _ = loss_fn(model(x), y)
        loss.backward()
    kinds: dict[str, float] = {}
    for op, f in counter.get_flop_counts()["Global"].items():
        name = str(op)
        kind = "attention" if "attention" in name else "convolution" if "convolution" in name else "matmul"
        kinds[kind] = kinds.get(kind, 0.0) + f / B
    model.zero_grad(set_to_none=True)
    return {"forward_flops_per_sample": dict(sorted(parts.items(), key=lambda kv: -kv[1])),
            "train_flops_per_sample_by_op": dict(sorted(kinds.items(), key=lambda kv: -kv[1]))}


def flops_report(preset: str, m1: int | None = None) -> dict[str, Any]:
    """``flop_breakdown`` of one clip of ``preset`` (random input, SMFL multi-task loss), with the totals."""
    import torch

    from slnl.losses import MultiTaskLoss, make_loss
    from slnl.models import build

    torch.manual_seed(0)
    model = build(preset, recompute="never", **({} if m1 is None else {"m1": m1})).train()
    c = model.config
    x = torch.randn(1, c.in_channels, c.T, c.num_joints, c.num_persons)
    bd = flop_breakdown(model, x, torch.zeros(1, dtype=torch.long), MultiTaskLoss(make_loss("SMFL", gamma=2.0, m=0.4)))
    return {"preset": preset, "m1": c.m1, **bd,
            "forward_flops_per_sample_total": sum(bd["forward_flops_per_sample"].values()),
            "train_flops_per_sample_total": sum(bd["train_flops_per_sample_by_op"].values()), **_header()}


def render_flops(rep: dict[str, Any]) -> str:
    """Markdown tables of a ``flops_report``."""
    fwd, tot = rep["forward_flops_per_sample"], rep["forward_flops_per_sample_total"]
    train, ttot = rep["train_flops_per_sample_by_op"], rep["train_flops_per_sample_total"]
    lines = [f"FLOPs per clip, `{rep['preset']}` preset (m1 = {rep['m1']}): forward {tot / 1e9:.1f} GFLOP, "
             f"training step {ttot / 1e9:.1f} GFLOP", "", "| forward, by part | GFLOP | share |", "| --- | ---: | ---: |"]
    lines += [f"| {k} | {v / 1e9:.2f} | {100 * v / tot:.1f}% |" for k, v in fwd.items()]
    lines += ["", "| training step, by operator | GFLOP | share |", "| --- | ---: | ---: |"]
    lines += [f"| {k} | {v / 1e9:.2f} | {100 * v / ttot:.1f}% |" for k, v in train.items()]
    return "\n".join(lines) + "\n"


def peak_tflops_for(device_name: str, precision: str, tf32: bool) -> tuple[float | None, str | None]:
    """``(peak TFLOP/s, basis)`` from ``PEAK_TFLOPS`` for a CUDA device name, or ``(None, None)`` if unknown.

    ``basis`` is ``bf16``, ``tf32`` (fp32 run with TF32 allowed) or ``fp32``.
    """
    basis = "bf16" if precision == "bf16" else ("tf32" if tf32 else "fp32")
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):
        if key.lower() in device_name.lower():
            return PEAK_TFLOPS[key][basis], basis
    return None, None


def mfu(flops_per_sample: float | None, samples_per_s: float | None, peak_tflops: float | None) -> float | None:
    """Model FLOP utilisation: achieved FLOP/s over the device's peak; ``None`` when any input is unknown."""
    if not flops_per_sample or not samples_per_s or not peak_tflops:
        return None
    return flops_per_sample * samples_per_s / (peak_tflops * 1e12)


# ====================================================================================================================
# Memory
# ====================================================================================================================
def _proc_status_kib(key: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{key}:\s+(\d+)\s+kB", text, re.M)
    return int(m.group(1)) if m else None


def _reset_hwm() -> bool:
    """Reset the kernel's resident-set high-water mark (VmHWM) to the current RSS; ``False`` where not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _tensor_bytes(tensors: Iterable[Any]) -> int:
    seen: set[int] = set()
    total = 0
    for t in tensors:
        if t is None:
            continue
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen:
            continue
        seen.add(ptr)
        total += t.untyped_storage().nbytes()
    return total


class _MemoryProbe:
    """Peak memory of the steps between ``start()`` and ``stop()``; see the module docstring for the method."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.cuda = device.type == "cuda"

    def start(self, resident: Callable[[], int]) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.before = torch.cuda.memory_allocated(self.device)
            self.method = "torch.cuda.max_memory_allocated over the timed steps (peak counter reset after warm-up)"
        else:
            self.resident = resident()
            self.hwm_reset = _reset_hwm()
            self.before = (_proc_status_kib("VmRSS") or 0) * 1024
            self.method = (
                "resident tensor bytes + (VmHWM - VmRSS) over the timed steps; "
                + ("VmHWM reset after warm-up via /proc/self/clear_refs" if self.hwm_reset
                   else "VmHWM NOT resettable here: it covers the whole process, warm-up included")
            )

    def stop(self) -> dict[str, Any]:
        import torch

        if self.cuda:
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            return {"peak_memory_bytes": int(peak), "step_peak_memory_bytes": int(peak - self.before),
                    "memory_method": self.method}
        hwm = _proc_status_kib("VmHWM")
        if hwm is None:
            return {"peak_memory_bytes": None, "step_peak_memory_bytes": None,
                    "memory_method": "unavailable: no /proc/self/status"}
        step = max(0, hwm * 1024 - self.before)
        return {"peak_memory_bytes": int(self.resident + step), "step_peak_memory_bytes": int(step),
                "resident_tensor_bytes": int(self.resident), "memory_method": self.method}


# ====================================================================================================================
# One configuration, in this process
# ====================================================================================================================
def _device_info(device: Any) -> dict[str, Any]:
    import torch

    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {
            "type": "cuda", "name": torch.cuda.get_device_name(device),
            "capability": f"{props.major}.{props.minor}", "memory_bytes": int(props.total_memory),
            "multiprocessors": int(props.multi_processor_count), "cuda": torch.version.cuda,
            "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        }
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"type": "cpu", "name": name, "threads": torch.get_num_threads(), "logical_cpus": os.cpu_count()}


def _model_shape(model: Any, preset: str) -> tuple[int, int, int, int, int]:
    """``(C, T, V, M, num_classes)`` the model expects, from its ``ModelConfig``."""
    cfg = getattr(model, "config", None) or getattr(model, "cfg", None)
    if cfg is None:
        from slnl.models import PRESETS

        cfg = PRESETS[preset]
    return int(cfg.in_channels), int(cfg.T), int(cfg.num_joints), int(cfg.num_persons), int(cfg.num_classes)


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


def _summarise(times: tuple[list[float], list[float]], batch_size: int) -> dict[str, Any]:
    wall, cpu = times
    med = statistics.median(wall)
    return {
        "step_time_s_median": med, "step_time_s_mean": statistics.fmean(wall),
        "step_time_s_min": min(wall), "step_time_s_max": max(wall), "step_times_s": wall,
        # On a CPU shared with other processes the wall time depends on them; the process's own CPU time (one
        # thread: the work the step needs) does much less. On CUDA it is the host's share of the step.
        "step_cpu_time_s_median": statistics.median(cpu), "step_cpu_times_s": cpu,
        "samples_per_s": batch_size / med,
    }


def measure(cfg: BenchConfig) -> dict[str, Any]:
    """Measure one configuration in this process (see the module docstring). Returns the result row."""
    import torch

    torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {cfg.device}: CUDA is not available in this torch ({torch.__version__})")
    torch.manual_seed(cfg.seed)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)

    overrides: dict[str, Any] = {"nonlocal_impl": cfg.nonlocal_impl, "recompute": cfg.recompute,
                                 "channels_last": cfg.channels_last}
    if cfg.m1 is not None:
        overrides["m1"] = cfg.m1
    with _attention_kernels(cfg.attention_kernels):
        return _measure(cfg, overrides, device, sync)


@contextlib.contextmanager
def _attention_kernels(kernels: str) -> Iterator[None]:
    """``"cudnn"``: let the fused non-local also use cuDNN attention, first in line, for this measurement only.

    The package leaves cuDNN attention out (``slnl.models.nonlocal_.FUSED_BACKENDS``: NaN bf16 gradients once on an
    H200); the benchmark can still time it. Allowing a backend does not make PyTorch prefer it, so the priority order
    is also set (``sdpa_kernel(..., set_priority=True)``, which the module's own ``sdpa_kernel`` call leaves alone);
    ``attention_ops`` in the row shows which kernel really ran.
    """
    import inspect

    from torch.nn.attention import SDPBackend, sdpa_kernel

    from slnl.models import nonlocal_

    saved = nonlocal_.FUSED_BACKENDS
    priority: Any = contextlib.nullcontext()
    if kernels == "cudnn":
        nonlocal_.FUSED_BACKENDS = [SDPBackend.CUDNN_ATTENTION, *saved]
        if "set_priority" in inspect.signature(sdpa_kernel).parameters:
            priority = sdpa_kernel(nonlocal_.FUSED_BACKENDS, set_priority=True)
    try:
        with priority:
            yield
    finally:
        nonlocal_.FUSED_BACKENDS = saved


def _attention_ops(fn: Callable[[], Any]) -> list[str]:
    """Names of the attention operators ``fn()`` dispatches to (torch profiler, CPU side: aten op names)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sorted({e.key for e in prof.key_averages() if "attention" in e.key and e.key.startswith("aten::_")})


def _measure(cfg: BenchConfig, overrides: dict[str, Any], device: Any, sync: Callable[[], None]) -> dict[str, Any]:
    import torch

    from slnl.losses import MultiTaskLoss, make_loss
    from slnl.models import build

    model = build(cfg.preset, **overrides).to(device)
    C, T, V, M, K = _model_shape(model, cfg.preset)
    n_params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    batches = [
        (torch.randn(cfg.batch_size, C, T, V, M, generator=gen).to(device),
         torch.randint(0, K, (cfg.batch_size,), generator=gen).to(device))
        for _ in range(2)
    ]
    loss_fn = MultiTaskLoss(make_loss("SMFL", gamma=2.0, m=0.4))
    autocast = (
        (lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16))
        if cfg.precision == "bf16" else contextlib.nullcontext
    )
    run_model = model
    if cfg.compile:
        run_model = torch.compile(model, mode=None if cfg.compile_mode == "default" else cfg.compile_mode)
    # CUDA graphs replay into fixed output buffers: each step must tell torch where the previous one ended.
    mark_step = (torch.compiler.cudagraph_mark_step_begin if cfg.compile and cfg.compile_mode == "reduce-overhead"
                 else (lambda: None))
    info = _device_info(device)
    peak, basis = (cfg.peak_tflops, "given by --peak-tflops") if cfg.peak_tflops else (None, None)
    if peak is None and device.type == "cuda":
        peak, basis = peak_tflops_for(info["name"], cfg.precision, bool(torch.backends.cudnn.allow_tf32))

    row: dict[str, Any] = {
        "name": cfg.name,
        "train_samples_per_s": None, "infer_samples_per_s": None, "peak_memory_bytes": None,
        "config": dataclasses.asdict(cfg),
        "model": {"preset": cfg.preset, "overrides": overrides, "params": int(n_params),
                  "input_shape": [cfg.batch_size, C, T, V, M], "num_classes": K},
        "device_name": info["name"], "device": info, "peak_tflops": peak, "peak_basis": basis,
    }
    probe = _MemoryProbe(device)
    # Other processes on the same cores slow a CPU measurement down; the load average says how busy the host was.
    row["loadavg_before"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None

    # Inference first: its memory is then measured before any optimizer state exists.
    if cfg.mode in ("infer", "both"):
        model.eval()

        def infer_step(i: int) -> None:
            mark_step()
            with torch.inference_mode(), autocast():
                run_model(batches[i % 2][0])

        for i in range(cfg.warmup):
            infer_step(i)
        probe.start(lambda: _tensor_bytes([*model.parameters(), *model.buffers(), *(b[0] for b in batches)]))
        times = _time_steps(infer_step, cfg.steps, sync)
        res = {**_summarise(times, cfg.batch_size), **probe.stop()}
        model.eval()
        with torch.inference_mode(), autocast():
            fl = count_flops(lambda: model(batches[0][0]))
        res["flops_per_sample"] = fl / cfg.batch_size
        res["achieved_tflops"] = res["flops_per_sample"] * res["samples_per_s"] / 1e12
        res["mfu"] = mfu(res["flops_per_sample"], res["samples_per_s"], peak)
        row["infer"] = res
        row["infer_samples_per_s"] = res["samples_per_s"]
        row["peak_memory_bytes"] = res["peak_memory_bytes"]

    if cfg.mode in ("train", "both"):
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4, fused=cfg.fused_adam or None)

        losses: list[Any] = []

        def train_step(i: int) -> None:
            x, y = batches[i % 2]
            mark_step()
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss, _ = loss_fn(run_model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.detach())

        for i in range(cfg.warmup):
            train_step(i)
        if device.type == "cuda":
            torch.cuda.empty_cache()

        def resident() -> int:
            state = [t for s in opt.state.values() for t in s.values() if torch.is_tensor(t)]
            grads = [p.grad for p in model.parameters()]
            return _tensor_bytes([*model.parameters(), *model.buffers(), *grads, *state, *(b[0] for b in batches)])

        probe.start(resident)
        times = _time_steps(train_step, cfg.steps, sync)
        res = {**_summarise(times, cfg.batch_size), **probe.stop()}

        def fwd_bwd() -> None:
            with autocast():
                loss, _ = loss_fn(model(batches[0][0]), batches[0][1])
            loss.backward()

        opt.zero_grad(set_to_none=True)
        # model FLOPs (MFU's definition): the selective recomputation's second q/k/v projection is not counted
        nonlocals = [m for m in model.modules() if hasattr(m, "recompute")]
        saved = [m.recompute for m in nonlocals]
        for m in nonlocals:
            m.recompute = "never"
        with autocast():  # one sample: FLOPs per sample do not depend on the batch (BN, pooling are not counted)
            row["flops_breakdown"] = flop_breakdown(model, batches[0][0][:1], batches[0][1][:1], loss_fn)
        res["flops_per_sample"] = sum(row["flops_breakdown"]["train_flops_per_sample_by_op"].values())
        for m, r in zip(nonlocals, saved):
            m.recompute = r
        res["achieved_tflops"] = res["flops_per_sample"] * res["samples_per_s"] / 1e12
        res["mfu"] = mfu(res["flops_per_sample"], res["samples_per_s"], peak)
        row["attention_ops"] = _attention_ops(fwd_bwd)  # which kernels the eager step really used
        opt.zero_grad(set_to_none=True)
        res["final_loss"] = float(losses[-1])  # a NaN here would make the timings meaningless
        res["loss_finite"] = bool(all(torch.isfinite(t).item() for t in losses))
        row["train"] = res
        row["train_samples_per_s"] = res["samples_per_s"]
        row["peak_memory_bytes"] = res["peak_memory_bytes"]  # training's peak wins when both are measured
    row["loadavg_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return row


# ====================================================================================================================
# One configuration, in a fresh subprocess (clean memory high-water mark, clean compile caches, a timeout)
# ====================================================================================================================
def _worker(config_path: str, out_path: str) -> int:
    cfg = BenchConfig(**json.loads(Path(config_path).read_text()))
    try:
        row = measure(cfg)
    except Exception as e:  # the parent records the failure and goes on with the next configuration
        row = {"name": cfg.name, "config": dataclasses.asdict(cfg), "error": f"{type(e).__name__}: {e}",
               "traceback": traceback.format_exc()}
    atomic_write_json(out_path, row)
    return 0


def measure_isolated(cfg: BenchConfig, timeout_s: float = 600.0) -> dict[str, Any]:
    """Run ``measure(cfg)`` in a fresh Python process; a crash or timeout becomes a row with an ``error`` field."""
    env = dict(os.environ)
    env.update(MALLOC_MMAP_THRESHOLD_="131072", OMP_NUM_THREADS=str(cfg.threads),
               MKL_NUM_THREADS=str(cfg.threads), PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory(prefix="slnl-bench-") as tmp:
        cpath, opath = Path(tmp) / "config.json", Path(tmp) / "row.json"
        cpath.write_text(json.dumps(dataclasses.asdict(cfg)))
        cmd = [sys.executable, "-m", "slnl", "bench", "--worker", str(cpath), str(opath)]
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


# ====================================================================================================================
# Data pipeline
# ====================================================================================================================
def bench_data(store: str | os.PathLike, batch_size: int, T: int, device: str = "cpu", batches: int = 20,
               workers: int = 2, seed: int = 0) -> dict[str, Any]:
    """Seconds per batch of the CPU dataset (DataLoader with 0 and ``workers`` workers) and the device-resident loader.

    Each loader's construction and first batch (worker start-up, copying the split to the device) is reported apart
    as ``setup_s``; ``s_per_batch`` is the median of the next ``batches`` batches (host-to-device copy included for
    the CPU path on CUDA), cycling epochs if the split is small. Workers are persistent, as a training run's would be.
    """
    import torch
    from torch.utils.data import DataLoader

    from slnl.data import GPUResidentLoader, load

    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    ds = load(store, split="xsub", subset="train", T=T)
    out: dict[str, Any] = {"store": str(store), "split": "xsub", "subset": "train", "clips": len(ds),
                           "batch_size": batch_size, "T": T, "batches_timed": batches}

    def timed(make: Callable[[], Any], to_device: bool) -> dict[str, Any]:
        t0 = time.perf_counter()
        loader = make()
        it = iter(loader)
        first = next(it)
        if to_device:
            first[0].to(dev, non_blocking=True)
        sync()
        setup = time.perf_counter() - t0
        times: list[float] = []
        epoch = 0
        while len(times) < batches:
            t = time.perf_counter()
            try:
                xb, _ = next(it)
            except StopIteration:  # a small split: next epoch (the epoch boundary itself is not timed)
                epoch += 1
                if hasattr(loader, "set_epoch"):
                    loader.set_epoch(epoch)
                it = iter(loader)
                continue
            if to_device:
                xb = xb.to(dev, non_blocking=True)
            sync()
            times.append(time.perf_counter() - t)
        return {"setup_s": setup, "s_per_batch": statistics.median(times), "s_per_batch_mean": statistics.fmean(times)}

    drop_last = len(ds) >= batch_size
    for w in sorted({0, workers}):
        key = f"cpu_dataloader_workers{w}"
        try:
            out[key] = timed(lambda w=w: DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=w,
                                                     drop_last=drop_last, pin_memory=dev.type == "cuda",
                                                     persistent_workers=w > 0), to_device=dev.type == "cuda")
        except Exception as e:
            out[key] = {"error": f"{type(e).__name__}: {e}"}
    try:
        out["device_resident"] = timed(
            lambda: GPUResidentLoader(ds, batch_size=batch_size, device=dev, shuffle=True, seed=seed,
                                      drop_last=drop_last), to_device=False)
        out["device_resident"]["device"] = str(dev)
    except Exception as e:
        out["device_resident"] = {"error": f"{type(e).__name__}: {e}"}
    return out


def _attach_data_vs_step(data: dict[str, Any], rows: list[dict[str, Any]], preset: str) -> None:
    """Data time per batch as a fraction of each matching training step (same preset and batch size)."""
    comps = []
    for row in rows:
        c = row.get("config", {})
        if "train" not in row or c.get("preset") != preset or c.get("batch_size") != data["batch_size"]:
            continue
        step = row["train"]["step_time_s_median"]
        entry: dict[str, Any] = {"row": row["name"], "train_step_s": step}
        for key, val in data.items():
            if isinstance(val, dict) and "s_per_batch" in val:
                entry[f"{key}_fraction_of_step"] = val["s_per_batch"] / step
        comps.append(entry)
    data["vs_train_step"] = comps


# ====================================================================================================================
# Correctness on a device: the same weights against a float64 CPU reference
# ====================================================================================================================
# ||a - b|| / ||b|| against float64 on the CPU. Measured on CPU fp32 (ntu preset, batch 2, m1 = 6, random W_w):
# outputs ~4e-6, loss ~7e-7, gradients 5e-5 (reference) and 4e-4 (fused: the paper's unscaled exp(phi^T psi)
# gives large attention logits, whose softmax amplifies float32 rounding). Limits leave ~5x room for other kernels.
CHECK_TOL = {"out": 1e-4, "loss": 1e-5, "grad": 2e-3, "grad_tensor": 2e-2}


def _rel(a: Any, b: Any) -> float:
    import torch

    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(torch.finfo(torch.float64).tiny))


def _check_step(model: Any, x: Any, y: Any, precision: str) -> dict[str, Any]:
    """Forward + SMFL multi-task loss + backward; returns heads, loss and gradients (on the CPU, detached)."""
    import contextlib

    import torch

    from slnl.losses import MultiTaskLoss, make_loss

    model.zero_grad(set_to_none=True)
    ctx = (torch.autocast(device_type=x.device.type, dtype=torch.bfloat16) if precision == "bf16"
           else contextlib.nullcontext())
    with ctx:
        heads = model(x)
        loss, _ = MultiTaskLoss(make_loss("SMFL", gamma=2.0, m=0.4))(heads, y)
    loss.backward()
    return {"heads": [h.detach().double().cpu() if h is not None else None for h in heads],
            "loss": loss.detach().double().cpu(),
            "grads": [p.grad.detach().double().cpu() if p.grad is not None else torch.zeros(p.shape, dtype=torch.float64)
                      for p in model.parameters()]}


def _compare(res: dict[str, Any], ref: dict[str, Any]) -> dict[str, float]:
    import torch

    out = max(_rel(a, b) for a, b in zip(res["heads"], ref["heads"]) if b is not None)
    g, gr = torch.cat([t.flatten() for t in res["grads"]]), torch.cat([t.flatten() for t in ref["grads"]])
    floor = 1e-3 * float(gr.norm())  # tensors whose exact gradient is ~0 (biases before a BN) are judged on this
    per = max(float((a - b).norm()) / max(float(b.norm()), floor) for a, b in zip(res["grads"], ref["grads"]))
    return {"out": out, "loss": _rel(res["loss"], ref["loss"]), "grad": _rel(g, gr), "grad_tensor": per}


def check_device(device: str = "cuda", presets: tuple[str, ...] = ("cpu", "ntu"), batch_size: int = 2,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fused and reference non-local on ``device`` in float32 against a float64 CPU reference of the same weights.

    Per preset (all blocks SLnL, ``m1 = depth``; dropout 0 so that CPU and device draw no different masks; every
    ``W_w`` re-initialised at random, since its zero initialisation would make the non-local branch -- and the
    fused-vs-reference comparison -- vacuous; BN in training mode): heads, loss and gradients, relative errors against
    ``CHECK_TOL``; fused vs reference on the device directly; and a bf16-autocast step, which must be finite (its
    error against float64 is reported, not judged). TF32 is switched off for the float32 comparisons.
    """
    import copy

    import torch

    from slnl.models import PRESETS, NonLocal, build

    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"check_device({device!r}): CUDA is not available in torch {torch.__version__}")
        tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    report: dict[str, Any] = {"device": str(dev), "tolerances": CHECK_TOL, "presets": {}, "passed": True}
    try:
        for preset in presets:
            torch.manual_seed(0)
            depth = len(PRESETS[preset].channels)
            base = build(preset, m1=depth, dropout=0.0, nonlocal_impl="reference")
            for mod in base.modules():
                if isinstance(mod, NonLocal):
                    mod.W_w.reset_parameters()
            cfg = base.config
            x = torch.randn(batch_size, cfg.in_channels, cfg.T, cfg.num_joints, cfg.num_persons)
            y = torch.randint(0, cfg.num_classes, (batch_size,))
            t0 = time.perf_counter()
            ref = _check_step(copy.deepcopy(base).double(), x.double(), y, "fp32")
            entry: dict[str, Any] = {"batch_size": batch_size, "m1": depth, "cpu_fp64_s": time.perf_counter() - t0}

            def on_device(impl: str, precision: str) -> dict[str, Any]:
                m = copy.deepcopy(base)
                for mod in m.modules():
                    if isinstance(mod, NonLocal):
                        mod.impl = impl
                return _check_step(m.to(dev), x.to(dev), y.to(dev), precision)

            runs = {impl: on_device(impl, "fp32") for impl in NONLOCAL_IMPLS}
            for impl, res in runs.items():
                err = _compare(res, ref)
                ok = all(err[k] <= CHECK_TOL[k] for k in CHECK_TOL)
                entry[f"{impl}_fp32_vs_cpu_fp64"] = {**err, "ok": ok}
                report["passed"] &= ok
            err = _compare(runs["fused"], runs["reference"])
            ok = all(err[k] <= CHECK_TOL[k] for k in CHECK_TOL)
            entry["fused_vs_reference_fp32"] = {**err, "ok": ok}
            report["passed"] &= ok
            bf = on_device("fused", "bf16")
            finite = bool(all(torch.isfinite(t).all() for t in [*(h for h in bf["heads"] if h is not None),
                                                                  bf["loss"], *bf["grads"]]))
            entry["fused_bf16_vs_cpu_fp64"] = {**_compare(bf, ref), "finite": finite, "ok": finite}
            report["passed"] &= finite
            report["presets"][preset] = entry
            log(f"[check {device}] {preset}: " + "; ".join(
                f"{k}: " + ", ".join(f"{kk}={vv:.2e}" if isinstance(vv, float) else f"{kk}={vv}"
                                     for kk, vv in v.items())
                for k, v in entry.items() if isinstance(v, dict)))
    finally:
        if dev.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    report.update(_header())
    return report


def check_attention_kernels(device: str = "cuda", presets: tuple[str, ...] = ("kinetics", "ntu"), steps: int = 30,
                            batch_size: int = 16, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Is cuDNN attention safe for this model? bf16 training steps where, at every step and the same parameters
    (and dropout masks), the gradients are computed with the package's kernels and with cuDNN attention first.

    ``FUSED_BACKENDS`` leaves cuDNN attention out because its bf16 backward once gave NaN gradients on an H200
    (kinetics preset, after a few steps) where flash/efficient/math did not. This check is how that decision can be
    revisited on a new torch/cuDNN: per preset, the first step (if any) whose cuDNN gradients are non-finite while
    the default kernels' are finite, the largest relative gradient difference, and the attention operators each
    path really ran. Training follows the default kernels' gradients, so both paths see the same parameters.
    ``passed``: cuDNN attention really ran (on CUDA: a cuDNN operator among its ``attention_ops``), at least one step
    had finite default gradients to compare with, and cuDNN's were finite at every such step.
    """
    import torch

    from slnl.losses import MultiTaskLoss, make_loss
    from slnl.models import PRESETS, build

    dev = torch.device(device)
    loss_fn = MultiTaskLoss(make_loss("SMFL", gamma=2.0, m=0.4))
    report: dict[str, Any] = {"device": str(dev), "steps": steps, "batch_size": batch_size, "presets": {},
                              "passed": True}
    for preset in presets:
        torch.manual_seed(0)
        model = build(preset).to(dev).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
        c = PRESETS[preset]
        gen = torch.Generator().manual_seed(1)
        entry: dict[str, Any] = {"first_nonfinite_step_cudnn": None, "nonfinite_steps_default": 0,
                                 "max_rel_grad_diff": 0.0, "attention_ops": {}}

        def grads(kernels: str, x: Any, y: Any, step: int) -> tuple[Any, float]:
            opt.zero_grad(set_to_none=True)
            torch.manual_seed(1000 + step)  # the same dropout masks for both kernel sets
            with _attention_kernels(kernels), torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
                loss, _ = loss_fn(model(x), y)
            loss.backward()
            return torch.cat([p.grad.detach().float().flatten() for p in model.parameters() if p.grad is not None]), \
                float(loss.detach())

        for step in range(steps):
            x = torch.randn(batch_size, c.in_channels, c.T, c.num_joints, c.num_persons, generator=gen).to(dev)
            y = torch.randint(0, c.num_classes, (batch_size,), generator=gen).to(dev)
            if step == 0:
                for kernels in ATTENTION_KERNELS:
                    entry["attention_ops"][kernels] = _attention_ops(lambda: grads(kernels, x, y, step))
            g_cudnn, _ = grads("cudnn", x, y, step)
            g_default, loss = grads("default", x, y, step)  # last: opt.step() uses these gradients
            ok_default = bool(torch.isfinite(g_default).all())
            ok_cudnn = bool(torch.isfinite(g_cudnn).all())
            if not ok_default:
                entry["nonfinite_steps_default"] += 1
            elif not ok_cudnn:
                if entry["first_nonfinite_step_cudnn"] is None:
                    entry["first_nonfinite_step_cudnn"] = step + 1
            else:
                rel = float((g_cudnn - g_default).norm() / g_default.norm().clamp_min(1e-30))
                entry["max_rel_grad_diff"] = max(entry["max_rel_grad_diff"], rel)
            if ok_default:
                opt.step()
        entry["final_loss"] = loss
        entry["cudnn_ran"] = any("cudnn" in op for op in entry["attention_ops"]["cudnn"])
        entry["ok"] = (entry["first_nonfinite_step_cudnn"] is None and entry["nonfinite_steps_default"] < steps
                       and (entry["cudnn_ran"] or dev.type != "cuda"))
        report["passed"] &= entry["ok"]
        report["presets"][preset] = entry
        log(f"[check-kernels {device}] {preset}: " + json.dumps(entry, default=str))
    report.update(_header())
    return report


# ====================================================================================================================
# Suites
# ====================================================================================================================
@dataclass
class Suite:
    description: str
    configs: list[BenchConfig]
    data: dict[str, Any] | None = None  # {"preset": ..., "batch_size": ..., "T": ...} for bench_data
    goal: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None
    timeout_s: float = 600.0


def _cpu_goal(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Fused non-local: peak memory <= 1/4 of the reference implementation's, and a step no slower."""
    by = {r["config"]["nonlocal_impl"]: r for r in rows if "train" in r}
    if set(by) != {"fused", "reference"}:
        return {"passed": False, "reason": "a configuration failed: " +
                "; ".join(f"{r['name']}: {r.get('error')}" for r in rows if "error" in r)}
    f, r = by["fused"]["train"], by["reference"]["train"]
    mem_ratio = f["peak_memory_bytes"] / r["peak_memory_bytes"]
    time_ratio = f["step_time_s_median"] / r["step_time_s_median"]
    out = {
        "memory_ratio_fused_over_reference": mem_ratio, "memory_goal": "<= 0.25", "memory_ok": mem_ratio <= 0.25,
        "step_ratio_fused_over_reference": time_ratio, "speed_goal": "<= 1.0 (wall and CPU time)",
    }
    if "step_cpu_time_s_median" in f and "step_cpu_time_s_median" in r:
        cpu_ratio = f["step_cpu_time_s_median"] / r["step_cpu_time_s_median"]
        out["step_cpu_time_ratio_fused_over_reference"] = cpu_ratio
        out["speed_ok"] = time_ratio <= 1.0 and cpu_ratio <= 1.0
    else:
        out["speed_ok"] = time_ratio <= 1.0
    out["passed"] = out["memory_ok"] and out["speed_ok"]
    return out


_GPU_COMMON: dict[str, Any] = dict(device="cuda", precision="bf16", steps=15, warmup=4, threads=4)
_GPU_NTU: dict[str, Any] = dict(preset="ntu", mode="train", **_GPU_COMMON)
_FAST: dict[str, Any] = dict(compile=True, channels_last=True)


def _gpu_suite() -> list[BenchConfig]:
    """Issue 6's goal rows, most important first (a suite cut short by its budget keeps the first ones): the plain
    eager path at both batch sizes, then the candidate fast paths — ``torch.compile`` on NHWC feature maps, with
    CUDA graphs (compile mode reduce-overhead) at the launch-bound batch 32, with cuDNN attention, with fused Adam.
    ``_gpu_goal`` judges the best finite row against the goals. What each option adds alone: ``gpu-ablation``."""
    return [
        BenchConfig(batch_size=32, **{**_GPU_NTU, "mode": "both"}),  # the plain eager path (goal: in the same run)
        BenchConfig(batch_size=128, **{**_GPU_NTU, "mode": "both"}),
        BenchConfig(batch_size=128, **_FAST, **_GPU_NTU),
        BenchConfig(batch_size=32, compile_mode="reduce-overhead", **_FAST, **_GPU_NTU),
        BenchConfig(batch_size=128, attention_kernels="cudnn", **_FAST, **_GPU_NTU),
        BenchConfig(batch_size=32, compile_mode="reduce-overhead", attention_kernels="cudnn", fused_adam=True,
                    **_FAST, **_GPU_NTU),
    ]


def _gpu_ablation_suite() -> list[BenchConfig]:
    """Each option alone against the plain path (kept in the package only where it gains), and the context rows:
    reference non-local (memory), local-only model (the non-local modules' share), Kinetics, fp32."""
    return [
        BenchConfig(batch_size=128, compile=True, **_GPU_NTU),
        BenchConfig(batch_size=32, compile=True, **_GPU_NTU),
        BenchConfig(batch_size=128, channels_last=True, **_GPU_NTU),
        BenchConfig(batch_size=32, fused_adam=True, **_GPU_NTU),
        BenchConfig(batch_size=128, attention_kernels="cudnn", **_GPU_NTU),
        BenchConfig(batch_size=32, nonlocal_impl="reference", **_GPU_NTU),
        BenchConfig(batch_size=128, m1=0, **_FAST, **_GPU_NTU),
        BenchConfig(preset="kinetics", batch_size=128, **{**_GPU_COMMON, "mode": "both"}),
        BenchConfig(batch_size=32, **{**_GPU_NTU, "precision": "fp32"}),
    ]


GPU_GOAL = {32: 1_000.0, 128: 2_000.0}  # issue 6: ntu preset, bf16, training samples/s on one H100/H200


def _runnable(row: dict[str, Any], preset: str) -> bool:
    """A training row of ``preset``'s own model (m1 of the preset) with a finite loss, measured with what ``fit()``
    can run: every option but cuDNN attention, which the package leaves out (``slnl.models.nonlocal_``)."""
    c = row.get("config", {})
    return (bool(row.get("train_samples_per_s")) and c.get("preset") == preset and c.get("m1") is None
            and c.get("attention_kernels", "default") == "default"
            and row.get("train", {}).get("loss_finite", True) is not False)


def _gpu_goal(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Best ntu bf16 (m1 = preset) training rate per batch size against issue 6's goals, beside the plain eager path
    of the same run. Only rows ``fit()`` can run count (``_runnable``: finite loss, no cuDNN attention); the best
    cuDNN-attention row is reported beside, for the decision whether to let the package use it."""
    out: dict[str, Any] = {}
    for bs, goal in GPU_GOAL.items():
        same = [r for r in rows if "train" in r and r["config"]["precision"] == "bf16"
                and r["config"]["batch_size"] == bs and r["config"]["nonlocal_impl"] == "fused"]
        ok_rows = [r for r in same if _runnable(r, "ntu")]
        plain = next((r for r in ok_rows if BenchConfig(**r["config"]).options == "-"), None)
        best = max(ok_rows, key=lambda r: r["train_samples_per_s"], default=None)
        entry: dict[str, Any] = {"goal_samples_per_s": goal}
        if best is not None:
            entry.update(best=best["name"], best_samples_per_s=best["train_samples_per_s"],
                         best_mfu=best["train"].get("mfu"), met=best["train_samples_per_s"] >= goal)
        cudnn = [r for r in same if r["config"].get("attention_kernels") == "cudnn" and r["config"]["m1"] is None
                 and r["config"]["preset"] == "ntu" and r["train"].get("loss_finite")]
        if cudnn:
            c = max(cudnn, key=lambda r: r["train_samples_per_s"])
            entry.update(best_with_cudnn_attention=c["name"], best_with_cudnn_attention_samples_per_s=c[
                "train_samples_per_s"])
        if plain is not None:
            entry.update(plain_eager_samples_per_s=plain["train_samples_per_s"], plain_eager_mfu=plain["train"].get("mfu"))
            if best is not None:
                entry["speedup_over_plain"] = best["train_samples_per_s"] / plain["train_samples_per_s"]
        out[f"batch_{bs}"] = entry
    out["passed"] = all(e.get("met", False) for e in out.values() if isinstance(e, dict))
    return out


SUITES: dict[str, Suite] = {
    "cpu-goal": Suite(
        "NTU preset, m1=6, batch 4, fp32 training step on CPU (1 thread): fused vs reference non-local. "
        "Goal: fused peak memory <= 1/4 of reference, and not slower.",
        [BenchConfig(preset="ntu", batch_size=4, m1=6, nonlocal_impl=impl, precision="fp32", device="cpu",
                     steps=5, warmup=1, mode="train", threads=1) for impl in ("fused", "reference")],
        goal=_cpu_goal, timeout_s=900.0,
    ),
    "cpu-smoke": Suite(
        "The cpu preset, batch 4, train and inference, fused vs reference, on CPU: a quick check of the harness.",
        [BenchConfig(preset="cpu", batch_size=4, nonlocal_impl=impl, device="cpu", steps=3, warmup=1, mode="both")
         for impl in ("fused", "reference")],
        data={"preset": "cpu", "batch_size": 4}, timeout_s=300.0,
    ),
    "cpu-options": Suite(
        "The cpu preset, batch 16, fp32 training on CPU (1 thread): the plain path against NHWC feature maps and "
        "fused Adam, alone and together (what each option gains here; the GPU suites measure them there).",
        [BenchConfig(preset="cpu", batch_size=16, device="cpu", steps=10, warmup=2, mode="train", threads=1,
                     channels_last=cl, fused_adam=fa) for cl, fa in ((False, False), (True, False), (False, True),
                                                                      (True, True))],
        timeout_s=300.0,
    ),
    "gpu": Suite(
        "CUDA, bf16, ntu preset: the plain eager path and the candidate fast paths (compile + NHWC, CUDA graphs, "
        "cuDNN attention, fused Adam) at batch 32 and 128; data pipeline at batch 32. Goal: issue 6's samples/s.",
        _gpu_suite(), data={"preset": "ntu", "batch_size": 32, "workers": 4}, goal=_gpu_goal, timeout_s=120.0,
    ),
    "gpu-ablation": Suite(
        "CUDA, bf16 unless noted: each option alone (compile, NHWC, fused Adam, cuDNN attention), the reference "
        "non-local, the local-only model (m1=0), Kinetics batch 128, an fp32 point.",
        _gpu_ablation_suite(), timeout_s=120.0,
    ),
}


def _preset_T(preset: str) -> int:
    from slnl.models import PRESETS

    return int(PRESETS[preset].T)


def _header() -> dict[str, Any]:
    import torch

    return {"torch": torch.__version__, "commit": git_commit(), "commit_dirty": _slnl_dirty(),
            "python": platform.python_version(), "host": platform.node(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def _slnl_dirty() -> bool | None:
    """Whether the measured package differs from ``commit`` (uncommitted changes under slnl/)."""
    try:
        r = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "slnl"], cwd=REPO_ROOT, capture_output=True,
                           timeout=10)
        return {0: False, 1: True}.get(r.returncode)
    except Exception:
        return None


def run_suite(name: str, isolate: bool = True, data_store: str | None = "synthetic",
              only_device: str | None = None, out_path: str | os.PathLike | None = None,
              budget_s: float | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every configuration of ``SUITES[name]`` (each in its own subprocess when ``isolate``).

    ``out_path`` is rewritten (atomically) after every configuration, so that a run cut short keeps what it measured.
    ``budget_s`` bounds the whole suite: each configuration's timeout is the smaller of the suite's and what is left,
    and a configuration with under 20 s left is recorded as skipped.
    """
    suite = SUITES[name]
    t_start = time.perf_counter()
    out: dict[str, Any] = {"suite": name, "description": suite.description, **_header(), "results": []}
    rows: list[dict[str, Any]] = out["results"]

    def save() -> None:
        if out_path is not None:
            atomic_write_json(out_path, out)

    for cfg in suite.configs:
        if only_device:
            cfg = dataclasses.replace(cfg, device=only_device)
        left = math.inf if budget_s is None else budget_s - (time.perf_counter() - t_start)
        if left < 20:
            rows.append({**_header(), "name": cfg.name, "config": dataclasses.asdict(cfg),
                         "error": f"skipped: {max(left, 0):.0f} s of the suite's {budget_s:.0f} s budget left"})
            log(f"[bench {name}] {cfg.name}: skipped (budget)")
            continue
        log(f"[bench {name}] {cfg.name} ...")
        row = measure_isolated(cfg, min(suite.timeout_s, left)) if isolate else _safe_measure(cfg)
        log(f"[bench {name}] {cfg.name}: {_one_line(row)}")
        rows.append({**_header(), **row})
        save()
    if suite.goal:
        out["goal"] = suite.goal(rows)
    if suite.data and data_store and data_store != "none":
        dev = only_device or suite.configs[0].device
        try:
            store = _resolve_store(data_store)
            d = bench_data(store, suite.data["batch_size"], _preset_T(suite.data["preset"]), device=dev,
                           workers=suite.data.get("workers", 2))
            _attach_data_vs_step(d, rows, suite.data["preset"])
            out["data_pipeline"] = d
        except Exception as e:
            out["data_pipeline"] = {"error": f"{type(e).__name__}: {e}"}
        log(f"[bench {name}] data pipeline: {json.dumps(out['data_pipeline'], default=str)[:600]}")
    out["suite_wall_s"] = time.perf_counter() - t_start
    save()
    return out


def _safe_measure(cfg: BenchConfig) -> dict[str, Any]:
    try:
        return measure(cfg)
    except Exception as e:
        return {"name": cfg.name, "config": dataclasses.asdict(cfg), "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc()}


def _resolve_store(data: str) -> Path:
    if data == "synthetic":
        from slnl.data import synthetic

        return Path(synthetic.ensure_default())
    from slnl.data import Store

    return Store(data).root  # opening it validates the store, with errors that name the missing file


def _one_line(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"ERROR {row['error']}"
    parts = []
    for mode in ("train", "infer"):
        if mode in row:
            r = row[mode]
            parts.append(f"{mode} {r['samples_per_s']:.1f} samples/s (step {r['step_time_s_median'] * 1e3:.1f} ms), "
                         f"peak {_mib(r['peak_memory_bytes'])} MiB, {r['flops_per_sample'] / 1e9:.2f} GFLOP/sample"
                         + (f", MFU {100 * r['mfu']:.1f}%" if r.get("mfu") is not None else ""))
    return "; ".join(parts)


def _options(config: dict[str, Any]) -> str:
    """``BenchConfig.options`` of a row's stored config (rows written before an option existed lack its key)."""
    fields = {f.name for f in dataclasses.fields(BenchConfig)}
    try:
        return BenchConfig(**{k: v for k, v in config.items() if k in fields}).options
    except (TypeError, ValueError):
        return "?"


def _mib(b: float | None) -> str:
    return "–" if b is None else f"{b / 2**20:.1f}"


# ====================================================================================================================
# Markdown
# ====================================================================================================================
def _rows_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["results"] if "results" in doc else [doc]


def render_markdown(results_dir: str | os.PathLike = RESULTS_DIR) -> str:
    """One table of every row in ``results_dir/*.json``, with the device each row came from."""
    results_dir = Path(results_dir)
    lines = [
        "# Benchmarks",
        "",
        "Generated by `slnl bench --md` from the JSON files in this folder; method in `benchmarks/README.md` "
        "(random inputs of the preset's shape, SMFL multi-task loss + Adam, median step time; peak memory: "
        "`torch.cuda.max_memory_allocated` on CUDA, resident tensors + VmHWM growth in a fresh process on CPU; "
        "FLOPs by `FlopCounterMode`, forward+backward for training).",
        "",
        "| file | device | preset | batch | m1 | non-local | precision | options | train samples/s | train step (ms) | "
        "infer samples/s | peak memory (MiB) | GFLOP/sample (train) | MFU train | torch | commit |",
        "| --- | --- | --- | ---: | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    goals: list[str] = []
    flops: list[str] = []
    for path in sorted(results_dir.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e
        if isinstance(doc, dict) and "forward_flops_per_sample" in doc:
            flops.append(f"`{path.name}` ({doc.get('commit', '?')[:8]}): " + render_flops(doc))
            continue
        if not isinstance(doc, dict) or ("results" not in doc and "config" not in doc):
            continue  # not a bench result (e.g. a device check report)
        for row in _rows_of(doc):
            c = row.get("config", {})
            dev = row.get("device", {})
            dname = dev.get("name", c.get("device", "?"))
            if dev.get("type") == "cpu":
                dname = f"{dname} ({dev.get('threads')} thr)"
            tr, inf = row.get("train", {}), row.get("infer", {})

            def f(v: Any, fmt: str) -> str:
                return "–" if v is None else format(v, fmt)

            if "error" in row:
                lines.append(f"| {path.name} | {dname} | {c.get('preset')} | {c.get('batch_size')} | "
                             f"{c.get('m1') if c.get('m1') is not None else 'preset'} | {c.get('nonlocal_impl')} | "
                             f"{c.get('precision')} | {_options(c)} | error: {row['error'][:80]} | | | | | | | |")
                continue
            lines.append(
                f"| {path.name} | {dname} | {c.get('preset')} | {c.get('batch_size')} | "
                f"{c.get('m1') if c.get('m1') is not None else 'preset'} | {c.get('nonlocal_impl')} | "
                f"{c.get('precision')} | {_options(c)} | "
                f"{f(row.get('train_samples_per_s'), '.3g')} | "
                f"{f(tr.get('step_time_s_median') and 1e3 * tr['step_time_s_median'], '.1f')} | "
                f"{f(row.get('infer_samples_per_s'), '.3g')} | "
                f"{_mib(row.get('peak_memory_bytes'))} | "
                f"{f(tr.get('flops_per_sample') and tr['flops_per_sample'] / 1e9, '.2f')} | "
                f"{f(tr.get('mfu') and 100 * tr['mfu'], '.1f')}{'%' if tr.get('mfu') is not None else ''} | "
                f"{row.get('torch', doc.get('torch', '?'))} | {(row.get('commit') or doc.get('commit') or '?')[:8]}"
                f"{'+dirty' if row.get('commit_dirty') else ''} |"
            )
        if "goal" in doc:
            goals.append(f"- `{path.name}` ({doc.get('suite')}): " + ", ".join(
                f"{k} = {v:.3f}" if isinstance(v, float) else f"{k} = {v}" for k, v in doc["goal"].items()))
        if isinstance(doc.get("data_pipeline"), dict) and "error" not in doc["data_pipeline"]:
            d = doc["data_pipeline"]
            parts = [f"{k}: {1e3 * v['s_per_batch']:.2f} ms/batch" for k, v in d.items()
                     if isinstance(v, dict) and "s_per_batch" in v]
            fr = [f"{e['row']}: " + ", ".join(f"{k.replace('_fraction_of_step', '')} {100 * v:.1f}%"
                                              for k, v in e.items() if k.endswith("_fraction_of_step"))
                  for e in d.get("vs_train_step", [])]
            goals.append(f"- `{path.name}` data pipeline (batch {d['batch_size']}, T={d['T']}): " + "; ".join(parts)
                         + ("; as a fraction of the training step — " + " | ".join(fr) if fr else ""))
    if goals:
        lines += ["", "## Goals and data pipeline", "", *goals]
    if flops:
        lines += ["", "## Where the FLOPs are (counted, device-independent: `slnl bench --flops-only`)", ""]
        lines += [t for f in flops for t in (f.rstrip("\n"), "")][:-1]
    return "\n".join(lines) + "\n"


# ====================================================================================================================
# Time to reproduce the paper's tables
# ====================================================================================================================
def _pick_throughput(rows: list[dict[str, Any]], preset: str, batch_size: int | None = None) -> dict[str, Any] | None:
    """The fastest training row of ``preset`` at the paper's batch size (else at any batch size) among the rows that
    ``fit()`` can run as measured (``_runnable``)."""
    batch_size = batch_size or PAPER_BATCH.get(preset)
    cands = [r for r in rows if _runnable(r, preset)]
    paper = [r for r in cands if r["config"].get("batch_size") == batch_size]
    pool = paper or cands
    return max(pool, key=lambda r: r["train_samples_per_s"]) if pool else None


def time_to_reproduce(rows: list[dict[str, Any]], tables: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per table and split: ``runs x epochs x training clips / throughput`` in hours.

    ``tables`` items: ``{"table", "dataset": "ntu60" | "kinetics", "split": "xsub" | "xview" | "default", "runs",
    "epochs"?, "batch_size"?}`` (``paper_tables()``). Throughput is the fastest measured training row of the matching
    preset at the paper's batch size (else any batch size). An estimate: it counts training steps only (no
    evaluation passes, no data-pipeline stalls) and uses one model's throughput for every row, while rows differ
    (``m1``, affinity, single-stream transforms) — the m1 = 0 and fused/reference rows of a suite show by how much.
    """
    out = []
    for t in tables:
        preset = "kinetics" if t["dataset"] == "kinetics" else "ntu"
        clips = TRAIN_CLIPS.get((t["dataset"], t["split"]))
        if clips is None:
            raise ValueError(f"time_to_reproduce: no training-clip count for dataset {t['dataset']!r}, "
                             f"split {t['split']!r}; known: {sorted(TRAIN_CLIPS)}")
        row = _pick_throughput(rows, preset, t.get("batch_size"))
        epochs = int(t.get("epochs", PAPER_EPOCHS[preset]))
        entry = {**t, "preset": preset, "epochs": epochs, "clips": clips,
                 "samples": t["runs"] * epochs * clips, "throughput": None, "hours": None, "from_row": None}
        if row is not None:
            entry["throughput"] = row["train_samples_per_s"]
            entry["hours"] = entry["samples"] / row["train_samples_per_s"] / 3600
            entry["from_row"] = row["name"]
            entry["device"] = row.get("device", {}).get("name")
        out.append(entry)
    return out


def render_time_to_reproduce(entries: list[dict[str, Any]]) -> str:
    lines = ["| table | dataset | split | runs | epochs | clips | samples | throughput (samples/s) | hours | "
             "from row | device |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    total = 0.0
    for e in entries:
        hours = "–" if e["hours"] is None else f"{e['hours']:.1f}"
        thr = "–" if e["throughput"] is None else f"{e['throughput']:.1f}"
        total += e["hours"] or 0.0
        lines.append(f"| {e['table']} | {e['dataset']} | {e['split']} | {e['runs']} | {e['epochs']} | {e['clips']} | "
                     f"{e['samples']:,} | {thr} | {hours} | {e['from_row'] or 'no matching row'} | "
                     f"{e.get('device') or '–'} |")
    lines.append(f"| **total** | | | | | | | | **{total:.1f}** | | |")
    return "\n".join(lines) + "\n"


def paper_tables(seeds: int = 1) -> list[dict[str, Any]]:
    """Runs per (table, split) from ``slnl.experiments``: its runnable rows x ``seeds``, at the ``paper`` scale."""
    from slnl import experiments

    return experiments_to_runs(experiments.TABLES.values(), experiments.SCALES["paper"], seeds)


def experiments_to_runs(tables: Iterable[Any], scale: Any, seeds: int = 1) -> list[dict[str, Any]]:
    """One entry per (table, split) of the paper: NTU tables report CS and CV (two trainings per row), Kinetics
    tables top-1/top-5 of its one split. Published (non-runnable) rows cost nothing. A row shared by two tables
    (a baseline) is counted in both, as the sweep runs each table on its own."""
    out = []
    for t in tables:
        runs = sum(1 for r in t.rows if r.runnable) * seeds
        if runs == 0:
            continue
        splits = ("xsub", "xview") if tuple(t.columns) == ("CS", "CV") else ("default",)
        for split in splits:
            out.append({"table": t.name, "dataset": t.paper_dataset, "split": split, "runs": runs,
                        "epochs": int(scale.epochs[t.family]), "batch_size": scale.batch_size[t.family]})
    return out


# ====================================================================================================================
# CLI
# ====================================================================================================================
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slnl bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu", help="model preset: cpu | ntu | kinetics (default cpu)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default: 4 on CPU, the paper's on CUDA)")
    p.add_argument("--m1", type=int, default=None, help="number of SLnL blocks (default: the preset's)")
    p.add_argument("--nonlocal", dest="nonlocal_impl", choices=NONLOCAL_IMPLS, default="fused")
    p.add_argument("--recompute", choices=("auto", "always", "never"), default="auto",
                   help="fused non-local: recompute q/k/v in backward (auto: on CPU, off on CUDA)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--compile-mode", choices=COMPILE_MODES, default="default",
                   help="torch.compile mode (reduce-overhead: CUDA graphs); implies --compile unless 'default'")
    p.add_argument("--channels-last", action="store_true", help="blocks on NHWC feature maps (ModelConfig)")
    p.add_argument("--attention-kernels", choices=ATTENTION_KERNELS, default="default",
                   help="cudnn: let the fused non-local use cuDNN attention too (left out by default)")
    p.add_argument("--fused-adam", action="store_true", help="torch.optim.Adam(fused=True)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available)")
    p.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps (default 3)")
    p.add_argument("--mode", choices=MODES, default="train")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: $OMP_NUM_THREADS or 1)")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (overrides the table)")
    p.add_argument("--data", default="synthetic",
                   help="bench the data pipeline on this prepared store; 'synthetic' (default) or 'none'")
    p.add_argument("--json", default=None, help="write the result here (atomic)")
    p.add_argument("--md", default=None, help="regenerate this markdown file from all *.json beside it")
    p.add_argument("--md-only", action="store_true", help="only regenerate --md; measure nothing")
    p.add_argument("--suite", choices=sorted(SUITES), default=None, help="run a predefined list of configurations")
    p.add_argument("--isolate", choices=("auto", "yes", "no"), default="auto",
                   help="one subprocess per configuration (auto: yes; needed for CPU peak memory)")
    p.add_argument("--out-dir", default=None, help="where --suite writes <suite>.json (default results/bench)")
    p.add_argument("--time-to-reproduce", action="store_true",
                   help="print training time per paper table from the throughput in --from")
    p.add_argument("--from", dest="from_json", default=None, help="bench JSON for --time-to-reproduce")
    p.add_argument("--seeds", type=int, default=1, help="--time-to-reproduce: seeds per row (default 1)")
    p.add_argument("--budget-s", type=float, default=None, help="--suite: wall-clock budget for all configurations")
    p.add_argument("--check", metavar="DEVICE", default=None,
                   help="correctness check: fused/reference on DEVICE vs a float64 CPU reference (then exit)")
    p.add_argument("--check-presets", default="cpu,ntu", help="presets for --check (default cpu,ntu)")
    p.add_argument("--check-kernels", metavar="DEVICE", default=None,
                   help="bf16 training steps with and without cuDNN attention on DEVICE: finite, how different")
    p.add_argument("--check-kernels-presets", default="kinetics,ntu", help="presets for --check-kernels")
    p.add_argument("--check-kernels-steps", type=int, default=30, help="steps per preset for --check-kernels")
    p.add_argument("--flops-only", action="store_true",
                   help="only count FLOPs per sample by part and operator for --preset (any device: no timing)")
    p.add_argument("--worker", nargs=2, metavar=("CONFIG", "OUT"), help=argparse.SUPPRESS)
    return p


def _write_json(path: str | None, doc: dict[str, Any]) -> None:
    if path:
        atomic_write_json(path, doc)
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        argv = argv[1:]
    args = _parser().parse_args(argv)
    if args.worker:
        return _worker(*args.worker)

    if args.time_to_reproduce:
        if not args.from_json:
            print("slnl bench --time-to-reproduce: --from FILE (a bench JSON) is required", file=sys.stderr)
            return 2
        doc = json.loads(Path(args.from_json).read_text())
        print(render_time_to_reproduce(time_to_reproduce(_rows_of(doc), paper_tables(args.seeds))), end="")
        return 0

    if args.check:
        rep = check_device(args.check, tuple(p for p in args.check_presets.split(",") if p))
        _write_json(args.json, rep)
        print(f"check {args.check}: {'PASSED' if rep['passed'] else 'FAILED'}")
        return 0 if rep["passed"] else 1

    if args.flops_only:
        rep = flops_report(args.preset, m1=args.m1)
        print(render_flops(rep), end="")
        _write_json(args.json, rep)
        return 0

    if args.check_kernels:
        rep = check_attention_kernels(args.check_kernels, tuple(p for p in args.check_kernels_presets.split(",") if p),
                                      steps=args.check_kernels_steps, batch_size=args.batch_size or 16)
        _write_json(args.json, rep)
        print(f"check-kernels {args.check_kernels}: cuDNN attention {'finite' if rep['passed'] else 'NOT finite'}")
        return 0 if rep["passed"] else 1

    if args.md_only:
        md = Path(args.md or RESULTS_DIR / "README.md")
        atomic_write_text(md, render_markdown(md.parent))
        print(f"wrote {md}")
        return 0

    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    isolate = args.isolate != "no"

    if args.suite:
        out_dir = Path(args.out_dir) if args.out_dir else RESULTS_DIR
        path = Path(args.json) if args.json else out_dir / f"{args.suite}.json"
        doc = run_suite(args.suite, isolate=isolate, data_store=args.data, only_device=args.device, out_path=path,
                        budget_s=args.budget_s)
        print(f"wrote {path}")
        if "goal" in doc:
            print("goal: " + json.dumps(doc["goal"]))
    else:
        import torch

        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        bs = args.batch_size or (PAPER_BATCH.get(args.preset, 4) if device.startswith("cuda") else 4)
        cfg = BenchConfig(preset=args.preset, batch_size=bs, m1=args.m1, nonlocal_impl=args.nonlocal_impl,
                          recompute=args.recompute,
                          precision=args.precision, compile=args.compile or args.compile_mode != "default",
                          compile_mode=args.compile_mode, channels_last=args.channels_last,
                          attention_kernels=args.attention_kernels, fused_adam=args.fused_adam,
                          device=device, steps=args.steps,
                          warmup=args.warmup, mode=args.mode, threads=threads, peak_tflops=args.peak_tflops)
        row = {**_header(), **(measure_isolated(cfg) if isolate else _safe_measure(cfg))}
        print(f"{cfg.name}: {_one_line(row)}")
        if args.data and args.data != "none" and "error" not in row:
            try:
                d = bench_data(_resolve_store(args.data), bs, _preset_T(args.preset), device=device)
                _attach_data_vs_step(d, [row], args.preset)
                row["data_pipeline"] = d
            except Exception as e:
                row["data_pipeline"] = {"error": f"{type(e).__name__}: {e}"}
            print("data pipeline: " + json.dumps(row["data_pipeline"], default=str)[:800])
        path = Path(args.json) if args.json else None
        if path:
            atomic_write_json(path, row)
            print(f"wrote {path}")
        doc = row
    if args.md:
        md = Path(args.md)
        atomic_write_text(md, render_markdown(md.parent))
        print(f"wrote {md}")
    rows = _rows_of(doc)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
