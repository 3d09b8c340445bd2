"""Choosing a dataset's recipe without its test split: a declared grid, trained on a split carved from the training
data, judged on its held-out part.

``GRIDS`` declares, per dataset, before anything runs: the base recipe, the validation split of the store (its
"train" side = part of the study's training subjects / views / sets, its "test" side = the held-out rest of them,
never a clip of the study's test side), the values tried, the seeds (disjoint from the study's, which start at 0)
and the model judged (Table 1's final model at the split's adopted settings). ``select`` trains every (values,
seed) once — resumable: a finished run's result file is kept and skipped — and, when the grid is complete, writes
``chosen.json``: per configuration the validation top-1 (final epoch, the headline BN statistics) over the seeds
and the choice, the highest mean, ties (within 0.1 point) to the cheaper configuration. The study's test split is
touched once per configuration and seed afterwards, by the study itself, with the chosen recipe frozen in
``slnl.recipes`` (a test checks that the recipe holds ``chosen.json``'s values).

    slnl select msr3d --data-root data/msr3d --results-dir results/msr3d [--seeds 1000]

writes ``<results-dir>/selection/<config>__seed<k>.json`` per run (run directories under
``<results-dir>/selection/runs/``) and ``<results-dir>/selection/chosen.json``; two processes with different
``--seeds`` share the work.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from slnl import engine, recipes
from slnl.study.stores import resolve_store
from slnl.utils import atomic_write_json, git_commit, portable, resolve_path

Log = Callable[[str], Any]


@dataclass(frozen=True)
class Grid:
    """What a dataset's selection tries: ``schedules`` (epochs, lr decay per epoch) × ``new_joints`` (N′ ≥ N: the
    skeleton transformer augments the joints, §3.1), each at ``seeds``, on the store split ``split``."""

    base: str  # the recipe the values are put on
    split: str  # the store's validation split (inside the study's training split)
    schedules: tuple[tuple[int, float], ...]
    new_joints: tuple[int, ...]
    seeds: tuple[int, ...]
    table: str = "table1"
    row: str = "slnl-rfa"  # the final model, at the adopted settings of the study's split
    paper_split: str = "CS"  # whose adopted settings (m, M1) the model takes

    def configs(self) -> list[dict[str, Any]]:
        """Every combination, cheapest first (fewer epochs, then fewer new joints): the order ties are broken in."""
        return [{"epochs": e, "lr_decay": d, "new_joints": n}
                for (e, d), n in itertools.product(sorted(self.schedules), sorted(self.new_joints))]


# Declared before the selection's first run (and recorded in the study's protocol).
GRIDS: dict[str, Grid] = {
    # subjects 1, 3, 5 train, 7, 9 validate (store split xsub-val); the study trains on 1, 3, 5, 7, 9, tests 2-10
    "msr3d": Grid(base="small", split="xsub-val", schedules=((100, 0.95), (200, 0.975)), new_joints=(20, 32),
                  seeds=(1000, 1001)),
    # view 1 trains, view 2 validates (xview-val); the study trains on views 1, 2 and tests view 3, at CV's adopted
    # settings. 1,020 training clips (3.6x MSR's): shorter schedules, ending near the same fraction of the rate.
    "nwucla": Grid(base="small", split="xview-val", schedules=((30, 0.85), (50, 0.9)), new_joints=(20, 32),
                   seeds=(1000, 1001), paper_split="CV"),
    # inside fold 1's training sets: folds 3-5 train, fold 2 validates (fold1-val); the study runs all five folds
    "sbu": Grid(base="small", split="fold1-val", schedules=((100, 0.95), (200, 0.975)), new_joints=(15, 32),
                seeds=(1000, 1001)),
}
TIE = 0.001  # top-1 within 0.1 point of the best: the cheaper configuration is chosen


def config_name(c: dict[str, Any]) -> str:
    return f"e{c['epochs']}-d{c['lr_decay']:g}-n{c['new_joints']}"


def _result_path(out: Path, c: dict[str, Any], seed: int) -> Path:
    return out / f"{config_name(c)}__seed{seed}.json"


def select(dataset: str, data_root: str | None = None, results_dir: str | None = None,
           seeds: list[int] | None = None, log: Log = print) -> dict[str, Any] | None:
    """Train the grid's pending runs (``seeds``: a subset of the grid's, for sharing the work between processes);
    write and return ``chosen.json``'s content when every run of the grid is finished, else None."""
    if dataset not in GRIDS:
        raise ValueError(f"no selection grid for {dataset!r}; declared: {', '.join(GRIDS)}")
    grid = GRIDS[dataset]
    store = resolve_store(dataset, data_root)
    out = resolve_path(results_dir or f"results/{dataset}") / "selection"
    for seed in seeds or grid.seeds:
        if seed not in grid.seeds:
            raise ValueError(f"seed {seed} is not among the grid's seeds {grid.seeds}")
        for c in grid.configs():
            path = _result_path(out, c, seed)
            if path.is_file():
                continue
            cfg = recipes.config_for(grid.base, grid.paper_split, grid.table, grid.row,
                                     model={"new_joints": c["new_joints"]}, epochs=c["epochs"], lr_decay=c["lr_decay"],
                                     data=str(store), seed=seed, out=str(out / "runs" / path.stem), resume=True,
                                     progress=False)
            cfg = cfg.replace(split=grid.split)  # the paper's settings of the study's split, on the validation split
            log(f"selection {dataset}: {path.stem} on {grid.split} ...")
            res = engine.fit(cfg)
            r = res.result
            atomic_write_json(path, {
                "dataset": dataset, "split": grid.split, "seed": seed, **c, "base": grid.base,
                "top1": r["top1"], "top5": r["top5"], "by_bn_stats": r["by_bn_stats"], "bn_stats": r["bn_stats"],
                "n_validation": r["n_test"], "n_train": r["n_train"], "run_dir": portable(res.run_dir),
                "store_fingerprint": r["store_fingerprint"],
                # paths as the study's result files record them: relative to home() (no machine's directories)
                "config": {**r["config"], "data": portable(r["config"]["data"]), "out": portable(r["config"]["out"])},
                "wall_s": r["timings"]["wall_s"],
                "device": r["device"], "torch": r["software"].get("torch"), "git_commit": r["git_commit"]})
            log(f"selection {dataset}: {path.stem} validation top-1 {100 * r['top1']:.2f}%")
    return choose(dataset, out)


