"""What a run shows while it trains, wherever its output goes.

* One log line per finished epoch (logger ``slnl.engine``, rank 0): losses, test top-1 / top-5, learning rate, the
  epoch's time, the time elapsed in this session and an estimate of the time left until the whole run has finished
  (ETA, from this session's pace: ``Clock``). A log record is written and flushed whole, so the line reaches a
  terminal, a file, papermill's ``--log-output`` and ``slnl sweep`` alike. When nothing has configured logging (a
  script, a notebook kernel), ``ensure_output`` gives the ``slnl`` logger one handler to stderr, so these lines are
  never dropped; an application that configures logging (the CLI, pytest) keeps its own.
* A tqdm bar per epoch (samples, throughput, the epoch's ETA) only where there is a terminal (``progress=None``:
  stderr is a TTY): in a log file a bar's carriage returns are noise.
* Optional TensorBoard scalars (``TrainConfig.tensorboard``; rank 0) in ``<run>/tensorboard/``, one point per epoch:
  ``train/loss`` and ``train/loss_{p,v,c}`` (each head's L of Eq. 21), ``train/top1``, ``test/top1``, ``test/top5``,
  ``test/loss``, ``lr``, ``epoch_time_s``, ``samples_per_s`` — the columns of ``metrics.csv`` (``flat_row``), so
  the two never disagree.
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from slnl.engine.metrics import TEST, flat_row

log = logging.getLogger("slnl.engine")
TENSORBOARD_DIR = "tensorboard"
_NOT_SCALARS = ("epoch", "steps")  # metrics.csv columns that are positions, not measurements


class _CurrentStderr(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a record arrives (a notebook kernel or a test harness
    replaces it after the handler was made)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def ensure_output(is_main: bool) -> None:
    """Give the ``slnl`` logger a stderr handler (INFO on rank 0, WARNING elsewhere) when neither it nor the root
    logger has one, so that the per-epoch lines appear under papermill and in plain scripts too."""
    lib = logging.getLogger("slnl")
    if lib.handlers or logging.getLogger().handlers:
        return
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    lib.addHandler(handler)
    if lib.level == logging.NOTSET:
        lib.setLevel(logging.INFO if is_main else logging.WARNING)


def hms(seconds: float) -> str:
    """``3725.2`` → ``1:02:05``; ``?`` for an unknown duration."""
    if seconds != seconds or seconds == float("inf"):  # NaN / inf: no estimate yet
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Clock:
    """Time elapsed in this session and the estimated time to the end of the run.

    The pace is this session's: wall time (training, evaluation, checkpoints) per epoch's worth of optimiser steps
    run in this session, so the first epoch of a run resumed mid-epoch counts for the part it ran. The estimate is
    that pace times the epochs left."""

    def __init__(self, epochs: int, steps_per_epoch: int) -> None:
        self.t0 = time.perf_counter()
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.work = 0.0  # epochs' worth of steps run in this session

    def epoch_done(self, epoch: int, steps_run: int) -> tuple[float, float]:
        """After epoch ``epoch`` (1-based), of which this session ran ``steps_run`` steps: (elapsed s, ETA s)."""
        self.work += steps_run / self.steps_per_epoch
        elapsed = time.perf_counter() - self.t0
        pace = elapsed / self.work if self.work > 0 else float("nan")
        return elapsed, pace * (self.epochs - epoch) if epoch < self.epochs else 0.0


def epoch_line(entry: dict[str, Any], epochs: int, elapsed: float, eta: float) -> str:
    """The per-epoch log line of a ``metrics.jsonl`` entry."""
    train, test = entry["train"], entry.get(TEST)
    v = f"test top-1 {test['top1']:.4f} top-5 {test['top5']:.4f}" if test else "no eval"
    return (f"epoch {entry['epoch']}/{epochs}  loss {train['loss']['total']:.4f}  train top-1 {train['top1']:.4f}  "
            f"{v}  lr {entry['lr']:.3g}  {entry['epoch_time_s']:.1f}s  {entry['samples_per_s'] or 0.0:.0f} samples/s"
            f"  elapsed {hms(elapsed)}  ETA {hms(eta)}")


def bar(show: bool | None, total: int, initial: int, desc: str):
    """A tqdm bar over an epoch's samples, or None: shown when ``show`` is True, or when it is None and stderr is a
    terminal."""
    if not (show if show is not None else sys.stderr.isatty()):
        return None
    return tqdm(total=total, initial=initial, unit="sample", unit_scale=True, dynamic_ncols=True, leave=False,
                desc=desc)


def require_tensorboard() -> None:
    """``ValueError`` (one line, before any work) when TensorBoard scalars are asked for and cannot be written."""
    try:
        import torch.utils.tensorboard  # noqa: F401  optional dependency: only runs with tensorboard=True need it
    except ImportError as e:
        raise ValueError(f"tensorboard=True (--tensorboard) needs the tensorboard package, which cannot be imported "
                         f"({e}); install it with: pip install 'slnl[tensorboard]'") from None


class Scalars:
    """The run's TensorBoard event files (module docstring); one per session, in ``<run>/tensorboard/``."""

    def __init__(self, run_dir: Path, epochs_done: int) -> None:
        from torch.utils.tensorboard import SummaryWriter  # optional dependency (pip install 'slnl[tensorboard]')

        # A resumed run continues after its last finished epoch: purge_step hides any point a stopped session wrote
        # past it (an epoch it finished but did not checkpoint), so every epoch has one value.
        self.writer = SummaryWriter(str(run_dir / TENSORBOARD_DIR),
                                    purge_step=epochs_done + 1 if epochs_done else None)

    def epoch(self, entry: dict[str, Any]) -> None:
        row = flat_row(entry)
        for column, value in row.items():
            if column in _NOT_SCALARS or value is None:
                continue
            group, _, rest = column.partition("_")
            tag = f"{group}/{rest}" if group in ("train", "test") and rest else column
            self.writer.add_scalar(tag, value, entry["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
