"""What every benchmark file records about where its numbers came from: software, commit, host, date, device."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from typing import Any

import torch

from slnl.engine.device import device_name
from slnl.utils import git_commit, source_checkout


def header() -> dict[str, Any]:
    return {"torch": torch.__version__, "commit": git_commit(), "commit_dirty": _slnl_dirty(),
            "python": platform.python_version(), "host": platform.node(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def _slnl_dirty() -> bool | None:
    """Whether the measured package differs from ``commit`` (uncommitted changes under slnl/); ``None`` (unknown) for
    an installed copy: the working directory's repository, if any, is not the code that runs."""
    checkout = source_checkout()
    if checkout is None:
        return None
    try:
        r = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "slnl"], cwd=checkout, capture_output=True,
                           timeout=10)
        return {0: False, 1: True}.get(r.returncode)
    except (OSError, subprocess.SubprocessError):
        return None


def device_info(device: torch.device) -> dict[str, Any]:
    """The device and the settings that change its speed (TF32, cuDNN autotuning; CPU threads)."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {
            "type": "cuda", "name": device_name(device),
            "capability": f"{props.major}.{props.minor}", "memory_bytes": int(props.total_memory),
            "multiprocessors": int(props.multi_processor_count), "cuda": torch.version.cuda,
            "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        }
    return {"type": "cpu", "name": device_name(device), "threads": torch.get_num_threads(),
            "logical_cpus": os.cpu_count()}
