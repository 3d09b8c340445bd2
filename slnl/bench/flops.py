"""FLOPs and MFU: what the model's arithmetic costs, where it goes, and what fraction of the device's peak a step
reaches.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode``: matrix products, convolutions and attention (2
FLOPs per multiply-add; forward + backward for a training step), the operations that run on matrix units;
element-wise work, FFTs and the optimiser are not counted (the usual MFU convention, PaLM appendix B). These are
*model* FLOPs: the CPU flash-attention kernel, which PyTorch's counter lacks, is added, and a fused attention backward
is counted without the affinity recomputation that flash kernels do, so fused and reference non-local count the same.

MFU = FLOPs/sample × samples/s ÷ peak; ``peak`` is the datasheet's dense rate for the device and the precision used
(``PEAK_TFLOPS``): bf16 for bf16; for fp32 the TF32 rate when cuDNN may use TF32 (PyTorch's default for
convolutions, which dominate this model), else the plain FP32 rate. CPUs have no entry.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils import flop_counter as fc

from slnl import recipes
from slnl.bench.provenance import header
from slnl.engine.step import build_model, forward, gradients, loss_of
from slnl.models import NonLocal

# Dense (no structured sparsity) datasheet rates in TFLOP/s, matched against ``torch.cuda.get_device_name()`` by the
# longest key that occurs in it. The SXM H100 reports itself as "NVIDIA H100 80GB HBM3"; the H200 shares its compute.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H200": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "H100 NVL": {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0},
    "H100 PCIe": {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2},
    "H100": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "A100": {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5},
}


def peak_tflops_for(device_name: str, precision: str, tf32: bool) -> tuple[float | None, str | None]:
    """``(peak TFLOP/s, basis)`` from ``PEAK_TFLOPS`` for a CUDA device name, or ``(None, None)`` if unknown.

    ``basis`` is ``bf16``, ``tf32`` (fp32 run with TF32 allowed) or ``fp32``.
    """
    basis = "bf16" if precision == "bf16" else ("tf32" if tf32 else "fp32")
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):
        if key.lower() in device_name.lower():
            return PEAK_TFLOPS[key][basis], basis
    return None, None


def mfu(flops_per_sample: float | None, samples_per_s: float | None, peak_tflops: float | None) -> float | None:
    """Model FLOP utilisation: achieved FLOP/s over the device's peak; ``None`` when any input is unknown."""
    if not flops_per_sample or not samples_per_s or not peak_tflops:
        return None
    return flops_per_sample * samples_per_s / (peak_tflops * 1e12)


