"""Is cuDNN attention safe for this model yet? A check to re-run on a new torch / cuDNN.

The package leaves cuDNN attention out of the fused non-local's kernels (``slnl.models.nonlocal_.FUSED_BACKENDS``):
on an H200 (torch 2.11, cuDNN 9) its bf16 backward returned NaN gradients for the kinetics preset after a few
training steps, where flash, memory-efficient and math attention gave finite ones at the same parameters.

This script trains a preset in bf16 with the package as it is (the engine's ``TrainStep``). At every step it takes
each non-local module's attention inputs (q, k, v: a forward pre-hook keeps the module's input, the module's own
projection makes them) and runs the attention forward and backward twice on them, with the package's kernels and
with the candidate kernel alone, against the same random output gradient. It reports, per preset, the first step at
which the candidate's gradients are non-finite while the package's are finite, and the largest relative difference
of the gradients. Nothing in the package is changed.

    slnl bench kernels                                   # cuda, kinetics + ntu, 20 steps
    slnl bench kernels --device cpu --presets cpu --steps 2 --candidate math   # dry run (CPU)

Exit status 0 when the candidate's gradients were finite wherever the package's were (and something was compared).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from slnl import recipes
from slnl.engine.device import autocast, resolve_device
from slnl.engine.step import TrainStep, build
from slnl.models import NonLocal
from slnl.models.nonlocal_ import FUSED_BACKENDS

CANDIDATES = {"cudnn": SDPBackend.CUDNN_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
              "flash": SDPBackend.FLASH_ATTENTION, "math": SDPBackend.MATH}


def attention_grads(q, k, v, grad_out, backends) -> torch.Tensor:
    """d(q, k, v) of ``scaled_dot_product_attention`` (scale 1, as the non-local's Eq. 8) with ``backends`` only."""
    q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
    with sdpa_kernel(backends):
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
    dq, dk, dv = torch.autograd.grad(out, (q, k, v), grad_out)
    return torch.cat([g.float().flatten() for g in (dq, dk, dv)])


def check_preset(preset: str, device: torch.device, candidate: str, steps: int, batch_size: int,
                 precision: str) -> dict:
    cfg = recipes.config_for(preset, batch_size=batch_size, precision=precision, device=str(device))
    t = build(cfg, device)
    step = TrainStep(t)
    kept: list[tuple[NonLocal, torch.Tensor]] = []
    for mod in t.model.modules():
        if isinstance(mod, NonLocal) and mod.impl == "fused":
            mod.register_forward_pre_hook(lambda m, inp: kept.append((m, inp[0].detach())))
    c = t.model.config
    gen = torch.Generator().manual_seed(1)
    entry = {"first_nonfinite_step_candidate": None, "nonfinite_steps_package": 0, "compared": 0,
             "max_rel_grad_diff": 0.0, "modules": 0}
    for s in range(1, steps + 1):
        kept.clear()
        x = torch.randn(batch_size, c.in_channels, c.T, c.num_joints, c.num_persons, generator=gen).to(device)
        y = torch.randint(0, c.num_classes, (batch_size,), generator=gen).to(device)
        res = step(x, y, global_step=s)
        entry["modules"] = len(kept)
        for mod, inp in kept:
            with torch.no_grad(), autocast(t.precision, device):
                q, k, v = mod._sequences(inp)
            g = torch.randn(v.shape, generator=gen).to(device=device, dtype=v.dtype)
            ref = attention_grads(q, k, v, g, FUSED_BACKENDS)
            try:
                cand = attention_grads(q, k, v, g, [CANDIDATES[candidate]])
            except RuntimeError as e:  # the kernel does not accept these inputs (or this device): nothing to compare
                entry["candidate_error"] = f"{type(e).__name__}: {str(e)[:300]}"
                continue
            if not bool(torch.isfinite(ref).all()):
                entry["nonfinite_steps_package"] += 1
            elif not bool(torch.isfinite(cand).all()):
                entry["first_nonfinite_step_candidate"] = entry["first_nonfinite_step_candidate"] or s
            else:
                rel = float((cand - ref).norm() / ref.norm().clamp_min(1e-30))
                entry["max_rel_grad_diff"] = max(entry["max_rel_grad_diff"], rel)
                entry["compared"] += 1
        entry["final_loss"] = float(res.loss)
    entry["ok"] = (entry["first_nonfinite_step_candidate"] is None and entry["compared"] > 0
                   and "candidate_error" not in entry)
    return entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="slnl bench kernels", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--presets", default="kinetics,ntu")
    ap.add_argument("--candidate", choices=sorted(CANDIDATES), default="cudnn")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    ap.add_argument("--json", default=None, help="write the report here")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    report = {"device": str(device), "candidate": args.candidate, "steps": args.steps, "torch": torch.__version__,
              "presets": {}}
    for preset in (p for p in args.presets.split(",") if p):
        report["presets"][preset] = e = check_preset(preset, device, args.candidate, args.steps, args.batch_size,
                                                    args.precision)
        print(f"[{args.candidate} attention, {device}] {preset}: {json.dumps(e)}", flush=True)
    report["passed"] = all(e["ok"] for e in report["presets"].values())
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"{args.candidate} attention: {'finite wherever the package kernels were' if report['passed'] else 'NOT OK'}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
