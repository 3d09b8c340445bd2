"""``slnl train``, ``slnl eval``, ``slnl predict`` and ``slnl export`` (``slnl.cli`` dispatches here with ``argv[0]`` in
{"train", "eval", "predict", "export"}).

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
file. A run keeps one checkpoint (no ``best.pt``: nothing is selected on the test split). It prints top-1, top-5 and
a per-class table; ``--json`` prints the full result as JSON instead (``--json FILE`` also writes it to FILE).

``slnl predict RUN [CLIP ...] [--data STORE --split S --subset test]`` prints, per clip, the most probable
classes with their probabilities (``slnl.engine.predict``: the same central crop and resize as evaluation).

Messages of the library that name Python arguments (``resume=True``, ``slnl.data.synthetic.ensure_default()``) are
said in the command line's words here (``cli_message``).

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

import numpy as np
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


TRAIN_EXAMPLES = """examples:
  slnl train --preset msr3d --data data/msr3d --split xsub --epochs 10 --out runs/try   # a short real run
  slnl train --row table6/slnl-2 --split CV --dry-run    # a paper row's exact configuration, as YAML
  slnl train --preset ntu --data data/ntu60 --split CV --device cuda --out runs/ntu-cv   # the adopted model
  (continue a stopped run: the same command with --resume)"""


def _split_names() -> str:
    """The split names of the datasets whose splits are fixed, for --split's help."""
    from slnl.data import kinetics, msr3d, ntu, nwucla, sbu

    names: list[str] = []
    for splits in (*ntu.SPLITS.values(), msr3d.SPLITS, nwucla.SPLITS, sbu.SPLITS, kinetics.SPLITS):
        names += [n for n in splits if n not in names]
    return " | ".join(names)


def _one_of(names) -> str:
    return "{" + ", ".join(names) + "}"


