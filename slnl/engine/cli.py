"""``slnl train`` and ``slnl eval`` (``slnl.cli`` dispatches here with ``argv[0]`` in {"train", "eval"}).

Precedence of settings for ``slnl train``, later wins: the recipe ``--preset`` (``slnl.recipes``: its protocol, and
the paper's adopted m and M1 on the split) < ``--config FILE.yaml`` (or, with ``--resume`` and no ``--config``, the
run's own saved ``config.yaml``) < ``--row TABLE/ROW`` (a paper row's model and loss on the split, as
``slnl.experiments.row_settings`` gives them) < single flags given on the command line. All of it is one call of
``slnl.recipes.config_for``, the function the notebooks and ``slnl sweep`` call too.

``--dry-run`` prints the resolved configuration as YAML (what ``config.yaml`` would hold before the store is opened,
with ``precision`` resolved for the device the run would use, and ``model_config``: every field of the model that
would be built) and exits without touching the run directory or the data.

Multi-GPU / multi-node: ``torchrun --nproc_per_node=N -m slnl train …`` (``--batch-size`` stays the global batch).

``slnl eval RUN`` evaluates the final model of a run: ``RUN`` is a run directory (its ``last.pt``) or a checkpoint
file. A run keeps one checkpoint (no ``best.pt``: nothing is selected on the test split).

Exit status: 0 done; 2 bad configuration, bad or refused file (a checkpoint that would need arbitrary unpickling, of
another model version, a store whose content changed), refused to overwrite — each said in one line on stderr,
before any work, leaving nothing behind; 3 non-finite loss; 128+signal when stopped by SIGTERM/SIGINT after writing
a checkpoint (143 / 130).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from slnl import experiments as ex
from slnl import recipes
from slnl.data.store import canonical_split
from slnl.engine.config import BN_STATS, COMPILE_MODES, DATA_MODES, LOSS_NAMES, PRECISIONS, TrainConfig, _plain
from slnl.engine.device import resolve_device, resolve_precision
from slnl.engine.distributed import env_world
from slnl.engine.fit import NonFiniteLossError, TrainingInterrupted, evaluate, fit
from slnl.engine.step import build_model, check_model
from slnl.utils import atomic_write_json, resolve_path

S = argparse.SUPPRESS
# Flags that map to ModelConfig fields (slnl.models.build overrides), and their types.
MODEL_FLAGS: dict[str, type] = {"transform": str, "attention": str, "affinity": str, "m1": int, "dropout": float,
                                "nonlocal_impl": str}


def model_override(text: str) -> tuple[str, Any]:
    """One ``--model KEY=VALUE`` (a ModelConfig field): YAML scalars, comma-separated lists (``channels=8,8,16``)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--model expects KEY=VALUE (e.g. channels=8,8,16 or K=2), got {text!r}")
    k, v = text.split("=", 1)
    if "," in v and not v.strip().startswith("["):
        return k.strip(), [yaml.safe_load(p) for p in v.split(",")]
    return k.strip(), yaml.safe_load(v)


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="slnl train", argument_default=S,
        description="Train one configuration into a run directory (the protocol of the recipe --preset).",
        epilog="Recipes: " + "; ".join(f"{k}: {r.description}" for k, r in recipes.RECIPES.items())
        + ". Unless a row or a flag sets them, m and M1 follow the split: "
        + "; ".join(f"{k}: {v}" for k, v in ex.ADOPTED.items()) + ".",
    )
    p.add_argument("--config", help="YAML file of TrainConfig fields (flags override it)")
    p.add_argument("--row", metavar="TABLE/ROW",
                   help="a paper row's configuration on --split, e.g. table6/slnl-2 (slugs of slnl.experiments); "
                        "single flags still override its fields")
    p.add_argument("--dry-run", dest="dry_run", action="store_true",
                   help="print the resolved configuration as YAML and exit (no training, no files, no data)")
    g = p.add_argument_group("run")
    g.add_argument("--preset", choices=tuple(recipes.RECIPES), help="the recipe (default: ntu): model and protocol")
    g.add_argument("--data", help="prepared store directory (default: the built-in synthetic store)")
    g.add_argument("--split", help="xsub | xview | xset | default (aliases CS, CV)")
    g.add_argument("--out", help="run directory (default: results/runs/<preset>-<split>-<loss>-seed<k>-<hash>)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out (a finished run is returned)")
    g.add_argument("--overwrite", action="store_true", help="replace a run directory that holds a run")
    g.add_argument("--seed", type=int)
    g = p.add_argument_group("model (slnl.models.build overrides)")
    g.add_argument("--transform")
    g.add_argument("--attention")
    g.add_argument("--affinity")
    g.add_argument("--m1", type=int)
    g.add_argument("--dropout", type=float)
    g.add_argument("--nonlocal-impl", dest="nonlocal_impl")
    g.add_argument("--model", type=model_override, action="append", metavar="KEY=VALUE",
                   help="any other ModelConfig field, e.g. --model channels=8,8,16,16,16,16 --model K=2")
    g = p.add_argument_group("optimisation")
    g.add_argument("--loss", choices=LOSS_NAMES)
    g.add_argument("--gamma", type=float)
    g.add_argument("--m", type=float)
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", dest="batch_size", type=int, help="global batch (all processes)")
    g.add_argument("--lr", type=float)
    g.add_argument("--weight-decay", dest="weight_decay", type=float)
    g.add_argument("--lr-decay", dest="lr_decay", type=float)
    g.add_argument("--accum-steps", dest="accum_steps", type=int)
    g = p.add_argument_group("speed and bookkeeping")
    g.add_argument("--precision", choices=PRECISIONS)
    g.add_argument("--device")
    g.add_argument("--compile", action="store_true")
    g.add_argument("--compile-mode", dest="compile_mode", choices=COMPILE_MODES,
                   help="torch.compile mode (implies --compile); reduce-overhead = CUDA graphs")
    g.add_argument("--fused-adam", dest="fused_adam", action="store_true", help="torch.optim.Adam(fused=True)")
    g.add_argument("--sync-every", dest="sync_every", type=int,
                   help="check the loss for NaN/inf and stop signals every N steps instead of every step (GPU: "
                        "fewer host-device synchronisations; a non-finite step is still skipped and reported)")
    g.add_argument("--data-mode", dest="data_mode", choices=DATA_MODES)
    g.add_argument("--num-workers", dest="num_workers", type=int)
    g.add_argument("--max-steps-per-epoch", dest="max_steps_per_epoch", type=int)
    g.add_argument("--eval-every", dest="eval_every", type=int)
    g.add_argument("--eval-batch-size", dest="eval_batch_size", type=int)
    g.add_argument("--checkpoint-every-steps", dest="checkpoint_every_steps", type=int)
    g.add_argument("--progress", dest="progress", action="store_true")
    g.add_argument("--no-progress", dest="progress", action="store_false")
    g.add_argument("--deterministic", action="store_true")
    g.add_argument("--sync-bn", dest="sync_bn", action="store_true")
    g.add_argument("--bn-stats", dest="bn_stats", choices=BN_STATS,
                   help="BN statistics for evaluation: recomputed from the training clips with dropout off "
                        "(default; slnl.engine.bnstats), or training's running averages")
    g.add_argument("--tensorboard", action="store_true",
                   help="TensorBoard scalars per epoch in <out>/tensorboard/ (pip install 'slnl[tensorboard]')")
    return p


