"""§3.2 frequency attention: DFT-by-matmul against torch.fft, Eq. 5's residual, the variants' defining properties
(aFA loses the phase, sFA/dFA/rFA keep it), float32 arithmetic under autocast."""
import copy

import pytest
import torch

from slnl.models.frequency import ATTENTIONS, FrequencyAttention, amplitude, dft2, dft_matrices, idft2_real


def _mats(T, N, dtype):
    ct, st = dft_matrices(T, dtype)
    cn, sn = dft_matrices(N, dtype)
    return ct, st, cn, sn


@pytest.mark.parametrize("T,N", [(64, 64), (32, 25), (7, 5), (128, 18)])
def test_dft_by_matmul_equals_torch_fft(T, N):
    g = torch.Generator().manual_seed(T * N)
    x = torch.randn(3, 4, T, N, generator=g, dtype=torch.float64)
    f_cos, f_sin = dft2(x, *_mats(T, N, torch.float64))
    ref = torch.fft.fft2(x)  # Eq. 1 uses e^{-j...}, as torch.fft does
    torch.testing.assert_close(f_cos, ref.real, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(f_sin, ref.imag, rtol=1e-10, atol=1e-10)
    # float32 (what the model runs): error at the level of float32 rounding of an O(sqrt(TN)) sum
    f32 = dft2(x.float(), *_mats(T, N, torch.float32))
    torch.testing.assert_close(f32[0], ref.real.float(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(f32[1], ref.imag.float(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("T,N", [(64, 64), (32, 25), (7, 5)])
def test_inverse_is_real_part_of_torch_ifft2_for_non_hermitian_spectra(T, N):
    g = torch.Generator().manual_seed(T + N)
    re = torch.randn(2, 3, T, N, generator=g, dtype=torch.float64)
    im = torch.randn(2, 3, T, N, generator=g, dtype=torch.float64)
    got = idft2_real(re, im, *_mats(T, N, torch.float64))
    torch.testing.assert_close(got, torch.fft.ifft2(torch.complex(re, im)).real, rtol=1e-10, atol=1e-12)
    # round trip
    x = torch.randn(2, 3, T, N, generator=g, dtype=torch.float64)
    mats = _mats(T, N, torch.float64)
    torch.testing.assert_close(idft2_real(*dft2(x, *mats), *mats), x, rtol=1e-10, atol=1e-10)
    # a zero-phase (real) spectrum: f_sin=None is the same as an explicit zero imaginary part
    torch.testing.assert_close(idft2_real(re, None, *mats), torch.fft.ifft2(re.to(torch.complex128)).real,
                               rtol=1e-10, atol=1e-12)


def test_round_trip_error_float32_versus_bfloat16():
    """Why the attention runs outside autocast (module docstring): at T' = N' = 64 a bf16 round trip errs by ~5e-3
    relative, a float32 one by ~3e-7."""
    x = torch.randn(4, 8, 64, 64, generator=torch.Generator().manual_seed(9), dtype=torch.float64)

    def err(dtype):
        mats = _mats(64, 64, dtype)
        back = idft2_real(*dft2(x.to(dtype), *mats), *mats).double()
        return float((back - x).norm() / x.norm())

    assert err(torch.float32) < 1e-6
    assert 1e-3 < err(torch.bfloat16) < 2e-2


def _x(seed=0, B=2, C=6, T=16, N=10):
    return torch.randn(B, C, T, N, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _module(attention, T=16, N=10, seed=0):
    torch.manual_seed(seed)
    return FrequencyAttention(T, N, attention, ratio=4).double()


def _fix_gates(monkeypatch, fa, value):
    monkeypatch.setattr(fa, "gates", lambda *spec: tuple(torch.full_like(f[:, :1], value) for f in spec))


def test_rfa_with_gates_one_returns_2x_and_with_gates_zero_returns_x(monkeypatch):
    x = _x()
    fa = _module("rFA")
    _fix_gates(monkeypatch, fa, 1.0)
    torch.testing.assert_close(fa(x), 2 * x, rtol=1e-10, atol=1e-10)
    _fix_gates(monkeypatch, fa, 0.0)
    torch.testing.assert_close(fa(x), x, rtol=0, atol=0)


@pytest.mark.parametrize("attention", ["sFA", "dFA"])
def test_phase_keeping_variants_with_gates_one_return_x(monkeypatch, attention):
    x = _x(1)
    fa = _module(attention)
    _fix_gates(monkeypatch, fa, 1.0)
    torch.testing.assert_close(fa(x), x, rtol=1e-10, atol=1e-10)
    _fix_gates(monkeypatch, fa, 0.0)
    assert torch.equal(fa(x), torch.zeros_like(x))


def test_afa_with_gates_one_returns_the_zero_phase_signal_of_the_amplitude_spectrum(monkeypatch):
    """With M_A = 1 aFA returns ifft2(|fft2(x)|) (real: |F| is even in (u, v)), not x: the phase is gone."""
    x = _x(1)
    fa = _module("aFA")
    _fix_gates(monkeypatch, fa, 1.0)
    zero_phase = torch.fft.ifft2(torch.fft.fft2(x).abs().to(torch.complex128))
    assert float(zero_phase.imag.abs().max()) < 1e-12
    torch.testing.assert_close(fa(x), zero_phase.real, rtol=1e-8, atol=1e-8)
    assert not torch.allclose(fa(x), x, atol=1e-3)
    _fix_gates(monkeypatch, fa, 0.0)
    assert torch.equal(fa(x), torch.zeros_like(x))


def test_none_is_identity_and_has_no_parameters():
    fa = FrequencyAttention(16, 10, "none")
    x = _x(2)
    assert fa(x) is x
    assert sum(p.numel() for p in fa.parameters()) == 0


def _fft_reference(fa, x):
    """rFA/dFA/sFA/aFA written with torch.fft and Eq. 2-5 as printed (independent of the matmul DFT)."""
    F = torch.fft.fft2(x)
    B = x.shape[0]

    def gate(fc, f):
        return fc(f.mean(1).reshape(B, -1)).reshape(B, 1, *x.shape[-2:])

    if fa.attention == "aFA":  # the gated amplitude spectrum, inverse-transformed with zero phase
        f_a = F.abs()
        return torch.fft.ifft2((f_a * gate(fa.fc, f_a)).to(F.dtype)).real
    if fa.attention == "sFA":
        m_cos, m_sin = gate(fa.fc, F.real), gate(fa.fc, F.imag)
    else:
        m_cos, m_sin = gate(fa.fc_cos, F.real), gate(fa.fc_sin, F.imag)
    y = torch.fft.ifft2(torch.complex(F.real * m_cos, F.imag * m_sin)).real
    return x + y if fa.attention == "rFA" else y


@pytest.mark.parametrize("attention", ["aFA", "sFA", "dFA", "rFA"])
def test_module_equals_torch_fft_reference(attention):
    x = _x(3)
    fa = _module(attention, seed=5)
    torch.testing.assert_close(fa(x), _fft_reference(fa, x), rtol=1e-8, atol=1e-8)


def test_gates_are_per_frequency_functions_of_the_channel_average():
    """Eq. 2: Avg over channels, so permuting channels leaves the gates unchanged; gates lie in (0, 1)."""
    x = _x(4)
    perm = x[:, torch.randperm(x.shape[1])]
    for attention in ("aFA", "dFA"):
        fa = _module(attention)
        m, m_perm = fa.gates(*fa.spectrum(x)), fa.gates(*fa.spectrum(perm))
        assert len(m) == (1 if attention == "aFA" else 2)
        for a, b in zip(m, m_perm):
            torch.testing.assert_close(a, b)
            assert a.shape == (2, 1, 16, 10)
            assert bool(((a > 0) & (a < 1)).all())


def test_afa_attends_to_the_amplitude_spectrum():
    x = _x(5)
    fa = _module("aFA")
    (f_a,) = fa.spectrum(x)
    torch.testing.assert_close(f_a, torch.fft.fft2(x).abs(), rtol=1e-10, atol=1e-5)  # 1e-6 floor (gradient at 0)
    assert float(amplitude(torch.zeros(3), torch.zeros(3)).min()) > 0


# Circular shifts of X' over T' (dim 2) and over N' (dim 3): each multiplies F by a unit-modulus phase ramp, so the
# amplitude spectrum is unchanged and the phase is not.
_SHIFTS = [(3, 2), (1, 3), (-5, 3), ((2, 4), (2, 3))]


@pytest.mark.parametrize("shift,dims", _SHIFTS)
def test_afa_output_is_invariant_to_circular_shifts_it_has_no_phase(shift, dims):
    x = _x(6)
    fa = _module("aFA", seed=1)
    y = fa(x).detach()
    torch.testing.assert_close(fa(torch.roll(x, shift, dims)), y, rtol=1e-12, atol=1e-12)
    assert float(y.abs().max()) > 1e-2  # a non-trivial output, not a constant


@pytest.mark.parametrize("attention", ["sFA", "dFA", "rFA"])
@pytest.mark.parametrize("shift,dims", _SHIFTS)
def test_phase_keeping_variants_are_not_shift_invariant(attention, shift, dims):
    x = _x(6)
    fa = _module(attention, seed=1)
    assert not torch.allclose(fa(torch.roll(x, shift, dims)), fa(x), atol=1e-3)


@pytest.mark.parametrize("attention", ["sFA", "dFA", "rFA"])
def test_phase_keeping_variants_keep_the_phase(monkeypatch, attention):
    """With the gates fixed to a constant c (the same for every frequency), sFA/dFA/rFA scale F by c, so the phase
    spectrum of their output is the input's: angle(fft2(y)) = angle(fft2(x)) wherever |F| is not ~0."""
    x = _x(7)
    fa = _module(attention)
    _fix_gates(monkeypatch, fa, 0.3)
    F, G = torch.fft.fft2(x), torch.fft.fft2(fa(x))
    keep = F.abs() > 1e-6
    torch.testing.assert_close(torch.polar(torch.ones_like(G.abs()), G.angle())[keep],
                               torch.polar(torch.ones_like(F.abs()), F.angle())[keep], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(G.abs(), (1.3 if attention == "rFA" else 0.3) * F.abs(), rtol=1e-9, atol=1e-9)


def test_afa_output_is_even_the_real_part_of_a_real_spectrum():
    """aFA returns Re ifft2(F'_A) with F'_A real: y[-t, -n] = y[t, n] (indices mod T', N')."""
    y = _module("aFA", seed=2)(_x(8))
    mirrored = torch.roll(torch.flip(y, (2, 3)), (1, 1), (2, 3))  # index i -> -i mod n
    torch.testing.assert_close(mirrored, y, rtol=1e-12, atol=1e-12)


def test_sfa_shares_parameters_dfa_does_not():
    assert {n for n, _ in _module("sFA").named_parameters()} == {"fc.0.weight", "fc.0.bias", "fc.2.weight", "fc.2.bias"}
    f = torch.randn(2, 6, 16, 10, dtype=torch.float64)
    s = _module("sFA").gates(f, f)
    assert torch.equal(s[0], s[1])
    assert {n for n, _ in _module("aFA").named_parameters()} == {"fc.0.weight", "fc.0.bias", "fc.2.weight",
                                                                  "fc.2.bias"}
    d = _module("dFA").gates(f, f)
    assert not torch.allclose(d[0], d[1])
    n_dfa = sum(p.numel() for p in _module("dFA").parameters())
    n_rfa = sum(p.numel() for p in _module("rFA").parameters())
    assert n_dfa == n_rfa == 2 * sum(p.numel() for p in _module("sFA").parameters())


def test_bottleneck_width_is_spectrum_over_ratio():
    fa = FrequencyAttention(64, 64, "rFA", ratio=16)  # the ntu preset: T' = N' = 64, λ = 16
    assert fa.fc_cos[0].in_features == 64 * 64 and fa.fc_cos[0].out_features == 64 * 64 // 16
    assert fa.fc_cos[2].out_features == 64 * 64
    assert not any(k in fa.state_dict() for k in ("ct", "st", "cn", "sn"))  # DFT matrices are derived, not saved


def test_wrong_spatiotemporal_size_is_a_clear_error():
    fa = FrequencyAttention(16, 10, "rFA")
    with pytest.raises(ValueError, match=r"\(16, 10\)"):
        fa(torch.randn(1, 3, 16, 11))
    with pytest.raises(ValueError, match="none, aFA, sFA, dFA, rFA"):
        FrequencyAttention(16, 10, "xFA")
    assert ATTENTIONS == ("none", "aFA", "sFA", "dFA", "rFA")


@pytest.mark.parametrize("attention", ["aFA", "sFA", "dFA", "rFA"])
def test_bf16_autocast_does_not_reach_the_dft(attention):
    """Under bf16 autocast the attention computes in float32: its output matches a float64 copy of the same module
    to < 1e-5 relative, and has the input's dtype."""
    T, N = 64, 64  # the ntu preset's T' and N'
    x = torch.randn(2, 30, T, N, generator=torch.Generator().manual_seed(10))
    torch.manual_seed(3)
    fa = FrequencyAttention(T, N, attention)
    with torch.no_grad():
        ref = copy.deepcopy(fa).double()(x.double())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = fa(x)
            y_half = fa(x.bfloat16())  # a bf16 input (what an autocast transform network hands over) ...
        fp32 = fa(x.bfloat16().float())  # ... is computed exactly as its float32 copy is outside autocast
    assert y.dtype == torch.float32 and y_half.dtype == torch.bfloat16
    assert float((y.double() - ref).norm() / ref.norm()) < 1e-5
    assert torch.equal(y_half, fp32.bfloat16())
    # Each side of the fp32 island under bf16: the input arrives rounded to bf16 (~1.7e-3 relative), the island adds
    # < 1e-5, and the output is rounded to bf16 once more: ~2e-3 in all (docs/choices.md), not the ~5e-3 of a
    # bf16 round trip alone.
    rel = lambda a: float((a.double() - ref).norm() / ref.norm())  # noqa: E731
    into = float((x.bfloat16().double() - x.double()).norm() / x.double().norm())
    assert rel(fp32) < into + 1e-3 and rel(y_half) < 3e-3
