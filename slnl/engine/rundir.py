"""The run directory: what it holds (``RUN_FILES``; contents documented in ``slnl.engine.fit``), what ``fit``
returns (``Result``), and whether a directory is trained from scratch, resumed, or returned as finished.

Finished or half-finished work is never replaced by accident: without ``resume`` or ``overwrite`` a directory that
holds a run is an error, and resuming with a configuration that trains something else is an error too.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slnl.engine import distributed as D
from slnl.engine.config import TrainConfig, config_diff

RESULT_SCHEMA_VERSION = 2  # 2: per-epoch evaluation under "test" (was "val"); no "best" block, no best.pt
RUN_FILES = ("config.yaml", "metrics.jsonl", "metrics.csv", "result.json", "last.pt")
# Written by earlier versions (schema 1): removed, like RUN_FILES, when a directory is started afresh.
OLD_RUN_FILES = ("best.pt",)


@dataclass
class Result:
    """What ``fit`` returns: final test ``top1`` / ``top5`` (fractions), the run directory, the per-epoch history and
    the full ``result.json`` content."""

    top1: float
    top5: float
    run_dir: Path
    history: list[dict[str, Any]]
    result: dict[str, Any]

    @classmethod
    def from_result(cls, result: dict[str, Any], run_dir: Path) -> "Result":
        return cls(result["top1"], result["top5"], Path(run_dir), result["metrics"], result)

    @classmethod
    def load(cls, run_dir: Path) -> "Result":
        return cls.from_result(json.loads((Path(run_dir) / "result.json").read_text()), run_dir)


def prepare(cfg: TrainConfig, info: D.DistInfo) -> tuple[str, Path]:
    """``(action, run directory)``, action ∈ {'fresh', 'resume', 'finished'}; rank 0 decides, all follow. A fresh
    directory is created and emptied of run files; ``cfg.out`` is set to the directory."""
    run_dir = Path(cfg.out) if cfg.out else cfg.default_out()
    cfg.out = str(run_dir)
    decision: tuple[str, str | None] = ("fresh", None)
    if info.is_main:
        decision = _decide(cfg, run_dir)
    decision = D.broadcast_object(decision, info)
    if decision[1] is not None:
        raise FileExistsError(decision[1]) if decision[0] == "exists" else ValueError(decision[1])
    if decision[0] == "fresh" and info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for f in RUN_FILES + OLD_RUN_FILES:
            (run_dir / f).unlink(missing_ok=True)
    D.barrier(info)
    return decision[0], run_dir


def _decide(cfg: TrainConfig, d: Path) -> tuple[str, str | None]:
    finished, has_ckpt = (d / "result.json").is_file(), (d / "last.pt").is_file()
    if cfg.overwrite:
        return "fresh", None
    if not (finished or has_ckpt):
        return ("resume" if cfg.resume and (d / "config.yaml").is_file() else "fresh"), None
    if not cfg.resume:
        what = "a finished run (result.json)" if finished else "an unfinished run (last.pt)"
        return "exists", (f"{d} holds {what}; pass resume=True (--resume) to continue or return it, or "
                          "overwrite=True (--overwrite) to start again from scratch")
    if not (d / "config.yaml").is_file():
        return "mismatch", f"{d} has last.pt but no config.yaml; cannot tell what it trained (overwrite=True?)"
    saved = TrainConfig.load(d / "config.yaml")
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