def train_parser() -> argparse.ArgumentParser:
    from slnl import models

    depth = max(len(c.channels) for c in models.PRESETS.values())
    p = argparse.ArgumentParser(
        prog="slnl train", argument_default=S, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train one configuration into a run directory (the protocol of the recipe --preset).\n"
                    "Settings, later wins: --preset < --config < --row < single flags.",
        epilog=TRAIN_EXAMPLES + "\n\nrecipes:\n" + "\n".join(f"  {k}: {r.description}" for k, r in
                                                            recipes.RECIPES.items())
        + "\n\nUnless a row or a flag sets them, m and M1 follow the split: "
        + "; ".join(f"{k}: {v}" for k, v in ex.ADOPTED.items()) + ".",
    )
    p.add_argument("--config", metavar="FILE.yaml", help="YAML file of TrainConfig fields (flags override it)")
    p.add_argument("--row", metavar="TABLE/ROW",
                   help="a paper row's configuration on --split, e.g. table6/slnl-2 (slugs of slnl.experiments); "
                        "single flags still override its fields")
    p.add_argument("--dry-run", dest="dry_run", action="store_true",
                   help="print the resolved configuration as YAML and exit (no training, no files, no data)")
    g = p.add_argument_group("run")
    g.add_argument("--preset", choices=tuple(recipes.RECIPES),
                   help="the recipe (default: ntu, or the table's with --row): model and protocol; listed below")
    g.add_argument("--data", metavar="STORE",
                   help="prepared store directory (`slnl prepare`; default: the built-in synthetic store)")
    g.add_argument("--split", metavar="SPLIT",
                   help=f"the store's split: {_split_names()}; aliases CS = xsub, CV = xview (default: xsub)")
    g.add_argument("--out", metavar="RUN",
                   help="run directory (default: results/runs/<preset>-<split>-<loss>-seed<k>-<hash>)")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out where it stopped (a finished run is returned as it is)")
    g.add_argument("--overwrite", action="store_true", help="replace a run directory that holds a run")
    g.add_argument("--seed", type=int, metavar="N",
                   help="random seed, any integer (default 0): initial weights, shuffle order and crops")
    g = p.add_argument_group("model (slnl.models.build overrides)")
    # The model's vocabularies are listed here and checked by the model itself (one line naming the valid values).
    g.add_argument("--transform", metavar="NAME",
                   help=f"transform network (§3.1, Table 3): {_one_of(models.TRANSFORMS)} (default: CS-T)")
    g.add_argument("--attention", metavar="NAME",
                   help=f"frequency attention (§3.2, Table 5): {_one_of(models.ATTENTIONS)} (default: rFA)")
    g.add_argument("--affinity", metavar="NAME",
                   help=f"kind of the first M1 blocks (§3.3, Table 6): {_one_of(models.AFFINITIES)} (default: SLnL)")
    g.add_argument("--m1", type=int, metavar="M1",
                   help=f"SLnL blocks before the local ones: 0 … the model's depth (6; kinetics: {depth}); "
                        "default: the split's adopted value (CS 5, CV 3)"),
    g.add_argument("--dropout", type=float, metavar="P", help="dropout ratio after each block, in [0, 1)")
    g.add_argument("--nonlocal-impl", dest="nonlocal_impl", metavar="NAME",
                   help=f"non-local attention: {_one_of(models.NONLOCAL_IMPLS)} (fused: no affinity matrix in "
                        "memory; reference: materialised)")
    g.add_argument("--model", type=model_override, action="append", metavar="KEY=VALUE",
                   help="any other ModelConfig field, e.g. --model channels=8,8,16,16,16,16 --model K=2")
    g = p.add_argument_group("optimisation")
    g.add_argument("--loss", choices=LOSS_NAMES, help="loss of each head (§3.4, Table 4)")
    g.add_argument("--gamma", type=float, metavar="G", help="focal exponent γ of FL and SMFL")
    g.add_argument("--m", type=float, metavar="M", help="soft margin m of SMCE and SMFL (default: the split's)")
    g.add_argument("--epochs", type=int, metavar="N", help="epochs (default: the recipe's)")
    g.add_argument("--batch-size", dest="batch_size", type=int, metavar="N", help="global batch (all processes)")
    g.add_argument("--lr", type=float, metavar="LR", help="Adam's initial learning rate")
    g.add_argument("--weight-decay", dest="weight_decay", type=float, metavar="WD", help="Adam's weight decay")
    g.add_argument("--lr-decay", dest="lr_decay", type=float, metavar="F",
                   help="learning rate multiplied by F after every epoch")
    g.add_argument("--accum-steps", dest="accum_steps", type=int, metavar="N",
                   help="micro-batches per optimiser step (gradient accumulation)")
    g = p.add_argument_group("speed and bookkeeping")
    g.add_argument("--precision", choices=PRECISIONS,
                   help="auto: bf16 autocast on CUDA, fp32 on the CPU")
    g.add_argument("--device", metavar="DEVICE", help="auto | cpu | cuda | cuda:N (default: auto)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--compile-mode", dest="compile_mode", choices=COMPILE_MODES,
                   help="torch.compile mode (implies --compile); reduce-overhead = CUDA graphs")
    g.add_argument("--fused-adam", dest="fused_adam", action="store_true", help="torch.optim.Adam(fused=True)")
    g.add_argument("--sync-every", dest="sync_every", type=int, metavar="N",
                   help="check the loss for NaN/inf and stop signals every N steps instead of every step (GPU: "
                        "fewer host-device synchronisations; a non-finite step is still skipped and reported)")
    g.add_argument("--data-mode", dest="data_mode", choices=DATA_MODES,
                   help="where clips are cropped: auto (on the GPU when the split fits), cpu, gpu, gpu-fp16")
    g.add_argument("--num-workers", dest="num_workers", type=int, metavar="N", help="CPU data-loader processes")
    g.add_argument("--max-steps-per-epoch", dest="max_steps_per_epoch", type=int, metavar="N",
                   help="cap on optimiser steps per epoch (smoke runs)")
    g.add_argument("--eval-every", dest="eval_every", type=int, metavar="N",
                   help="evaluate on the test subset every N epochs (and after the last)")
    g.add_argument("--eval-batch-size", dest="eval_batch_size", type=int, metavar="N", help="evaluation batch")
    g.add_argument("--checkpoint-every-steps", dest="checkpoint_every_steps", type=int, metavar="N",
                   help="also write last.pt every N optimiser steps (default 0: once per epoch)")
    g.add_argument("--progress", dest="progress", action="store_true", help="progress bars (default: on a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    g.add_argument("--deterministic", action="store_true", help="deterministic kernels (CPU runs are anyway)")
    g.add_argument("--sync-bn", dest="sync_bn", action="store_true",
                   help="SyncBatchNorm across processes (CUDA, torchrun)")
    g.add_argument("--bn-stats", dest="bn_stats", choices=BN_STATS,
                   help="BN statistics of the headline evaluation: training's running averages (the recipes' "
                        "default) or recomputed from the training clips with dropout off (slnl.engine.bnstats); "
                        "both are recorded")
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
                                description="Evaluate the final model of a run (central crop) on its store: top-1, "
                                            "top-5 and accuracy per class.",
                                epilog="example: slnl eval runs/try   (or runs/try/last.pt; --json for the raw "
                                       "result)")
    p.add_argument("run", metavar="RUN", help="run directory (its last.pt) or checkpoint file")
    p.add_argument("--split", default=None, help="default: the run's split")
    p.add_argument("--subset", default="test", choices=("train", "test"), help="default: test")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=None, metavar="N",
                   help="default: the run's evaluation batch")
    p.add_argument("--data", default=None, metavar="STORE",
                   help="where the run's store is now (default: where it was); it must hold the same data")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="print the full result (confusion matrix, per-class accuracy, losses …) as JSON instead of "
                        "the summary; --json FILE writes it to FILE and prints the summary")
    return p


def predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="slnl predict", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The most probable classes of skeleton clips under a trained model, with their probabilities.\n"
                    "Clips of any length are cropped and resized as evaluation does (slnl.engine.predict).",
        epilog="examples:\n"
               "  slnl predict runs/try --data data/msr3d --limit 5   # clips of the store's test subset\n"
               "  slnl predict runs/try clips.npy                     # (C, T, V, M) or (N, C, T, V, M), any T\n"
               "  slnl predict runs/try/last.pt clips.npz --json      # .npz: x [, num_frames, names]\n"
               "  slnl predict results/msr3d/models/MODEL.pt a01_s02_e01_skeleton3D.txt   # raw dataset files")
    p.add_argument("run", metavar="RUN", help="run directory (its last.pt) or checkpoint file")
    p.add_argument("clips", metavar="CLIP", nargs="*", default=[],
                   help="clip files: raw files of a supported dataset (MSR Action3D *_skeleton3D.txt, NTU *.skeleton, "
                        "SBU skeleton_pos.txt, NW-UCLA or Kinetics .json), .npy of one clip (C, T, V, M) or a batch "
                        "(N, C, T, V, M), or .npz with x (and optionally num_frames, names); default: the clips of "
                        "--data")
    p.add_argument("--data", default=None, metavar="STORE",
                   help="a prepared store to take clips from (default: the run's store, when CLIPS is not given)")
    p.add_argument("--split", default=None, help="the store's split (default: the run's)")
    p.add_argument("--subset", default="test", choices=("train", "test"), help="default: test")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N clips")
    p.add_argument("--top", type=int, default=3, metavar="K", help="classes shown per clip (default: 3)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: cpu)")
    p.add_argument("--json", action="store_true", help="print JSON: per clip its name, label and top classes")
    return p


def export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="slnl export", description="Write a run's final model alone (no optimiser or RNG state: about a third "
        "of last.pt), with its configuration and class names: a file slnl eval, slnl predict and slnl.load_model take, "
        "small enough to share or commit. Paths in its configuration are written relative to the working directory.",
        epilog="example:\n  slnl export runs/try runs/try-model.pt",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run directory (its last.pt) or checkpoint file")
    p.add_argument("out", metavar="OUT", help="the model file to write (.pt)")
    return p


def run_export(args: argparse.Namespace) -> int:
    from slnl.engine.predict import export

    out, src, epoch = export(args.run, args.out)
    print(f"{out}: the model of {src} (epoch {epoch}), {out.stat().st_size / 1e6:.1f} MB")
    return 0


# What the library says in Python's words (it is also an API), said in the command line's words.
_CLI_WORDS: tuple[tuple[str, str], ...] = (
    ("pass resume=True (--resume) to continue or return it, or overwrite=True (--overwrite) to start",
     "pass --resume to continue or return it, or --overwrite to start"),
    ("(overwrite=True?)", "(--overwrite?)"),
    ("use another out directory or overwrite=True", "use another --out directory or --overwrite"),
    ("(resume with resume=True)", "(resume: the same command with --resume)"),
    ("tensorboard=True (--tensorboard)", "--tensorboard"),
)
_SYNTHETIC_HINT = " or use slnl.data.synthetic.ensure_default()"


def cli_message(error: BaseException | str, cmd: str = "train") -> str:
    """The one line the command line prints for ``error``: a ``KeyError``'s text without the quotes ``str()`` adds,
    and the library's Python wording (``resume=True``, ``ensure_default()``) in the command line's words."""
    if isinstance(error, KeyError) and error.args:
        text = str(error.args[0])
    else:
        text = str(error)
    for python, cli in _CLI_WORDS:
        text = text.replace(python, cli)
    hint = " or leave out --data to train on the built-in synthetic store" if cmd == "train" else ""
    return text.replace(_SYNTHETIC_HINT, hint)


