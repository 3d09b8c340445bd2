"""The run directory: what it holds (``RUN_FILES``; contents documented in ``slnl.engine.fit``), what ``fit``
returns (``Result``), whether a directory is trained from scratch, resumed, or returned as finished, and whether
the store a run recorded still holds its data (``check_store``).

Finished or half-finished work is never replaced by accident: without ``resume`` or ``overwrite`` a directory that
holds a run is an error, and resuming with a configuration that trains something else, or on a store whose content
changed since the run recorded its fingerprint, is an error too. A fresh directory is created only once everything
the run needs has been built (``start_fresh``), so a run refused at the start leaves nothing behind.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, TypedDict

from slnl.data.errors import StoreChangedError, StoreError
from slnl.data.store import check_fingerprint
from slnl.engine import distributed as D
from slnl.engine.checkpoint import FILE as CHECKPOINT
from slnl.engine.config import TrainConfig, config_diff
from slnl.utils import resolve_path

# 4: bn_stats, by_bn_stats; 3: store_fingerprint; 2: per-epoch evaluation under "test", no "best" block, no best.pt
RESULT_SCHEMA_VERSION = 4
RUN_FILES = ("config.yaml", "metrics.jsonl", "metrics.csv", "result.json", CHECKPOINT)
RUN_DIRS = ("tensorboard",)  # written with TrainConfig.tensorboard
# Written by earlier versions (schema 1): removed, like RUN_FILES, when a directory is started afresh.
OLD_RUN_FILES = ("best.pt",)


class RunResult(TypedDict):
    """``result.json``: written once by ``slnl.engine.trainer.Trainer`` when a run has finished (its presence marks a
    finished run); ``schema`` is ``RESULT_SCHEMA_VERSION``."""

    schema: int
    # fractions in [0, 1] on the test subset's central crops, of the **final** model (after the last epoch), as the
    # paper reports; no epoch is selected on the test split (the per-epoch numbers are in ``metrics``)
    top1: float
    top5: float
    bn_stats: str  # the BN statistics top1 / top5 were evaluated with: running | recompute (TrainConfig.bn_stats)
    by_bn_stats: dict[str, dict[str, float]]  # {running, recomputed}: {top1, top5} of the final model with each
    last_epoch: int
    epochs: int
    n_test: int
    n_train: int
    split: str
    dataset: Optional[str]
    store: str
    store_fingerprint: str  # slnl.data.store.fingerprint: what evaluate, a resumed run and the report check
    per_class_accuracy: list[Optional[float]]  # over classes; null for a class without test samples
    class_names: list[str]
    confusion: list[list[int]]  # confusion[true][predicted], counts of the final evaluation
    test_loss: dict[str, float]  # {total, p, v, c}
    metrics: list[dict[str, Any]]  # the per-epoch history, as in metrics.jsonl
    config: dict[str, Any]  # the resolved TrainConfig
    model_config: dict[str, Any]  # the full ModelConfig that was built
    num_params: int
    timings: dict[str, Optional[float]]  # train_s (sum of epochs), eval_s, wall_s (this session), samples_per_s
    software: dict[str, Any]  # slnl / python / torch / numpy / CUDA versions
    git_commit: Optional[str]
    device: dict[str, Any]  # type, name, count, world_size, precision, data_mode, torch_threads, cpu_capability
    finished_at: str  # UTC ISO time


@dataclass
class Result:
    """What ``fit`` returns: final test ``top1`` / ``top5`` (fractions), the run directory, the per-epoch history and
    the full ``result.json`` content."""

    top1: float
    top5: float
    run_dir: Path
    history: list[dict[str, Any]]
    result: RunResult

    @classmethod
    def from_result(cls, result: RunResult, run_dir: Path) -> "Result":
        return cls(result["top1"], result["top5"], Path(run_dir), result["metrics"], result)

    @classmethod
    def load(cls, run_dir: Path) -> "Result":
        return cls.from_result(json.loads((Path(run_dir) / "result.json").read_text()), run_dir)


def prepare(cfg: TrainConfig, info: D.DistInfo) -> tuple[str, Path]:
    """``(action, run directory)``, action ∈ {'fresh', 'resume', 'finished'}; rank 0 decides, all follow, and every
    refusal is raised on every process. Nothing is written: a fresh directory is made by ``start_fresh`` once the
    run is ready to write. ``cfg.out`` is set to the directory; ``cfg.store_fingerprint`` must be the store's."""
    run_dir = resolve_path(cfg.out) if cfg.out else cfg.default_out()  # relative: to the working dir or $SLNL_HOME
    cfg.out = str(run_dir)
    decision: tuple[str, str | None] = ("fresh", None)
    if info.is_main:
        decision = _decide(cfg, run_dir)
    decision = D.broadcast_object(decision, info)
    kind, message = decision
    if message is not None:
        errors = {"exists": FileExistsError, "store": StoreChangedError, "unverifiable": StoreError}
        raise errors.get(kind, ValueError)(message)
    return kind, run_dir


def start_fresh(run_dir: Path, info: D.DistInfo) -> None:
    """Create the directory of a fresh run and remove the run files (and directories) a previous run left there;
    files that are not the engine's are kept."""
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for f in RUN_FILES + OLD_RUN_FILES:
            (run_dir / f).unlink(missing_ok=True)
        for d in RUN_DIRS:
            shutil.rmtree(run_dir / d, ignore_errors=True)
    D.barrier(info)


def check_store(cfg: TrainConfig, what: str, store: str | None = None) -> None:
    """Refuse, in one line, to use a run with a store (default: the one it trained on, ``cfg.data``) whose content
    fingerprint is not the one the run recorded (``StoreChangedError``), or a run that recorded none (``StoreError``:
    nothing could vouch that the data are the same). ``what`` names the run in the message."""
    store = store or cfg.data
    if not cfg.store_fingerprint:
        raise StoreError(f"{what} recorded no store fingerprint (written by an earlier slnl), so nothing tells "
                         f"whether {store} still holds the data it was trained on; train it again")
    check_fingerprint(store, cfg.store_fingerprint, what)


def _decide(cfg: TrainConfig, d: Path) -> tuple[str, str | None]:
    finished, has_ckpt = (d / "result.json").is_file(), (d / CHECKPOINT).is_file()
    if cfg.overwrite:
        return "fresh", None
    if not (finished or has_ckpt):
        return ("resume" if cfg.resume and (d / "config.yaml").is_file() else "fresh"), None
    if not cfg.resume:
        what = "a finished run (result.json)" if finished else f"an unfinished run ({CHECKPOINT})"
        return "exists", (f"{d} holds {what}; pass resume=True (--resume) to continue or return it, or "
                          "overwrite=True (--overwrite) to start again from scratch")
    if not (d / "config.yaml").is_file():
        return "mismatch", f"{d} has {CHECKPOINT} but no config.yaml; cannot tell what it trained (overwrite=True?)"
    saved = TrainConfig.load(d / "config.yaml")
    try:  # before the configuration: another store at the same path is other data, whatever the config says
        check_store(saved, f"run {d}", cfg.data)
    except StoreChangedError as e:
        return "store", str(e)
    except StoreError as e:
        return "unverifiable", str(e)
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
