"""§3.2 Frequency attention (Eq. 1–5) and its Table 5 variants: none | aFA | sFA | dFA | rFA.

The 2D DFT over (T', N') of every channel is computed with real matrix products instead of ``torch.fft``:
Inductor cannot compile complex FFT ops, and for T', N' ≤ 128 two small matmuls are as fast as an FFT and run on
tensor cores. With A_T[u, t] = e^{-j2πut/T} = Ct − j·St (Ct = cos, St = sin, both symmetric) and real X,

    Y = A_T X A_N^T :  F_cos = Re Y = Ct X Cn − St X Sn,   F_sin = Im Y = −(Ct X Sn + St X Cn)        (Eq. 1)

(the signs follow torch.fft's e^{−j…} convention, which is Eq. 1's; F_cos = Re fft2, F_sin = Im fft2).
The inverse returns the real part of ifft2(F'_cos + j F'_sin):

    X = (1/(T N)) [ (Ct F'_cos − St F'_sin) Cn − (St F'_cos + Ct F'_sin) Sn ]

The attended spectrum is no longer Hermitian in general (the gates need not be symmetric in ±u, ±v), so its inverse
transform is complex; only its real part is a signal in the spatio-temporal domain, and that is what Eq. 5 adds back.

Precision: the DFT, the gates and the inverse run in float32 (float64 for a float64 module) even under autocast,
and the output is cast back to the input's dtype. In bf16 (8 significant bits) the transform's round trip at
T' = N' = 64 errs by about 5e-3 relative, in float32 by about 3e-7 (``tests/test_frequency.py`` checks both): every
output frequency is a sum of T'·N' = 4,096 products, and rounding of that size would reach both the per-frequency
gates of Eq. 2 and the signal that rFA adds back to X'. The price is that these few matmuls run at
float32 speed. (A float32 matmul on CUDA stays float32: ``slnl.engine.device.strict_fp32`` turns TF32 off for
every run.) Under bf16 autocast the island's two sides stay bf16: its input arrives rounded to bf16 and its output
is rounded once more (``tests/test_frequency.py`` bounds the whole at 3e-3 relative).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

ATTENTIONS: tuple[str, ...] = ("none", "aFA", "sFA", "dFA", "rFA")

# Added to F_cos² + F_sin² before the square root of aFA's amplitude: keeps its gradient finite where the spectrum is
# exactly zero (an absent, zero-filled person gives an all-zero spectrum). 1e-12 is an amplitude floor of 1e-6.
_AMPLITUDE_EPS = 1e-12


def dft_matrices(n: int, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """``(cos(2π u t / n), sin(2π u t / n))`` for u, t in [0, n), computed in float64 with exact integer phases."""
    k = torch.arange(n, dtype=torch.float64)
    phase = 2 * math.pi * (torch.outer(k, k) % n) / n  # reduce u·t mod n first: exact angles for large n
    return torch.cos(phase).to(dtype), torch.sin(phase).to(dtype)


def dft2(x: Tensor, ct: Tensor, st: Tensor, cn: Tensor, sn: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 1 over the last two axes of real ``x: (..., T, N)``: returns ``(F_cos, F_sin) = (Re, Im) of fft2(x)``."""
    T, N = x.shape[-2:]
    a = torch.matmul(torch.cat([ct, st], 0), x)  # (..., 2T, N): [Ct X; St X]
    b = torch.matmul(a, torch.cat([cn, sn], 1))  # (..., 2T, 2N): [[CtXCn, CtXSn], [StXCn, StXSn]]
    f_cos = b[..., :T, :N] - b[..., T:, N:]
    f_sin = -(b[..., :T, N:] + b[..., T:, :N])
    return f_cos, f_sin


