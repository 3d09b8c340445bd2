"""``slnl bench SUBCOMMAND``: what a user needs to decide how to run the study.

    slnl bench throughput [--preset ntu --batch-size 32 --precision bf16 --compile ...]   one configuration
                          [--model num_joints=20 --model num_persons=1 ...]     at another dataset's shape
    slnl bench suite NAME [--device cuda --budget-s 180]        a named list of configurations, with its goal
    slnl bench flops --preset ntu                               FLOPs per clip, by part and operator (no timing)
    slnl bench check [--device cuda]                            the device against a float64 CPU reference
    slnl bench table [--md results/bench/README.md]             regenerate the table of all results
    slnl bench gpu-train [--tiny --engine --compile]            the GPU training check: throughput, CUDA vs CPU, fit()
    slnl bench kernels [--device cuda]                          is cuDNN attention safe for this model yet?

Measurements are written as JSON (``--json``, or ``results/bench/<suite>.json`` for a suite); ``--md`` (or ``slnl
bench table``) regenerates ``results/bench/README.md`` from every JSON file beside it.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import torch

from slnl.bench import gpu_train, kernels
from slnl.bench.check import check_device
from slnl.bench.flops import flops_report, render_flops
from slnl.bench.measure import PRECISIONS, BenchConfig, measure_isolated, safe_measure
from slnl.bench.provenance import header
from slnl.bench.reports import BENCH_DIR, one_line, rows_of, write_markdown
from slnl.bench.suites import SUITES, run_suite
from slnl.engine.cli import model_override
from slnl.engine.config import COMPILE_MODES
from slnl.engine.step import check_model
from slnl.models import NONLOCAL_IMPLS, PRESETS
from slnl.models.nonlocal_ import RECOMPUTE
from slnl.recipes import RECIPES
from slnl.utils import atomic_write_json, resolve_path


# The GPU window's checks, each with its own options (``slnl/bench/device_check.sh`` runs them).
SCRIPTS = {"gpu-train": gpu_train, "kernels": kernels}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slnl bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n")[1])
    sub = p.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    def out_args(q: argparse.ArgumentParser) -> None:
        q.add_argument("--json", default=None, help="write the result here (atomic)")
        q.add_argument("--md", default=None, help="then regenerate this markdown table from all *.json beside it")

    t = sub.add_parser("throughput", help="time one configuration's training step: samples/s, memory, FLOPs, MFU")
    t.add_argument("--preset", default="cpu", choices=sorted(PRESETS),
                   help="model preset, trained with its recipe of the same name (default cpu)")
    t.add_argument("--batch-size", type=int, default=None,
                   help="batch size (default: 4 on CPU, the recipe's batch on CUDA)")
    t.add_argument("--m1", type=int, default=None, help="number of SLnL blocks (default: the preset's)")
    t.add_argument("--model", type=model_override, action="append", default=[], metavar="KEY=VALUE",
                   help="any other ModelConfig field, e.g. MSR Action3D's shape: --model num_joints=20 --model "
                        "num_persons=1 --model num_classes=20 (the presets are NTU-shaped)")
    t.add_argument("--nonlocal", dest="nonlocal_impl", choices=NONLOCAL_IMPLS, default="fused")
    t.add_argument("--recompute", choices=RECOMPUTE, default=None,
                   help="fused non-local: recompute q/k/v in backward (auto: on CPU, off on CUDA; default: the "
                        "preset's)")
    t.add_argument("--precision", choices=PRECISIONS, default="fp32")
    t.add_argument("--compile", action="store_true", help="torch.compile the model")
    t.add_argument("--compile-mode", choices=COMPILE_MODES, default="default",
                   help="torch.compile mode (reduce-overhead: CUDA graphs); implies --compile unless 'default'")
    t.add_argument("--channels-last", action="store_true", help="blocks on NHWC feature maps (ModelConfig)")
    t.add_argument("--fused-adam", action="store_true", help="torch.optim.Adam(fused=True) (TrainConfig)")
    t.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available)")
    t.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    t.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps (default 3)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: $OMP_NUM_THREADS or 1)")
    t.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (overrides the table)")
    t.add_argument("--in-process", action="store_true",
                   help="measure in this process (default: a fresh one, needed for CPU peak memory)")
    out_args(t)

    s = sub.add_parser("suite", help="run a named list of configurations and judge its goal")
    s.add_argument("name", choices=sorted(SUITES))
    s.add_argument("--device", default=None, help="run every configuration on this device instead")
    s.add_argument("--budget-s", type=float, default=None, help="wall-clock budget for all configurations")
    s.add_argument("--in-process", action="store_true", help="measure in this process (no fresh process each)")
    s.add_argument("--out-dir", default=None, help="where <suite>.json goes unless --json (default results/bench)")
    out_args(s)

    f = sub.add_parser("flops", help="FLOPs per clip by part and operator (any device: no timing)")
    f.add_argument("--preset", default="ntu", choices=sorted(PRESETS))
    f.add_argument("--m1", type=int, default=None)
    f.add_argument("--json", default=None, help="write the report here (atomic)")

    c = sub.add_parser("check", help="fused and reference non-local on DEVICE against a float64 CPU reference")
    c.add_argument("--device", default="cuda")
    c.add_argument("--presets", default="cpu,ntu", help="comma-separated presets (default cpu,ntu)")
    c.add_argument("--batch-size", type=int, default=2)
    c.add_argument("--json", default=None, help="write the report here (atomic)")

    m = sub.add_parser("table", help="regenerate the markdown table from every result JSON beside it")
    m.add_argument("--md", default=f"{BENCH_DIR}/README.md")
    for name, mod in SCRIPTS.items():  # their own parsers: `slnl bench NAME -h`
        sub.add_parser(name, help=mod.__doc__.split("\n")[0].rstrip("."), add_help=False)
    return p


def _write_json(path: str | None, doc: dict[str, Any]) -> None:
    if path:
        path = resolve_path(path)
        atomic_write_json(path, doc)
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        argv = argv[1:]
    if argv and argv[0] in SCRIPTS:
        return SCRIPTS[argv[0]].main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)

    if args.command == "table":
        print(f"wrote {write_markdown(args.md)}")
        return 0
    if args.command == "flops":
        rep = flops_report(args.preset, m1=args.m1)
        print(render_flops(rep), end="")
        _write_json(args.json, rep)
        return 0
    if args.command == "check":
        rep = check_device(args.device, tuple(p for p in args.presets.split(",") if p), batch_size=args.batch_size)
        _write_json(args.json, rep)
        print(f"check {args.device}: {'PASSED' if rep['passed'] else 'FAILED'}")
        return 0 if rep["passed"] else 1

    if args.command == "suite":
        path = resolve_path(args.json) if args.json else resolve_path(args.out_dir or BENCH_DIR) / f"{args.name}.json"
        doc = run_suite(args.name, isolate=not args.in_process, only_device=args.device, out_path=path,
                        budget_s=args.budget_s)
        print(f"wrote {path}")
    else:  # throughput
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        bs = args.batch_size
        if bs is None:
            bs = RECIPES[args.preset].batch_size if device.startswith("cuda") else 4
        try:
            cfg = BenchConfig(preset=args.preset, batch_size=bs, m1=args.m1, model=dict(args.model),
                              nonlocal_impl=args.nonlocal_impl, recompute=args.recompute, precision=args.precision,
                              compile=args.compile or args.compile_mode != "default",
                              compile_mode=args.compile_mode, channels_last=args.channels_last,
                              fused_adam=args.fused_adam, device=device, steps=args.steps, warmup=args.warmup,
                              threads=(args.threads if args.threads is not None
                                       else int(os.environ.get("OMP_NUM_THREADS", "1") or 1)),
                              peak_tflops=args.peak_tflops)
            check_model(cfg.train_config())  # model fields and values, as `slnl train` checks them
        except ValueError as e:  # a configuration the engine or the benchmark refuses: one line, exit status 2
            parser.error(str(e))
        doc = {**header(), **(safe_measure(cfg) if args.in_process else measure_isolated(cfg))}
        print(f"{cfg.name}: {one_line(doc)}")
        _write_json(args.json, doc)
    if args.md:
        print(f"wrote {write_markdown(args.md)}")
    return 1 if any("error" in r for r in rows_of(doc)) else 0


if __name__ == "__main__":
    raise SystemExit(main())