def config_from_args(argv: list[str]) -> TrainConfig:
    """TrainConfig from ``slnl train`` arguments (see the module docstring for precedence)."""
    return _parse(argv)[0]


def _parse(argv: list[str]) -> tuple[TrainConfig, bool]:
    """(TrainConfig, dry_run) from ``slnl train`` arguments."""
    ns = vars(train_parser().parse_args(argv))
    for k in ("config", "data", "out"):  # a relative path is relative to the working directory or $SLNL_HOME
        if ns.get(k):
            ns[k] = str(resolve_path(ns[k]))
    dry_run = bool(ns.pop("dry_run", False))
    row = ns.pop("row", None)
    base: dict[str, Any] = {}
    if "config" in ns:
        base = TrainConfig.load_mapping(ns.pop("config"))
    elif ns.get("resume") and "out" in ns and (Path(ns["out"]) / "config.yaml").is_file():
        base = TrainConfig.load_mapping(Path(ns["out"]) / "config.yaml")
    base.pop("model_config", None)
    model = dict(base.pop("model", None) or {})
    table = None
    recipe = ns.pop("preset", None) or base.pop("preset", None)
    split = ns.pop("split", None) or base.pop("split", None)
    if row is not None:
        table, row, recipe = _row(row, recipe)
        for k in ("loss", "gamma", "m"):  # the row's, unless a flag sets them
            base.pop(k, None)
        for k in ex.MODEL_KEYS:
            model.pop(k, None)
    for k, v in ns.pop("model", []):
        model[k] = v
    for k in MODEL_FLAGS:
        if k in ns:
            model[k] = ns.pop(k)
    if ns.get("compile_mode", "default") != "default":
        ns["compile"] = True  # --compile-mode implies --compile
    base.update(ns)
    return recipes.config_for(recipe or "ntu", split, table, row, model=model, **base), dry_run