def idft2_real(f_cos: Tensor, f_sin: Tensor | None, ct: Tensor, st: Tensor, cn: Tensor, sn: Tensor) -> Tensor:
    """Real part of ``ifft2(f_cos + j f_sin)`` over the last two axes (see the module docstring).

    ``f_sin=None`` is a spectrum with zero imaginary part (zero phase, as aFA's): ``(Ct F Cn − St F Sn) / (T N)``.
    """
    T, N = f_cos.shape[-2:]
    if f_sin is None:
        a = torch.matmul(torch.cat([ct, st], 0), f_cos)  # [Ct F; St F]
        return (torch.matmul(a[..., :T, :], cn) - torch.matmul(a[..., T:, :], sn)) / (T * N)
    g = torch.cat([f_cos, f_sin], -2)  # (..., 2T, N)
    left = torch.cat([torch.cat([ct, -st], 1), torch.cat([st, ct], 1)], 0)  # (2T, 2T)
    q = torch.matmul(left, g)  # [Re; Im] of conj(A_T) F
    out = torch.matmul(q[..., :T, :], cn) - torch.matmul(q[..., T:, :], sn)
    return out / (T * N)


def amplitude(f_cos: Tensor, f_sin: Tensor) -> Tensor:
    """The frequency (amplitude) spectrum ``F_A = (F_cos² + F_sin²)^½`` of §3.2 (with a 1e-6 floor, see above)."""
    return torch.sqrt(f_cos.square() + f_sin.square() + _AMPLITUDE_EPS)


