"""Where and in what arithmetic a run executes: device, precision (autocast), determinism, seeds.

These are *how* a run executes, not *what* it trains; the training step (``slnl.engine.step``), evaluation and the
benchmark all take them from here, so the three agree on what ``precision="bf16"`` or ``device="auto"`` means.
"""
from __future__ import annotations

import contextlib
import os
import platform
import random
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
    """``auto`` → bf16 on a CUDA device that supports it, else fp32 (``slnl.engine.config``'s docstring: why)."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


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