def _attention_flop_mapping() -> dict[Any, Callable[..., int]]:
    """FLOP formulas for fused attention that count *model* FLOPs, so that fused = reference.

    * PyTorch registers no formula for the CPU flash kernel (``_scaled_dot_product_flash_attention_for_cpu``): its
      forward gets PyTorch's own ``sdpa_flop_count`` (QK^T and PV, 2 FLOPs per multiply-add).
    * PyTorch's backward formulas for fused attention include the recomputation of QK^T that flash kernels do instead
      of storing the affinity (5 products). The reference implementation stores it (4 products). MFU is about the
      model's arithmetic, not a kernel's choice to recompute, so every fused backward here counts 4 products:
      ``sdpa_backward_flop_count - (QK^T)``, which equals the reference's einsum backward exactly.
    The wrappers receive shapes, not tensors (FlopCounterMode's ``shape_wrapper``).
    """
    aten = torch.ops.aten

    def fwd(q, k, v, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_flop_count(q, k, v)

    def bwd(grad_out, q, k, v, *args, out_shape=None, **kwargs) -> int:
        b, h, s_q, d_q = q
        s_k = k[2]
        return fc.sdpa_backward_flop_count(grad_out, q, k, v) - fc.bmm_flop((b * h, s_q, d_q), (b * h, d_q, s_k))

    mapping: dict[Any, Callable[..., int]] = {}
    for name in ("_scaled_dot_product_flash_attention_for_cpu",):
        if hasattr(aten, name):
            mapping[getattr(aten, name)] = fwd
    for name in ("_scaled_dot_product_flash_attention_for_cpu_backward", "_scaled_dot_product_flash_attention_backward",
                 "_scaled_dot_product_efficient_attention_backward", "_scaled_dot_product_cudnn_attention_backward"):
        if hasattr(aten, name):
            mapping[getattr(aten, name)] = bwd
    return mapping


def _counter() -> fc.FlopCounterMode:
    return fc.FlopCounterMode(display=False, custom_mapping=_attention_flop_mapping())


def count_flops(fn: Callable[[], Any]) -> int:
    """Total FLOPs (2 per multiply-add) of the matrix products, convolutions and attention that ``fn()`` runs."""
    counter = _counter()
    with counter:
        fn()
    return int(counter.get_total_flops())


def _part(name: str, mod: torch.nn.Module, parent: torch.nn.Module | None) -> str:
    leaf = name.rpartition(".")[2]
    if isinstance(mod, NonLocal):
        return f"non-local attention ({mod.dims})"
    if isinstance(parent, NonLocal):
        return "non-local projections"
    if leaf in ("t_local", "s_local", "st_local"):
        return "local convolutions"
    for key, part in ((".residual", "residual projections"), (".frequency", "frequency attention"),
                      (".transform", "transform")):
        if key in name:
            return part
    return "heads" if leaf.startswith("fc_") else "other"


def flop_breakdown(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable,
                   precision: str = "fp32") -> dict[str, Any]:
    """Where a sample's FLOPs go: forward FLOPs per part of the network, and training FLOPs per kind of operator.

    The forward (the engine's ``forward``) is attributed to modules exactly (each module's own FLOPs, without its
    children's): the non-local attention proper (q·k and affinity·v, per ``dims``), the non-local projections (W_ϕ,
    W_ψ, W_g, W_w), the local convolutions, the residual projections, the frequency attention (DFTs and gates), the
    transform network and the heads. The training step's forward + backward (the engine's ``gradients``) is split by
    operator: attention, convolution, matrix product. Per sample: ``x``'s batch size divides everything.
    """
    B = x.shape[0]
    counter = _counter()
    with torch.no_grad(), counter:
        forward(model, x, precision)
    totals = {name.partition(".")[2]: sum(ops.values()) for name, ops in counter.get_flop_counts().items()
              if name != "Global"}
    modules = dict(model.named_modules())
    parts: dict[str, float] = {}
    for name, total in totals.items():
        mod = modules.get(name)
        if mod is None:
            continue
        own = total - sum(totals.get(f"{name}.{child}" if name else child, 0) for child, _ in mod.named_children())
        if own:
            part = _part(name, mod, modules.get(name.rpartition(".")[0]))
            parts[part] = parts.get(part, 0.0) + own / B

    counter = _counter()
    with counter:
        gradients(model, loss_fn, x, y, precision)
    kinds: dict[str, float] = {}
    for op, f in counter.get_flop_counts()["Global"].items():
        name = str(op)
        kind = "attention" if "attention" in name else "convolution" if "convolution" in name else "matmul"
        kinds[kind] = kinds.get(kind, 0.0) + f / B
    model.zero_grad(set_to_none=True)
    return {"forward_flops_per_sample": dict(sorted(parts.items(), key=lambda kv: -kv[1])),
            "train_flops_per_sample_by_op": dict(sorted(kinds.items(), key=lambda kv: -kv[1]))}


def flops_report(preset: str, m1: int | None = None) -> dict[str, Any]:
    """``flop_breakdown`` of one clip of ``preset``'s training configuration (random input), with the totals.
    Model FLOPs: the fused non-local's selective recomputation is switched off (``recompute="never"``)."""
    cfg = recipes.config_for(preset, model={"recompute": "never", **({} if m1 is None else {"m1": m1})})
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).train()
    c = model.config
    x = torch.randn(1, c.in_channels, c.T, c.num_joints, c.num_persons)
    bd = flop_breakdown(model, x, torch.zeros(1, dtype=torch.long), loss_of(cfg))
    return {"preset": preset, "m1": c.m1, **bd,
            "forward_flops_per_sample_total": sum(bd["forward_flops_per_sample"].values()),
            "train_flops_per_sample_total": sum(bd["train_flops_per_sample_by_op"].values()), **header()}


def render_flops(rep: dict[str, Any]) -> str:
    """Markdown tables of a ``flops_report``."""
    fwd, tot = rep["forward_flops_per_sample"], rep["forward_flops_per_sample_total"]
    train, ttot = rep["train_flops_per_sample_by_op"], rep["train_flops_per_sample_total"]
    lines = [f"FLOPs per clip, `{rep['preset']}` preset (m1 = {rep['m1']}): forward {tot / 1e9:.1f} GFLOP, "
             f"training step {ttot / 1e9:.1f} GFLOP", "", "| forward, by part | GFLOP | share |", "| --- | ---: | ---: |"]
    lines += [f"| {k} | {v / 1e9:.2f} | {100 * v / tot:.1f}% |" for k, v in fwd.items()]
    lines += ["", "| training step, by operator | GFLOP | share |", "| --- | ---: | ---: |"]
    lines += [f"| {k} | {v / 1e9:.2f} | {100 * v / ttot:.1f}% |" for k, v in train.items()]
    return "\n".join(lines) + "\n"