def choose(dataset: str, out: Path) -> dict[str, Any] | None:
    """``chosen.json`` from the grid's result files under ``out`` (None while any is missing)."""
    grid = GRIDS[dataset]
    rows = []
    for c in grid.configs():
        paths = [_result_path(out, c, s) for s in grid.seeds]
        if not all(p.is_file() for p in paths):
            return None
        recs = [json.loads(p.read_text()) for p in paths]
        top1 = [r["top1"] for r in recs]
        rows.append({**c, "config": config_name(c), "top1": top1, "mean": statistics.fmean(top1),
                     "sd": statistics.stdev(top1) if len(top1) > 1 else None,
                     "wall_s": statistics.fmean(r["wall_s"] for r in recs)})
    best = max(r["mean"] for r in rows)
    chosen = next(r for r in rows if r["mean"] >= best - TIE)  # rows are cheapest first
    doc = {"dataset": dataset, "split": grid.split, "seeds": list(grid.seeds), "base": grid.base,
           "model": f"{grid.table}/{grid.row} at {grid.paper_split}'s adopted settings", "tie": TIE,
           "rule": "highest mean validation top-1 over the seeds (final epoch); within the tie, the cheaper",
           "configs": rows, "chosen": {k: chosen[k] for k in ("epochs", "lr_decay", "new_joints")},
           "git_commit": git_commit()}
    atomic_write_json(out / "chosen.json", doc)
    return doc


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "select":
        argv = argv[1:]
    ap = argparse.ArgumentParser(prog="slnl select", description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", choices=sorted(GRIDS))
    ap.add_argument("--data-root", default=None, help="the prepared store (default: data/<dataset>)")
    ap.add_argument("--results-dir", default=None, help="default results/<dataset>; writes its selection/ folder")
    ap.add_argument("--seeds", default=None, help="comma-separated subset of the grid's seeds (share the work)")
    args = ap.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
        doc = select(args.dataset, args.data_root or f"data/{args.dataset}", args.results_dir, seeds)
    except (ValueError, FileNotFoundError) as e:
        print(f"slnl select: {e}", file=sys.stderr)
        return 2
    if doc is None:
        print("slnl select: runs of the grid are still missing (another process may be training them); "
              "run again when they are done to write chosen.json")
        return 0
    for r in doc["configs"]:
        print(f"  {r['config']:<20} {100 * r['mean']:.2f} % (seeds {', '.join(f'{100 * t:.2f}' for t in r['top1'])})")
    print(f"chosen: {doc['chosen']}")
    return 0
