"""§3.3 Non-local module (Eq. 6–11): embedded Gaussian affinity, linear g, zero-initialised output weighting W_w.

For ``x: (B, P, T, N)`` and positions i, j of one sequence,

    y_i = Σ_j softmax_j(ϕ(x_i)^T ψ(x_j)) g(x_j)        (Eq. 6–10, Z_i = Σ_j φ(x_i, x_j) makes it a softmax)
    out = W_w y                                         (Eq. 11)

with ϕ, ψ, g linear maps of the channels (1×1 convolutions) P → L, P → L, P → Q and W_w a linear map Q → Q, all
without bias, as Eq. 7, 9, 10 and 11 print them. W_w starts at zero, so a freshly inserted module outputs exactly 0
and an SLnL block starts as its local block ("drop-in without breaking its initial behaviour", §3.3).

Choices the paper leaves open:
* Embedding width L = Q. The paper fixes W_g ∈ R^{Q×P} and W_w ∈ R^{Q×Q} but not L. The field's practice for the
  embedded Gaussian (Wang et al. 2018) is a bottleneck of half the channels for θ, ϕ *and* g, which their W_z maps
  back; this paper's g and W_w have no bottleneck (W_w is Q×Q), and we keep ϕ, ψ at the same width: L = Q. It gives
  q, k, v one head size, which PyTorch's fused attention kernels need (with unequal head sizes PyTorch's CPU flash
  kernel does not accept the inputs and the math kernel runs, materialising the L×L affinity), and it lets ϕ, ψ, g
  be one projection P → 3Q. The price: L = Q/2 would halve the attention's q·k product and so save about a quarter
  of the attention FLOPs (``slnl bench flops`` counts them), on kernels that accept unequal head sizes.
* Layout: the 1×1 convolutions are applied as ``nn.Linear`` on a channels-last view, so [W_ϕ; W_ψ; W_g] writes q, k, v
  straight into the (sequence, channel) layout SDPA wants (one GEMM, no copy for "s" and "st"), and W_w runs on
  SDPA's output before the layout is turned back. Same mathematics as a Conv2d(·, ·, 1), with fewer layout copies,
  and it is what fused attention kernels consume.
* No 1/√L scaling: Eq. 8 is exp(ϕ^T ψ) (as in Wang et al. 2017's embedded Gaussian), so SDPA gets ``scale=1.0``.
* ``dims`` picks the set Ω: "t" attends over the T frames of each joint, "s" over the N joints of each frame, "st"
  over all T·N positions of a clip.

``impl="fused"`` runs ``F.scaled_dot_product_attention`` on 4-D ``(batch, 1, seq, Q)`` tensors whose last axis has
stride 1 and whose q, k, v share one head size, so PyTorch dispatches to a fused kernel (flash attention on CPU and
CUDA, memory-efficient attention otherwise) that never stores the (seq × seq) affinity; its memory grows linearly
with the sequence instead of quadratically. A call takes at most ``SDPA_MAX_BATCH`` sequences (a CUDA grid limit);
larger batches run in chunks. ``impl="reference"`` is einsum + softmax with the affinity materialised;
``affinity(x)`` returns that matrix for visualisation. Which kernel runs, and what each path costs, is measured by
``slnl bench`` (results/bench/).
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

NONLOCAL_DIMS: tuple[str, ...] = ("t", "s", "st")
NONLOCAL_IMPLS: tuple[str, ...] = ("fused", "reference")

# Kernels the fused path may use. cuDNN attention is left out: on an H200 (torch 2.11, cuDNN 9) its bf16 backward
# returned NaN gradients for the kinetics preset after a few training steps where flash, memory-efficient and math
# attention all gave finite ones at the same parameters. MATH stays only as the last resort PyTorch falls back to when
# no fused kernel accepts the inputs (it is never chosen when flash or efficient can run).
FUSED_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]

# The largest batch one fused attention call is given. CUDA's flash and memory-efficient kernels put the batch on a
# grid axis limited to 65,535 blocks and fail above it ("invalid configuration argument": pytorch/pytorch#146704,
# #142228); the modules fold B·N ("t") or B·T ("s") sequences into that batch, so an evaluation batch of a few hundred
# clips reaches it. Larger batches run in chunks of this size (_attention).
SDPA_MAX_BATCH = 65535


# Selective recomputation for the fused training path: keep what the attention kernel returns (its output and
# log-sum-exp, which its backward needs), recompute the cheap q/k/v projection and layout views in backward. Without
# it every module keeps q, k, v, the output and a channels-last copy of its input; with it, besides its input, only
# the kernel's output and log-sum-exp, for the time of recomputing the projection. On CUDA the trade goes the other
# way: eager checkpointing dispatches every op of the region through a Python policy, which a launch-bound GPU step
# feels, while GPU memory is ample. Hence RECOMPUTE "auto": on for CPU tensors, off for CUDA; "always" / "never"
# force it (results/bench/ has the measured memory and speed of both).
RECOMPUTE: tuple[str, ...] = ("auto", "always", "never")
_SDPA_OPS = {
    getattr(torch.ops.aten, name).default
    for name in ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
                 "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention")
    if hasattr(torch.ops.aten, name)
}


def _keep_attention_output(ctx, op, *args, **kwargs) -> CheckpointPolicy:
    return CheckpointPolicy.MUST_SAVE if op in _SDPA_OPS else CheckpointPolicy.PREFER_RECOMPUTE


def _attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Fused attention of ``(batch, 1, seq, Q)`` tensors, at most ``SDPA_MAX_BATCH`` sequences per kernel call. The
    sequences are independent, so chunks give the single call's numbers; a batch within the limit is one call."""
    with sdpa_kernel(FUSED_BACKENDS):
        if q.shape[0] <= SDPA_MAX_BATCH:
            return F.scaled_dot_product_attention(q, k, v, scale=1.0)
        return torch.cat([F.scaled_dot_product_attention(qc, kc, vc, scale=1.0) for qc, kc, vc in
                          zip(q.split(SDPA_MAX_BATCH), k.split(SDPA_MAX_BATCH), v.split(SDPA_MAX_BATCH))])


