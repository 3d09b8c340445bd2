"""GPU training check for the engine (< 3 min on one H100): throughput, memory, CUDA/CPU agreement, fit() end to end.

    slnl bench gpu-train             # ntu preset (M1=3, SMFL, bf16), batch 32 and 128
    slnl bench gpu-train --compile   # also time torch.compile at the largest batch
    slnl bench gpu-train --tiny      # seconds, any machine: tiny model, checks the code path
    slnl bench gpu-train --engine    # also fit()'s own rate per engine variant (ENGINE_VARIANTS)

Sections (every line starts with "[check]" and is flushed at once, so a killed run still shows what it measured):

1. train-step throughput: the engine's training step (``slnl.engine.step.TrainStep``, the one fit() runs) of the
   ``ntu`` preset's TrainConfig (CS-T, rFA, SLnL with m1=3; its loss and optimiser), bf16, random inputs already on
   the device; ``--warmup`` steps untimed, then ``--steps`` timed steps (CUDA-synchronised). Prints samples/s,
   ms/step and peak allocated memory per batch size.
2. CUDA vs CPU: one set of weights with the non-local modules' W_w random (at initialisation W_w = 0 hides them),
   fp32 (TF32 off, ``slnl.engine.device.strict_fp32``): the heads in eval mode, and the parameters after one
   training step with gradient accumulation and one deferred (``sync_every``) step; max |difference| relative to
   the logits' (the update's) scale must be < 1e-4, and the non-local branches must move the prediction.
3. fit(): the real engine on a random store written to a temporary directory (``data_mode=gpu``, bf16, one short
   epoch + evaluation): checks that the GPU-resident data path, autocast, checkpoints and result.json work on CUDA
   and prints the engine's own samples/s (which includes the data gather and one host sync per step).
4. ``--engine``: fit()'s training rate in its second epoch for each engine variant — plain, ``sync_every=16``
   (one host sync per 16 steps), + NHWC, + compile, + CUDA graphs — the rate a paper-scale run would see.
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from slnl.data.store import write_store
from slnl.engine import evaluate, fit
from slnl import recipes
from slnl.engine.step import TrainStep, build
from slnl.models import NonLocal
from slnl.models import build as build_model


def say(msg: str) -> None:
    print(f"[check] {msg}", flush=True)


def make_random_store(root: Path, n_train: int, n_test: int, num_classes: int, C: int, T: int, V: int, M: int,
                      seed: int = 0) -> Path:
    """A store in the documented format (docs/design.md), with its content fingerprint (training refuses a store
    without one), of random clips of 0.5T…T valid frames."""
    rng = np.random.default_rng(seed)
    N = n_train + n_test
    x = rng.standard_normal((N, C, T, V, M), dtype=np.float32)
    nf = rng.integers(T // 2, T + 1, N)
    for i, n in enumerate(nf):
        x[i, :, n:] = 0
    test = np.arange(N) >= n_train
    meta = {"dataset": "random", "class_names": [f"c{k}" for k in range(num_classes)],
            "names": [f"r{i}" for i in range(N)], "splits": ["xsub"]}
    return write_store(root, x, np.arange(N) % num_classes, nf, {"xsub_train": ~test, "xsub_test": test}, meta)


def throughput(model_kw: dict, preset: str, batch: int, steps: int, warmup: int, device: torch.device,
               precision: str, compile_: bool) -> None:
    """The engine's own training step (``slnl.engine.step``: built from the TrainConfig as fit() builds it, called as
    fit() calls it) on random inputs already on the device: samples/s over ``steps`` steps after ``warmup``."""
    cfg = recipes.config_for(preset, model=model_kw, batch_size=batch, precision=precision, device=str(device),
                             compile=compile_)
    t = build(cfg, device)
    step = TrainStep(t, cfg.accum_steps, cfg.sync_every)
    c = t.model.config
    x = torch.randn(batch, c.in_channels, c.T, c.num_joints, c.num_persons, device=device)
    y = torch.randint(0, c.num_classes, (batch,), device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for i in range(warmup):
        res = step(x, y, global_step=i + 1)
    sync()
    t_warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(steps):
        res = step(x, y, global_step=warmup + i + 1)
    sync()
    dt = time.perf_counter() - t0
    peak = f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB" if device.type == "cuda" else "n/a (CPU)"
    ok = res.nonfinite is None and bool(torch.isfinite(res.loss))
    say(f"train {preset} m1={c.m1} {precision} batch={batch}{' compiled' if compile_ else ''}: "
        f"{batch * steps / dt:.1f} samples/s, {dt / steps * 1e3:.1f} ms/step, peak {peak}, "
        f"warm-up {warmup} steps {t_warm:.1f}s, final loss {float(res.loss):.4f} {'finite' if ok else 'NOT FINITE'}")
    if not ok:
        raise SystemExit("[check] FAIL: non-finite loss")


def randomise_nonlocal(model: torch.nn.Module, seed: int = 0) -> int:
    """Give every non-local module a random output weighting W_w (Eq. 11; it starts at zero, where a non-local branch
    contributes exactly nothing and a comparison cannot see it). Returns the number of modules changed."""
    g = torch.Generator().manual_seed(seed)
    mods = [m for m in model.modules() if isinstance(m, NonLocal)]
    with torch.no_grad():
        for m in mods:
            w = m.W_w.weight
            w.copy_(0.1 * torch.randn(w.shape, generator=g, dtype=w.dtype).to(w.device))
    return len(mods)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double().cpu()).abs().max() / a.double().abs().max().clamp_min(1e-12))


def cuda_vs_cpu(model_kw: dict, preset: str, batch: int, device: torch.device) -> bool:
    """One set of weights, non-local W_w random, fp32 (TF32 off), on ``device`` and on the CPU: the heads in eval mode,
    then the parameters after one training step with gradient accumulation (two micro-batches) and one deferred
    (``sync_every``) step. On the CPU it compares the CPU with itself: the code path, with nothing to find."""
    torch.manual_seed(0)
    ref = build_model(preset, **model_kw)
    changed = randomise_nonlocal(ref)
    x = torch.randn(batch, ref.config.in_channels, ref.config.T, ref.config.num_joints, ref.config.num_persons)
    y = torch.randint(0, ref.config.num_classes, (batch,))
    worst = 0.0
    with torch.no_grad():
        silent = copy.deepcopy(ref).eval()
        for m in silent.modules():
            if isinstance(m, NonLocal):
                m.W_w.weight.zero_()
        seen = _rel(ref.eval()(x).c, silent(x).c)  # how much the non-local branches move the prediction
        other = copy.deepcopy(ref).to(device).eval()
        for name, ha, hb in zip(("p", "v", "c"), ref(x), other(x.to(device))):
            if ha is not None:
                worst = max(worst, _rel(ha, hb))
                say(f"cuda-vs-cpu fp32 head {name}: max|diff|/max|logit| = {_rel(ha, hb):.2e}")
    say(f"cuda-vs-cpu: {changed} non-local modules with random W_w move head c by {seen:.2e} (relative)")
    for label, over in (("accum_steps=2", dict(accum_steps=2)), ("sync_every=2", dict(sync_every=2))):
        params = []
        for dev in (torch.device("cpu"), device):
            cfg = recipes.config_for(preset, model=dict(model_kw, dropout=0.0), batch_size=batch, precision="fp32",
                                     device=str(dev), **over)
            t = build(cfg, dev)
            t.model.load_state_dict(ref.state_dict())
            res = TrainStep(t, cfg.accum_steps, cfg.sync_every)(x.to(dev), y.to(dev), global_step=1)
            assert res.nonfinite is None, f"{label}: non-finite step on {dev}"
            params.append(torch.cat([p.detach().double().cpu().flatten() for p in t.model.parameters()]))
        moved = float((params[0] - torch.cat([p.detach().double().flatten() for p in ref.parameters()])).abs().max())
        diff = float((params[0] - params[1]).abs().max()) / max(moved, 1e-12)
        worst = max(worst, diff)
        say(f"cuda-vs-cpu fp32 train step {label}: max|Δparam difference| / max|Δparam| = {diff:.2e}")
    ok = worst < 1e-4 and seen > 1e-3
    say(f"cuda-vs-cpu: {'PASS' if ok else 'FAIL'} (worst {worst:.2e}, tolerance 1e-4; the non-local branches "
        f"{'are' if seen > 1e-3 else 'are NOT'} seen)")
    return ok


def fit_check(model_kw: dict, preset: str, batch: int, steps: int, device: str, tiny: bool) -> bool:
    T = 32 if tiny else 64
    with tempfile.TemporaryDirectory() as tmp:
        store = make_random_store(Path(tmp) / "store", n_train=batch * steps, n_test=2 * batch,
                                  num_classes=model_kw.get("num_classes", 60), C=3, T=T + 20, V=25, M=2)
        cfg = recipes.config_for(preset, model=model_kw, data=str(store), out=str(Path(tmp) / "run"), epochs=1,
                                 batch_size=batch, precision="bf16" if device != "cpu" else "fp32", device=device,
                                 data_mode="gpu" if device != "cpu" else "cpu", progress=False,
                                 checkpoint_every_steps=steps // 2)
        t0 = time.perf_counter()
        res = fit(cfg)
        wall = time.perf_counter() - t0
        h = res.history[0]
        ev = evaluate(res.run_dir, device=device)
        files = sorted(p.name for p in Path(res.run_dir).iterdir())
        # evaluate() reads the store through the CPU dataset in a fresh model; under bf16 and cuDNN autotuning a
        # near-tie may flip one prediction, so agreement within one test sample passes.
        agree = abs(ev["top1"] - res.top1) <= 1.0 / ev["n"] + 1e-12
        ok = (agree and {"last.pt", "result.json", "metrics.csv"} <= set(files)
              and np.isfinite(h["train"]["loss"]["total"]))
        say(f"fit(): {h['train']['steps']} steps of {batch} on {res.result['device']['name']} "
            f"({res.result['device']['precision']}, data_mode={res.result['device']['data_mode']}): engine "
            f"{h['samples_per_s']:.1f} samples/s incl. data; epoch+eval {h['epoch_time_s']:.1f}s, wall {wall:.1f}s; "
            f"test top1 {res.top1:.3f} (random labels: chance); evaluate() top1 {ev['top1']:.3f} "
            f"({'identical' if ev['top1'] == res.top1 else 'within one sample' if agree else 'DIFFERENT'})")
        say(f"fit(): {'PASS' if ok else 'FAIL'} (files: {', '.join(files)})")
        return ok


ENGINE_VARIANTS: dict[str, dict] = {
    # what fit() runs at: the plain path, then the engine's candidate fast paths one on top of the other
    "plain": {},
    "sync_every=16": dict(sync_every=16),
    "+channels_last": dict(sync_every=16, model=dict(channels_last=True)),
    "+compile": dict(sync_every=16, model=dict(channels_last=True), compile=True),
    "+cudagraphs": dict(sync_every=16, model=dict(channels_last=True), compile=True, compile_mode="reduce-overhead"),
}


def engine_throughput(model_kw: dict, preset: str, batch: int, steps: int, device: str, tiny: bool,
                      variants: list[str], precision: str) -> dict[str, float]:
    """fit()'s own training rate, epoch 2 of 2 (epoch 1 holds the warm-up and any compilation), per variant; on
    CUDA also the host-device synchronisations per training step that PyTorch reports
    (``torch.cuda.set_sync_debug_mode("warn")``, counted over both epochs and the evaluation)."""
    T = 32 if tiny else 64
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = make_random_store(Path(tmp) / "store", n_train=batch * steps, n_test=batch,
                                  num_classes=model_kw.get("num_classes", 60), C=3, T=T + 20, V=25, M=2)
        for name in variants:
            v = dict(ENGINE_VARIANTS[name])
            kw = dict(model_kw, **v.pop("model", {}))
            cfg = recipes.config_for(preset, model=kw, data=str(store), out=str(Path(tmp) / name), epochs=2,
                                     batch_size=batch, precision=precision, device=device,
                                     data_mode="gpu" if device != "cpu" else "cpu", progress=False, eval_every=2,
                                     **v)
            cuda = device != "cpu" and torch.cuda.is_available()
            try:
                with warnings.catch_warnings(record=True) as seen:
                    warnings.simplefilter("always")
                    if cuda:
                        torch.cuda.set_sync_debug_mode("warn")
                    try:
                        h = fit(cfg).history
                    finally:
                        if cuda:
                            torch.cuda.set_sync_debug_mode("default")
                syncs = sum("synchroniz" in str(w.message) for w in seen)
                out[name] = h[1]["samples_per_s"]
                say(f"engine {name:16s} batch {batch}: {h[1]['samples_per_s']:.1f} samples/s in epoch 2 "
                    f"(epoch 1: {h[0]['samples_per_s']:.1f}), loss {h[1]['train']['loss']['total']:.4f}"
                    + (f", {syncs / (2 * steps):.2f} synchronising calls per step" if cuda else ""))
            except Exception as e:  # one variant failing (e.g. CUDA graphs) must not hide the others
                say(f"engine {name:16s} batch {batch}: FAILED {type(e).__name__}: {str(e)[:300]}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="slnl bench gpu-train", description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny model, few steps: check the code path on any machine")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="bf16", choices=("fp32", "bf16", "fp16"))
    ap.add_argument("--compile", action="store_true", help="also time torch.compile at the largest batch")
    ap.add_argument("--engine", nargs="*", default=None, choices=list(ENGINE_VARIANTS),
                    help="also time fit() itself per engine variant at the first batch size (no names: all)")
    args = ap.parse_args(argv)

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if args.tiny:
        preset, model_kw = "cpu", dict(channels=(8, 8, 16, 16, 16, 16), T=16, new_joints=8, K=2, num_classes=10)
        batches, steps, warmup = args.batch_sizes or [8], args.steps or 3, args.warmup or 1
    else:
        preset, model_kw = "ntu", dict(m1=3)
        batches, steps, warmup = args.batch_sizes or [32, 128], args.steps or 30, args.warmup or 10
    precision = args.precision if device.type == "cuda" or args.tiny else "fp32"
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    say(f"torch {torch.__version__}, CUDA {torch.version.cuda}, device {device} ({dev_name}), preset {preset}, "
        f"{model_kw}, precision {precision}")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    t_all = time.perf_counter()
    ok = True
    for b in batches:
        throughput(model_kw, preset, b, steps, warmup, device, precision, compile_=False)
    if args.compile:
        throughput(model_kw, preset, max(batches), steps, warmup, device, precision, compile_=True)
    ok &= cuda_vs_cpu(model_kw, preset, 4 if args.tiny else 8, device)
    ok &= fit_check(model_kw, preset, batches[0], 4 if args.tiny else 20, str(device), args.tiny)
    if args.engine is not None:
        names = args.engine or list(ENGINE_VARIANTS)
        rates = engine_throughput(model_kw, preset, batches[0], 4 if args.tiny else 40, str(device), args.tiny, names,
                                  precision)
        ok &= len(rates) == len(names)
    say(f"{'ALL PASS' if ok else 'SOME CHECKS FAILED'} in {time.perf_counter() - t_all:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
