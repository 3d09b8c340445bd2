"""Stopping a run cleanly (SIGTERM / SIGINT → a checkpoint, then ``TrainingInterrupted``) and the fault injection
the tests use to prove that runs resume.

Fault injection (tests only): the environment variable ``SLNL_FAULT`` = ``kill@N`` (SIGKILL this process after
optimiser step N), ``term@N`` (send SIGTERM to itself after step N), ``nan@N`` (make step N's loss NaN);
``kind@N:R`` injects it in process (rank) R only. N counts optimiser steps from the start of the run (1-based).
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("slnl.engine")


class TrainingInterrupted(RuntimeError):
    """SIGTERM / SIGINT arrived; a checkpoint was written and the run can be resumed (``resume=True``)."""

    def __init__(self, message: str, signum: int, run_dir: Path):
        super().__init__(message)
        self.signum, self.run_dir = signum, run_dir


class StopSignals:
    """SIGTERM/SIGINT → a flag (``signum``) read at the next step boundary (with sync_every > 1 under DDP: the next
    synchronisation point); a second signal stops at once. The previous handlers are restored on exit."""

    def __init__(self) -> None:
        self.signum = 0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
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


class Fault:
    """``SLNL_FAULT`` for one process (see the module docstring); inert when the variable is unset."""

    def __init__(self, rank: int, spec: str | None = None):
        spec = os.environ.get("SLNL_FAULT") if spec is None else spec
        self.kind, self.step = None, 0
        if not spec:
            return
        try:
            kind, n = spec.split("@")
            n, _, only = n.partition(":")
            if kind not in ("kill", "term", "nan"):
                raise ValueError
            if not only or int(only) == rank:
                self.kind, self.step = kind, int(n)
        except ValueError:
            raise ValueError(f"SLNL_FAULT={spec!r}: expected kill@N, term@N or nan@N (optionally :RANK)") from None

    def poison(self, global_step: int) -> bool:
        """Whether step ``global_step``'s loss is to be made NaN."""
        return self.kind == "nan" and global_step == self.step

    def after_step(self, global_step: int) -> None:
        """Kill or signal this process once step ``global_step`` is done, if asked."""
        if global_step != self.step:
            return
        if self.kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.kind == "term":
            os.kill(os.getpid(), signal.SIGTERM)
