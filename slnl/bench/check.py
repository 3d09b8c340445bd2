"""Correctness on a device: the engine's gradient pass on the device against a float64 CPU reference of the same
weights (``slnl bench check``)."""
from __future__ import annotations

import copy
import time
from typing import Any, Callable

import torch

from slnl.bench.provenance import header
from slnl import recipes
from slnl.engine.step import build_model, forward, gradients, loss_of
from slnl.models import NONLOCAL_IMPLS, PRESETS, NonLocal

# ||a - b|| / ||b|| against float64 on the CPU. Measured on CPU fp32 (ntu preset, batch 2, m1 = 6, random W_w):
# outputs ~4e-6, loss ~7e-7, gradients 5e-5 (reference) and 4e-4 (fused: the paper's unscaled exp(phi^T psi)
# gives large attention logits, whose softmax amplifies float32 rounding). Limits leave ~5x room for other kernels.
CHECK_TOL = {"out": 1e-4, "loss": 1e-5, "grad": 2e-3, "grad_tensor": 2e-2}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(torch.finfo(torch.float64).tiny))


def _step(model: torch.nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor,
          precision: str) -> dict[str, Any]:
    """The engine's forward (heads) and gradient pass (loss, gradients) of one batch; on the CPU, detached."""
    with torch.no_grad():
        heads = forward(model, x, precision)  # BN in training mode: the same batch statistics as the pass below
    model.zero_grad(set_to_none=True)
    sums, _ = gradients(model, loss_fn, x, y, precision)
    return {"heads": [h.detach().double().cpu() if h is not None else None for h in heads],
            "loss": (sums[0] / sums[5]).detach().double().cpu(),
            "grads": [p.grad.detach().double().cpu() if p.grad is not None else torch.zeros(p.shape, dtype=torch.float64)
                      for p in model.parameters()]}


def compare(res: dict[str, Any], ref: dict[str, Any]) -> dict[str, float]:
    """Relative errors of heads (worst head), loss, all gradients together and the worst single gradient tensor."""
    out = max(_rel(a, b) for a, b in zip(res["heads"], ref["heads"]) if b is not None)
    g, gr = torch.cat([t.flatten() for t in res["grads"]]), torch.cat([t.flatten() for t in ref["grads"]])
    floor = 1e-3 * float(gr.norm())  # tensors whose exact gradient is ~0 (biases before a BN) are judged on this
    per = max(float((a - b).norm()) / max(float(b.norm()), floor) for a, b in zip(res["grads"], ref["grads"]))
    return {"out": out, "loss": _rel(res["loss"], ref["loss"]), "grad": _rel(g, gr), "grad_tensor": per}


def check_device(device: str = "cuda", presets: tuple[str, ...] = ("cpu", "ntu"), batch_size: int = 2,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fused and reference non-local on ``device`` in float32 against a float64 CPU reference of the same weights.

    Per preset (its TrainConfig's loss; all blocks SLnL, ``m1 = depth``; dropout 0 so that CPU and device draw no
    different masks; every ``W_w`` re-initialised at random, since its zero initialisation would make the non-local
    branch -- and the fused-vs-reference comparison -- vacuous; BN in training mode): heads, loss and gradients,
    relative errors against ``CHECK_TOL``; fused vs reference on the device directly; and a bf16-autocast pass,
    which must be finite (its error against float64 is reported, not judged). TF32 is off for the float32 passes.
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"check_device({device!r}): CUDA is not available in torch {torch.__version__}")
        tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    report: dict[str, Any] = {"device": str(dev), "tolerances": CHECK_TOL, "presets": {}, "passed": True}
    try:
        for preset in presets:
            depth = len(PRESETS[preset].channels)
            cfg = recipes.config_for(preset, model=dict(m1=depth, dropout=0.0, nonlocal_impl="reference"))
            torch.manual_seed(cfg.seed)
            base = build_model(cfg)
            for mod in base.modules():
                if isinstance(mod, NonLocal):
                    mod.W_w.reset_parameters()
            loss_fn, c = loss_of(cfg), base.config
            x = torch.randn(batch_size, c.in_channels, c.T, c.num_joints, c.num_persons)
            y = torch.randint(0, c.num_classes, (batch_size,))
            t0 = time.perf_counter()
            ref = _step(copy.deepcopy(base).double(), loss_fn, x.double(), y, "fp32")
            entry: dict[str, Any] = {"batch_size": batch_size, "m1": depth, "cpu_fp64_s": time.perf_counter() - t0}

            def on_device(impl: str, precision: str) -> dict[str, Any]:
                m = copy.deepcopy(base)
                for mod in m.modules():
                    if isinstance(mod, NonLocal):
                        mod.impl = impl
                return _step(m.to(dev), loss_fn, x.to(dev), y.to(dev), precision)

            runs = {impl: on_device(impl, "fp32") for impl in NONLOCAL_IMPLS}
            pairs = {f"{impl}_fp32_vs_cpu_fp64": (res, ref) for impl, res in runs.items()}
            pairs["fused_vs_reference_fp32"] = (runs["fused"], runs["reference"])
            for key, (a, b) in pairs.items():
                err = compare(a, b)
                entry[key] = {**err, "ok": all(err[k] <= CHECK_TOL[k] for k in CHECK_TOL)}
                report["passed"] &= entry[key]["ok"]
            bf = on_device("fused", "bf16")
            finite = bool(all(torch.isfinite(t).all() for t in [*(h for h in bf["heads"] if h is not None),
                                                                  bf["loss"], *bf["grads"]]))
            entry["fused_bf16_vs_cpu_fp64"] = {**compare(bf, ref), "finite": finite, "ok": finite}
            report["passed"] &= finite
            report["presets"][preset] = entry
            log(f"[check {device}] {preset}: " + "; ".join(
                f"{k}: " + ", ".join(f"{kk}={vv:.2e}" if isinstance(vv, float) else f"{kk}={vv}"
                                     for kk, vv in v.items())
                for k, v in entry.items() if isinstance(v, dict)))
    finally:
        if dev.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    report.update(header())
    return report