class NonLocal(nn.Module):
    """Non-local module over ``dims`` ∈ {"t", "s", "st"}: ``(B, P, T, N) -> (B, Q, T, N)``."""

    def __init__(
        self, in_channels: int, out_channels: int, dims: str = "st", impl: str = "fused", recompute: str = "auto"
    ) -> None:
        super().__init__()
        if recompute not in RECOMPUTE:
            raise ValueError(f"unknown recompute {recompute!r}; expected one of {', '.join(RECOMPUTE)}")
        self.recompute = recompute  # fused + training only: selective recomputation (see _keep_attention_output)
        if dims not in NONLOCAL_DIMS:
            raise ValueError(f"unknown non-local dims {dims!r}; expected one of {', '.join(NONLOCAL_DIMS)}")
        if impl not in NONLOCAL_IMPLS:
            raise ValueError(f"unknown nonlocal_impl {impl!r}; expected one of {', '.join(NONLOCAL_IMPLS)}")
        self.dims, self.impl = dims, impl
        self.in_channels, self.out_channels = in_channels, out_channels
        # [W_ϕ; W_ψ; W_g] fused into one projection P -> 3Q (L = Q): one read of x, one GEMM for q, k and v.
        self.qkv = nn.Linear(in_channels, 3 * out_channels, bias=False)
        self.W_w = nn.Linear(out_channels, out_channels, bias=False)  # Eq. 11: W_w y_i, no bias
        nn.init.zeros_(self.W_w.weight)

    # (B, P, T, N) -> q, k, v each (B', 1, L, Q), views of one (B', 1, L, 3Q) tensor: channel axis last, stride 1.
    def _sequences(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        B, _, T, N = x.shape
        if self.dims == "t":
            h = self.qkv(x.permute(0, 3, 2, 1)).reshape(B * N, 1, T, -1)
        elif self.dims == "s":
            h = self.qkv(x.permute(0, 2, 3, 1)).reshape(B * T, 1, N, -1)
        else:
            h = self.qkv(x.permute(0, 2, 3, 1)).reshape(B, 1, T * N, -1)
        return h.chunk(3, dim=-1)

    def _back(self, y: Tensor, B: int, T: int, N: int) -> Tensor:
        Q = y.shape[-1]
        if self.dims == "t":
            return y.reshape(B, N, T, Q).permute(0, 3, 2, 1)
        if self.dims == "s":
            return y.reshape(B, T, N, Q).permute(0, 3, 1, 2)
        return y.reshape(B, T, N, Q).permute(0, 3, 1, 2)

    def affinity(self, x: Tensor) -> Tensor:
        """Normalised affinities φ(x_i, x_j)/Z_i (Eq. 8 with Z of Eq. 6), shape ``(B', L, L)``.

        B' = B·N sequences of L = T frames for "t", B·T sequences of L = N joints for "s", B sequences of
        L = T·N positions (index t·N + n) for "st".
        """
        q, k, _ = self._sequences(x)
        return torch.softmax(torch.einsum("bhid,bhjd->bhij", q, k), dim=-1).squeeze(1)

    def forward(self, x: Tensor) -> Tensor:
        wanted = self.recompute == "always" or (self.recompute == "auto" and not x.is_cuda)
        if self.impl == "fused" and wanted and self.training and torch.is_grad_enabled():
            context_fn = functools.partial(create_selective_checkpoint_contexts, _keep_attention_output)
            return checkpoint(self._forward, x, use_reentrant=False, context_fn=context_fn)
        return self._forward(x)

    def _forward(self, x: Tensor) -> Tensor:
        B, _, T, N = x.shape
        q, k, v = self._sequences(x)
        if self.impl == "fused":
            y = _attention(q, k, v)
        else:
            a = torch.softmax(torch.einsum("bhid,bhjd->bhij", q, k), dim=-1)
            y = torch.einsum("bhij,bhjd->bhid", a, v)
        return self._back(self.W_w(y), B, T, N)

    def extra_repr(self) -> str:
        return f"P={self.in_channels}, Q=L={self.out_channels}, dims={self.dims}, impl={self.impl}"
