"""``slnl train`` and ``slnl eval`` (``slnl.cli`` dispatches here with ``argv[0]`` in {"train", "eval"}).

Precedence of settings for ``slnl train``: TrainConfig defaults (the preset's protocol) < ``--config FILE.yaml`` (or,
with ``--resume`` and no ``--config``, the run's own saved ``config.yaml``) < flags given on the command line.

Multi-GPU / multi-node: ``torchrun --nproc_per_node=N -m slnl train …`` (``--batch-size`` stays the global batch).

Exit status: 0 done; 2 bad configuration / refused to overwrite; 3 non-finite loss; 128+signal when stopped by
SIGTERM/SIGINT after writing a checkpoint (143 / 130).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from slnl.engine.config import COMPILE_MODES, DATA_MODES, LOSS_NAMES, PRECISIONS, PROTOCOL, TrainConfig

S = argparse.SUPPRESS
# Flags that map to ModelConfig fields (slnl.models.build overrides), and their types.
MODEL_FLAGS: dict[str, type] = {"transform": str, "attention": str, "affinity": str, "m1": int, "dropout": float,
                                "nonlocal_impl": str}


def _kv(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--model expects KEY=VALUE (e.g. channels=8,8,16 or K=2), got {text!r}")
    k, v = text.split("=", 1)
    if "," in v and not v.strip().startswith("["):
        return k.strip(), [yaml.safe_load(p) for p in v.split(",")]
    return k.strip(), yaml.safe_load(v)


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="slnl train", argument_default=S,
        description="Train one configuration into a run directory (§4.1 protocol defaults per --preset).",
        epilog="Protocol defaults: " + "; ".join(f"{k}: {v}" for k, v in PROTOCOL.items()),
    )
    p.add_argument("--config", help="YAML file of TrainConfig fields (flags override it)")
    g = p.add_argument_group("run")
    g.add_argument("--preset", choices=sorted(PROTOCOL))
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
    g.add_argument("--model", type=_kv, action="append", metavar="KEY=VALUE",
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
    return p


def config_from_args(argv: list[str]) -> TrainConfig:
    """TrainConfig from ``slnl train`` arguments (see the module docstring for precedence)."""
    ns = vars(train_parser().parse_args(argv))
    base: dict[str, Any] = {}
    if "config" in ns:
        base = TrainConfig.load(ns.pop("config")).to_dict()
    elif ns.get("resume") and "out" in ns and (Path(ns["out"]) / "config.yaml").is_file():
        base = TrainConfig.load(Path(ns["out"]) / "config.yaml").to_dict()
    model = dict(base.get("model") or {})
    for k, v in ns.pop("model", []):
        model[k] = v
    for k in MODEL_FLAGS:
        if k in ns:
            model[k] = ns.pop(k)
    if ns.get("compile_mode", "default") != "default":
        ns["compile"] = True  # --compile-mode implies --compile
    base.update(ns)
    base["model"] = model
    return TrainConfig.from_dict(base, source="slnl train")


def eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slnl eval", description="Evaluate a run directory (central crop).")
    p.add_argument("run_dir")
    p.add_argument("--split", default=None, help="default: the run's split")
    p.add_argument("--subset", default="test", choices=("train", "test"))
    p.add_argument("--checkpoint", default="last", choices=("last", "best"))
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=None)
    p.add_argument("--data", default=None, help="store directory (default: the run's)")
    p.add_argument("--json", default=None, help="also write the full result (confusion matrix …) to this file")
    return p


def _setup_logging() -> None:
    from slnl.engine.distributed import env_world

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
    from slnl.engine.fit import NonFiniteLossError, TrainingInterrupted, evaluate, fit

    try:
        if cmd == "train":
            cfg = config_from_args(rest)
            try:
                res = fit(cfg)
            except TrainingInterrupted as e:
                print(f"slnl train: {e}", file=sys.stderr)
                return 128 + e.signum
            except NonFiniteLossError as e:
                print(f"slnl train: {e}", file=sys.stderr)
                return 3
            from slnl.engine.distributed import env_world

            if env_world()[0] == 0:
                print(f"top1 {res.top1:.4f}  top5 {res.top5:.4f}  run {res.run_dir}")
            return 0
        args = eval_parser().parse_args(rest)
        out = evaluate(args.run_dir, split=args.split, subset=args.subset, checkpoint=args.checkpoint,
                       device=args.device, batch_size=args.batch_size, data=args.data)
        if args.json:
            from slnl.utils import atomic_write_json

            atomic_write_json(args.json, out)
        print(json.dumps({k: out[k] for k in ("top1", "top5", "n", "split", "subset", "checkpoint", "epoch")}))
        return 0
    except (ValueError, FileExistsError, FileNotFoundError, KeyError) as e:
        print(f"slnl {cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