class FrequencyAttention(nn.Module):
    """Frequency attention on ``x: (B, C', T', N')`` (Eq. 1–5), variant ``attention`` ∈ ATTENTIONS.

    * gates (Eq. 2): ``M_i = dup(σ(W_i1 · relu(W_i2 · Avg_c(F_i) + b_i2) + b_i1))`` — channel average, an FC
      bottleneck over the flattened T'·N' spectrum (one weight per frequency) reducing by ``ratio`` (λ), an FC back,
      a sigmoid, duplicated over channels. The printed Eq. 2 shows no non-linearity between the two FCs; we follow
      SE-Net (Hu et al. 2018) and the bottleneck of He et al. 2016 that the paper cites, both of which put a ReLU there
      (without it the two FCs collapse into one rank-(T'N'/λ) linear map). λ = 16 is SE-Net's default reduction.
    * none: identity.
    * aFA ("built on frequency spectrum instead of sinusoidal and cosine components", §4.3): one gate (an FC pair)
      computed from the amplitude spectrum F_A = |F| and applied to it, ``F'_A = F_A ⊙ M_A``; the gated amplitude
      goes through the inverse transform with the phase gone (zero phase). F'_A is real but not even in (u, v) (the
      gate need not be), so ifft2(F'_A) is complex; like the other variants we return its real part,
      ``y[t, n] = (1/(T'N')) Σ_{u,v} F'_A[u, v] cos(2π(ut/T' + vn/N'))``, which is the ifft2 of the Hermitian part
      ``(F'_A[u, v] + F'_A[−u, −v]) / 2``: a real signal symmetric about the origin, ``y[−t, −n] = y[t, n]``
      (indices mod T', N'). Since |F| does not change when x is shifted circularly in time or over joints, neither
      does aFA's output: the phase, i.e. where in the clip a pattern occurs, is lost — the paper's explanation of why
      aFA does harm (Table 5).
    * sFA: one FC pair shared by cos and sin, applied to each component. dFA: two independent FC pairs (Eq. 2 with
      i ∈ {cos, sin}). rFA: dFA plus the spatio-temporal residual of Eq. 5, ``X'' = X' + ifft2(F'_sin, F'_cos)``.
      These three gate F_cos and F_sin, which carry the phase: where M_cos = M_sin the phase of a frequency passes
      unchanged, and their output changes when x is shifted. aFA, sFA and dFA return the inverse transform alone.

    ``spectrum(x)`` gives the components a variant attends to — ``(F_A,)`` for aFA, ``(F_cos, F_sin)`` otherwise —
    and ``gates(*components)`` their gates (same arity), so that tests and analyses can inspect or fix them.
    The transform, gates and inverse run outside autocast, in float32 (see the module docstring); the output has the
    input's dtype.
    """

    def __init__(self, T: int, N: int, attention: str = "rFA", ratio: int = 16) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {attention!r}; expected one of {', '.join(ATTENTIONS)}")
        if ratio < 1:
            raise ValueError(f"fa_ratio (λ) must be >= 1, got {ratio}")
        self.attention, self.T, self.N, self.ratio = attention, T, N, ratio
        self.residual = attention == "rFA"
        if attention == "none":
            return
        L = T * N
        hidden = max(1, L // ratio)
        if attention in ("aFA", "sFA"):
            self.fc = _gate(L, hidden)
        else:  # dFA, rFA: independent parameters for the cosine and the sine components
            self.fc_cos = _gate(L, hidden)
            self.fc_sin = _gate(L, hidden)
        # DFT matrices are derived from (T, N): buffers that move with .to(device) but stay out of checkpoints.
        # Kept in float64 and cast to the working dtype in forward, so a float64 module is exact to float64.
        ct, st = dft_matrices(T, torch.float64)
        cn, sn = dft_matrices(N, torch.float64)
        for name, value in (("ct", ct), ("st", st), ("cn", cn), ("sn", sn)):
            self.register_buffer(name, value, persistent=False)

    def _mats(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.ct.to(dtype), self.st.to(dtype), self.cn.to(dtype), self.sn.to(dtype)

    def spectrum(self, x: Tensor) -> tuple[Tensor, ...]:
        """Eq. 1 and what the variant attends to: ``(F_A,)`` for aFA, ``(F_cos, F_sin)`` for sFA, dFA, rFA."""
        f_cos, f_sin = dft2(x, *self._mats(x.dtype))
        return (amplitude(f_cos, f_sin),) if self.attention == "aFA" else (f_cos, f_sin)

    def gates(self, *components: Tensor) -> tuple[Tensor, ...]:
        """Attention weights (Eq. 2), one ``(B, 1, T', N')`` per component (broadcast = "dup" over channels)."""
        B = components[0].shape[0]

        def run(fc: nn.Module, f: Tensor) -> Tensor:
            return fc(f.mean(1).reshape(B, -1)).reshape(B, 1, self.T, self.N)

        if self.attention == "aFA":
            (f_a,) = components
            return (run(self.fc, f_a),)
        f_cos, f_sin = components
        if self.attention == "sFA":
            return run(self.fc, f_cos), run(self.fc, f_sin)
        return run(self.fc_cos, f_cos), run(self.fc_sin, f_sin)

    def forward(self, x: Tensor) -> Tensor:
        if self.attention == "none":
            return x
        if x.shape[-2:] != (self.T, self.N):
            raise ValueError(
                f"FrequencyAttention({self.attention}) was built for (T', N') = ({self.T}, {self.N}) "
                f"but got {tuple(x.shape[-2:])}; the per-frequency FC layers need the configured T and new_joints"
            )
        work = torch.promote_types(x.dtype, torch.float32)  # bf16/fp16 -> fp32; fp64 stays fp64
        with torch.autocast(device_type=x.device.type, enabled=False):
            xw = x.to(work)
            spec = self.spectrum(xw)  # Eq. 1
            attended = [f * m for f, m in zip(spec, self.gates(*spec))]  # Eq. 2-4
            if self.attention == "aFA":
                y = idft2_real(attended[0], None, *self._mats(work))  # the gated amplitude, zero phase
            else:
                y = idft2_real(attended[0], attended[1], *self._mats(work))
            out = xw + y if self.residual else y  # Eq. 5 for rFA
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        return f"attention={self.attention}, T'={self.T}, N'={self.N}, ratio={self.ratio}"


def _gate(L: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(L, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, L), nn.Sigmoid())