class _CLIWords(logging.Filter):
    """Log records in the command line's words too (the trainer logs its stop message before raising it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and not record.args:
            record.msg = cli_message(record.msg)
        return True


def _setup_logging() -> None:
    rank = env_world()[0]
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(message)s" if rank else "%(asctime)s %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _CLIWords) for f in handler.filters):
            handler.addFilter(_CLIWords())


def eval_summary(out: dict[str, Any]) -> str:
    """``slnl eval``'s readable summary: what was evaluated, top-1 and top-5, and a table per class (clips, top-1,
    the class most often predicted instead)."""
    confusion = np.asarray(out["confusion"], dtype=np.int64)
    names = list(out.get("class_names") or [f"class {k}" for k in range(len(confusion))])
    lines = [f"{out['checkpoint']} (epoch {out['epoch']}) on {out['store']}, split {out['split']}, "
             f"{out['subset']} subset: {out['n']} clips",
             f"top-1 {100 * out['top1']:.1f} %   top-5 {100 * out['top5']:.1f} %", ""]
    width = max([len("class")] + [len(n) for n in names])
    lines.append(f"{'class':<{width}}  {'clips':>5}  {'top-1':>7}  most often taken for")
    for k, name in enumerate(names):
        n = int(confusion[k].sum())
        if n == 0:
            lines.append(f"{name:<{width}}  {0:>5}  {'—':>7}")
            continue
        wrong = confusion[k].copy()
        wrong[k] = 0
        instead = f"{names[int(wrong.argmax())]} ({int(wrong.max())})" if wrong.max() else ""
        lines.append(f"{name:<{width}}  {n:>5}  {100 * confusion[k, k] / n:>6.1f}%  {instead}".rstrip())
    return "\n".join(lines)


def run_predict(args: argparse.Namespace) -> int:
    """``slnl predict``: prints (or ``--json``) per clip its name, its label when known, and the top classes."""
    from slnl.data.store import Store
    from slnl.engine.predict import load_model, predict, read_clips

    model = load_model(args.run, device=args.device)
    cfg = model.train_config
    truth: list[str | None]
    if args.clips:
        clips, frames, names = [], [], []
        for f in args.clips:
            c, n, m = read_clips(resolve_path(f))
            clips += c
            names += m
            frames = None if frames is None or n is None else frames + n
        if args.limit is not None:
            clips, names = clips[:args.limit], names[:args.limit]
            frames = frames[:args.limit] if frames is not None else None
        truth = [None] * len(clips)
        source = ", ".join(map(str, args.clips)) if len(args.clips) < 4 else f"{len(args.clips)} files"
    else:
        store_dir = resolve_path(args.data or cfg.data)
        store = Store(store_dir)
        split = canonical_split(args.split or cfg.split)
        rows = store.rows(split, args.subset)[:args.limit]
        frames = [int(store.num_frames[r]) for r in rows]
        clips = [np.asarray(store.x[r, :, :n]) for r, n in zip(rows, frames)]
        names = [store.names[r] for r in rows]
        truth = [store.class_names[int(store.labels[r])] for r in rows]
        source = f"{store_dir} {split} {args.subset}"
    pred = predict(model, clips, num_frames=frames)
    top = pred.top(max(1, args.top))
    if args.json:
        print(json.dumps([{"clip": n, "label": t, "top": [{"class": c, "probability": round(p, 6)} for c, p in tk]}
                          for n, t, tk in zip(names, truth, top)], indent=1))
        return 0
    print(f"{len(pred)} clip(s) of {source}; model {args.run} ({len(pred.class_names)} classes, T {model.config.T})")
    width = max([len("clip")] + [len(n) for n in names])
    known = [t for t in truth if t is not None]
    twidth = max([len("label")] + [len(t) for t in known]) if known else 0
    print(f"{'clip':<{width}}  " + (f"{'label':<{twidth}}  " if known else "") + "predicted (probability)")
    for n, t, tk in zip(names, truth, top):
        shown = " · ".join(f"{c} {p:.2f}" for c, p in tk)
        print(f"{n:<{width}}  " + (f"{t:<{twidth}}  " if known else "") + shown)
    if known:
        right = sum(t == label for t, label in zip(truth, pred.labels))
        print(f"top-1 on these {len(known)} clips: {100 * right / len(known):.1f} %")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("train", "eval", "predict", "export"):
        print("usage: slnl.engine.cli {train,eval,predict,export} [options]", file=sys.stderr)
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
                print(f"slnl train: {cli_message(e)}", file=sys.stderr)
                return 128 + e.signum
            except NonFiniteLossError as e:
                print(f"slnl train: {cli_message(e)}", file=sys.stderr)
                return 3
            if env_world()[0] == 0:
                print(f"top1 {res.top1:.4f}  top5 {res.top5:.4f}  run {res.run_dir}")
            return 0
        if cmd == "predict":
            return run_predict(predict_parser().parse_args(rest))
        if cmd == "export":
            return run_export(export_parser().parse_args(rest))
        args = eval_parser().parse_args(rest)
        out = evaluate(args.run, split=args.split, subset=args.subset, device=args.device,
                       batch_size=args.batch_size, data=args.data)
        if args.json and args.json != "-":
            atomic_write_json(resolve_path(args.json), out)
        print(json.dumps(out) if args.json == "-" else eval_summary(out))
        return 0
    except (ValueError, FileExistsError, FileNotFoundError, KeyError) as e:
        print(f"slnl {cmd}: error: {cli_message(e, cmd)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
