"""Peak memory of a step (``peak_memory_bytes``): the step's high point, weights, gradients, Adam state and the
batch included.

* CUDA: ``torch.cuda.max_memory_allocated()`` over the timed steps (the peak counter is reset after warm-up).
* CPU: the process's resident set cannot be split into "ours" and "the interpreter's", so it is measured as
  ``resident tensor bytes between steps`` (weights, gradients, Adam state, inputs: counted exactly) ``+ (VmHWM -
  VmRSS)`` over the timed steps, where VmHWM is the kernel's high-water mark of the resident set, reset after
  warm-up by writing ``5`` to ``/proc/self/clear_refs``. For this to see every step's buffers, each configuration
  runs in a fresh process with ``MALLOC_MMAP_THRESHOLD_=131072`` (``slnl.bench.measure.measure_isolated``): glibc
  then serves every large tensor by ``mmap`` and gives it back on free (the default *dynamic* threshold would keep
  freed buffers up to 32 MiB in the heap, and a later step would reuse them without raising VmHWM).
  ``step_peak_memory_bytes`` is the second term alone.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterable

import torch


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


def tensor_bytes(tensors: Iterable[Any]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (a storage shared by several views counted once)."""
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


class MemoryProbe:
    """Peak memory of the steps between ``start(resident)`` and ``stop()`` (the method: the module docstring)."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.cuda = device.type == "cuda"

    def start(self, resident: Callable[[], int]) -> None:
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