def _row(text: str, recipe: str | None) -> tuple[ex.Table, ex.Row, str]:
    """``--row TABLE/ROW`` -> (table, row, recipe). Without ``--preset`` the table's own §4.1 recipe is used
    (``kinetics`` for Table 2, ``ntu`` otherwise)."""
    name, sep, slug = text.partition("/")
    if not sep or not name or not slug:
        raise ValueError(f"--row {text!r}: expected TABLE/ROW, e.g. table6/slnl-2")
    try:
        t = ex.table(name)
    except KeyError as e:
        raise ValueError(f"--row {text!r}: {e.args[0]}") from None
    runnable = ", ".join(r.slug for r in ex.rows(t))
    try:
        r = t.row(slug)
    except KeyError:
        raise ValueError(f"--row {text!r}: {t.name} has no row {slug!r}; its rows are {runnable}") from None
    if not r.runnable:
        raise ValueError(f"--row {text!r}: {r.label} is a published number the paper quotes, not a model we train; "
                         f"{t.name}'s runnable rows are {runnable}")
    return t, r, recipe or t.family  # each protocol family has its recipe of the same name


def dry_run(cfg: TrainConfig) -> str:
    """The resolved configuration as YAML: every ``TrainConfig`` field, the split's store name, ``precision`` for the
    device the run would use, and ``model_config`` (every field of the model that would be built, the store-decided
    shapes as the preset has them until the store is open). Touches no file and generates no data."""
    cfg = cfg.resolve()
    check_model(cfg)
    cfg.split = canonical_split(cfg.split)  # as fit() saves it: CS -> xsub, CV -> xview
    cfg.precision = resolve_precision(cfg.precision, resolve_device(cfg.device))
    with torch.device("meta"):  # the configuration only: nothing is allocated
        model_config = dataclasses.asdict(build_model(cfg).config)
    head = ("# slnl train --dry-run: the resolved configuration. data: null = the built-in synthetic store; "
            "out: null = results/runs/<preset>-<split>-<loss>-seed<k>-<hash>, chosen once the store is open; "
            "model_config: num_classes, num_joints, in_channels and num_persons come from the store.\n")
    d = cfg.to_dict()
    d["model_config"] = _plain(model_config)
    return head + yaml.safe_dump(d, sort_keys=False)


def eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slnl eval",
                                description="Evaluate the final model of a run (central crop) on its store.")
    p.add_argument("run", metavar="RUN", help="run directory (its last.pt) or checkpoint file")
    p.add_argument("--split", default=None, help="default: the run's split")
    p.add_argument("--subset", default="test", choices=("train", "test"))
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=None)
    p.add_argument("--data", default=None,
                   help="where the run's store is now (default: where it was); it must hold the same data")
    p.add_argument("--json", default=None, help="also write the full result (confusion matrix …) to this file")
    return p


def _setup_logging() -> None:
    rank = env_world()[0]
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(message)s" if rank else "%(asctime)s %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("train", "eval"):
        print("usage: slnl.engine.cli {train,eval} [options]", file=sys.stderr)
        return 2
    cmd, rest = argv[0], argv[1:]
    _setup_logging()
    try:
        if cmd == "train":
            cfg, dry = _parse(rest)
            if dry:
                print(dry_run(cfg), end="")
                return 0
            try:
                res = fit(cfg)
            except TrainingInterrupted as e:
                print(f"slnl train: {e}", file=sys.stderr)
                return 128 + e.signum
            except NonFiniteLossError as e:
                print(f"slnl train: {e}", file=sys.stderr)
                return 3
            if env_world()[0] == 0:
                print(f"top1 {res.top1:.4f}  top5 {res.top5:.4f}  run {res.run_dir}")
            return 0
        args = eval_parser().parse_args(rest)
        out = evaluate(args.run, split=args.split, subset=args.subset, device=args.device,
                       batch_size=args.batch_size, data=args.data)
        if args.json:
            atomic_write_json(resolve_path(args.json), out)
        print(json.dumps({k: out[k] for k in ("top1", "top5", "n", "split", "subset", "checkpoint", "epoch")}))
        return 0
    except (ValueError, FileExistsError, FileNotFoundError, KeyError) as e:
        print(f"slnl {cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
