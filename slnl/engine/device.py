"""Where and in what arithmetic a run executes: device, precision (autocast; float32 without TF32), determinism, seeds.

These are *how* a run executes, not *what* it trains; the training step (``slnl.engine.step``), evaluation and the
benchmark all take them from here, so the three agree on what ``precision="bf16"`` or ``device="auto"`` means.
"""
from __future__ import annotations

import contextlib
import os
import platform
import random
import warnings
from typing import ContextManager

import numpy as np
import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU. An explicit CUDA device without CUDA, or a name torch does not know,
    is a ``ValueError`` (a bad argument: the command line prints it as one line, before any work starts)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device={name!r}: expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available in this torch build ({torch.__version__})")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device={name!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → bf16 on a CUDA device that supports it, else fp32 (``slnl.engine.config``'s docstring: why).

    Whatever runs a model resolves its precision here first (``fit``, ``evaluate``, ``step.build``: the benchmark and
    the device checks), so this is also where the process is set to compute float32 as float32 (``strict_fp32``)."""
    strict_fp32()
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


def strict_fp32() -> None:
    """CUDA matmuls and cuDNN convolutions / RNNs on float32 tensors in IEEE float32, never TF32 (a 10-bit mantissa),
    whatever the precision: an fp32 run is fp32, and what a bf16 / fp16 run keeps in float32 (the frequency attention,
    the losses: ``slnl.engine.config``'s docstring) stays float32. The flags are process-global; the CPU's (oneDNN)
    are left as they are, so CPU arithmetic does not change.

    Newer torch documents per-operator flags (``torch.backends.cuda.matmul.fp32_precision``, …) and keeps the legacy
    ``allow_tf32`` switches beside them; reading a legacy switch raises while the two disagree (the benchmark's
    provenance reads them). The legacy setters write both, so they go first, their deprecation warning silenced;
    then cuDNN's per-operator flags are made explicit (the legacy setter leaves them to inherit the global one)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Please use the new API settings to control TF32")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if hasattr(torch.backends.cudnn, "conv"):
        torch.backends.cudnn.conv.fp32_precision = torch.backends.cudnn.rnn.fp32_precision = "ieee"


def autocast(precision: str, device: torch.device) -> ContextManager:
    """The forward's mixed-precision context: none for fp32, ``torch.autocast`` to bf16 / fp16 otherwise."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def determinism(on: bool):
    """Deterministic kernels inside the block when ``on`` (else cuDNN autotuning); the global flags are restored."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by deterministic cuBLAS
        torch.use_deterministic_algorithms(True, warn_only=True)  # CUDA ops without a deterministic kernel warn
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    else:
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest kernels
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch generators from one seed (the initial weights are drawn from torch's)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def device_name(device: torch.device) -> str:
    """The CUDA device's name, or the CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
