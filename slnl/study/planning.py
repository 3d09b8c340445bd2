"""The run plan: each (table, row, split, seed) of a study as one typed :class:`RunSpec`, made once.

A spec holds everything about one run that is decided before it trains: the full, explicit ``TrainConfig``
(``slnl.recipes.config_for``: the scale's recipe, the paper's row on the split, the store, the run directory), the
result file it writes, what it trains as (``trained_as``: the configuration's identity and the full architecture,
the model built once, on the meta device) and the identity key under which runs are shared between tables and
locked. ``run_table`` (the notebooks) and ``slnl sweep`` both iterate over ``plan(...)``; ``Ledger`` (``ledger.py``)
decides from a spec whether it is finished, equal to a run done already, or being trained by another process.

Files (relative paths are relative to the working directory or ``$SLNL_HOME``, see ``slnl.utils.resolve_path``):

* ``<results_dir>/<table>/<slug>__<split>__seed<k>.json`` — the result file (``result_path``);
* ``<results_dir>/runs/<table>/<slug>__<split>__seed<k>/`` — the engine's run directory (``run_dir``);
* ``<results_dir>/runs/.locks/<key>.lock`` — held while a configuration trains.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from slnl import experiments as ex
from slnl import models, recipes
from slnl.data.store import fingerprint
from slnl.engine.config import TrainConfig
from slnl.engine.device import resolve_device, resolve_precision
from slnl.study.stores import resolve_store, table_splits
from slnl.utils import resolve_path

# ModelConfig fields the store decides when the run starts (its classes, joints, channels, persons): the store's
# content fingerprint is checked on its own (Ledger).
_STORE_SHAPED = ("num_classes", "num_joints", "in_channels", "num_persons")


@dataclass(frozen=True)
class Options:
    """What a study's run of a table is asked for: the notebooks' parameters (and ``slnl sweep``'s ``-p``)."""

    dataset: str = "synthetic"
    data_root: str | Path | None = None
    split: str | Sequence[str] | None = None  # None: the paper's splits the store has (``table_splits``)
    scale: str = "cpu"  # which recipe for the dataset (``slnl.recipes.recipe_for``)
    epochs: int | None = None  # None: the recipe's
    batch_size: int | None = None  # None: the recipe's
    seeds: Any = 0  # 0, "0,1,2" or a list
    device: str = "auto"
    results_dir: str | Path = "results"
    max_steps_per_epoch: int | None = None
    overwrite: bool = False
    progress: bool = False


@dataclass(frozen=True)
class RunSpec:
    """One (table, row, split, seed) of a study, planned: its configuration, files and identity."""

    table: ex.Table
    row: ex.Row
    split: str  # label: CS, CV, default, …
    seed: int
    recipe: str
    config: TrainConfig  # resolved; ``out`` is the run directory
    result_path: Path
    trained_as: dict[str, Any]
    key: str  # config_key of ``trained_as`` and the epochs: equal for the rows that several tables share

    @property
    def tag(self) -> str:
        return f"{self.table.name} {self.row.slug} {self.split} seed{self.seed}"


def result_path(results_dir: str | Path, tbl: str | ex.Table, row: str | ex.Row, split: str, seed: int) -> Path:
    """``<results_dir>/<table>/<row-slug>__<split label>__seed<k>.json`` (docs/design.md)."""
    t = ex.table(tbl)
    slug = row.slug if isinstance(row, ex.Row) else t.row(row).slug
    return Path(results_dir) / t.name / f"{slug}__{ex.split_label(split)}__seed{int(seed)}.json"


def run_dir(results_dir: str | Path, tbl: str | ex.Table, row: str | ex.Row, split: str, seed: int) -> Path:
    """The engine's run directory for one (row, split, seed): under ``<results_dir>/runs/`` (git-ignored)."""
    p = result_path(results_dir, tbl, row, split, seed)
    return Path(results_dir) / "runs" / p.parent.name / p.stem


def trained_as(cfg: TrainConfig) -> dict[str, Any]:
    """What ``cfg`` trains and reports: its identity (``TrainConfig.identity``, the store path left out: the store's
    content fingerprint is compared on its own) with the precision resolved on its device and the device's kind, its ``eval_batch_size`` (the batch of the BN statistics pass, which
    changes the reported accuracy though no weight: ``slnl.engine.bnstats``) and ``architecture``, the full
    ModelConfig that ``slnl.models.build`` makes of the preset and the overrides (store-decided shapes left out).
    Every result file records this, so that a result trained before a recipe or a preset changed is never taken for
    the configuration as it trains now. JSON-plain (tuples as lists), as it is stored."""
    run = cfg.resolve()
    out: dict[str, Any] = {k: v for k, v in run.identity().items() if k != "data"}
    # the arithmetic: the precision as it resolves on the device the run takes (auto is bf16 on a CUDA GPU, fp32 on
    # the CPU), and the device's kind (CUDA and CPU kernels round differently), so a bf16 GPU result is never taken
    # for a CPU fp32 one
    device = resolve_device(run.device)
    out["precision"], out["device_type"] = resolve_precision(run.precision, device), device.type
    out["eval_batch_size"] = run.eval_batch_size
    with torch.device("meta"):  # allocates nothing: only the configuration is wanted
        arch = dataclasses.asdict(models.build(run.preset, **dict(run.model)).config)
    out["architecture"] = {k: v for k, v in arch.items() if k not in _STORE_SHAPED}
    return json.loads(json.dumps(out))


def config_key(as_trained: dict[str, Any], epochs: int) -> str:
    """A short digest of what a run trains (``trained_as``) and for how long: equal for the rows that several tables
    share, whatever their table, device or run directory."""
    what = {"trained_as": as_trained, "epochs": int(epochs)}
    return hashlib.sha1(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def spec(tbl: str | int | ex.Table, row: str | ex.Row, split: str, seed: int, options: Options,
         store: str | Path) -> RunSpec:
    """The plan of one (row, split, seed): the scale's recipe for the dataset, the paper's row on the split, the
    store and the run directory, through ``slnl.recipes.config_for`` (the function ``slnl train`` calls)."""
    t = ex.table(tbl)
    r = row if isinstance(row, ex.Row) else t.row(row)
    rec = recipes.recipe_for(options.scale, options.dataset, t)
    results = resolve_path(options.results_dir)
    over: dict[str, Any] = {"data": str(store), "seed": int(seed), "device": options.device,
                            "out": str(run_dir(results, t, r, split, seed)), "overwrite": bool(options.overwrite),
                            "progress": bool(options.progress)}
    for k in ("epochs", "batch_size", "max_steps_per_epoch"):
        if getattr(options, k) is not None:
            over[k] = int(getattr(options, k))
    cfg = recipes.config_for(rec, ex.store_split(split), t, r, **over)
    as_trained = trained_as(cfg)
    return RunSpec(t, r, ex.split_label(split), int(seed), rec.name, cfg, result_path(results, t, r, split, seed),
                   as_trained, config_key(as_trained, cfg.epochs))


def plan(tbl: str | int | ex.Table, rows: str | Sequence[str | ex.Row] | None, options: Options) -> list[RunSpec]:
    """Every (row, split, seed) of a table that ``options`` asks for, in the paper's row order."""
    t = ex.table(tbl)
    keys = [r.slug if isinstance(r, ex.Row) else r for r in rows] if isinstance(rows, (list, tuple)) else rows
    chosen = ex.rows(t, keys)
    if not chosen:
        raise ValueError(f"{t.name}: no runnable row selected by rows={rows!r}")
    store = resolve_store(options.dataset, options.data_root)
    splits = table_splits(t, store, options.split)
    seeds = ex.parse_list(options.seeds, int) or [0]
    return [spec(t, r, s, k, options, store) for r in chosen for s in splits for k in seeds]


def store_of(options: Options) -> tuple[Path, str]:
    """(store directory, its content fingerprint) of a study's options."""
    store = resolve_store(options.dataset, options.data_root)
    return store, fingerprint(store)
