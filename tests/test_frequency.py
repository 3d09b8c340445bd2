"""§3.2 frequency attention: DFT-by-matmul against torch.fft, Eq. 5's residual, the variants' defining properties."""
import pytest
import torch

from slnl.models.frequency import ATTENTIONS, FrequencyAttention, dft2, dft_matrices, idft2_real


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


def _x(seed=0, B=2, C=6, T=16, N=10):
    return torch.randn(B, C, T, N, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _module(attention, T=16, N=10, seed=0):
    torch.manual_seed(seed)
    return FrequencyAttention(T, N, attention, ratio=4).double()


def _fix_gates(monkeypatch, fa, value):
    monkeypatch.setattr(fa, "gates", lambda f_cos, f_sin: (torch.full_like(f_cos[:, :1], value),) * 2)


def test_rfa_with_gates_one_returns_2x_and_with_gates_zero_returns_x(monkeypatch):
    x = _x()
    fa = _module("rFA")
    _fix_gates(monkeypatch, fa, 1.0)
    torch.testing.assert_close(fa(x), 2 * x, rtol=1e-10, atol=1e-10)
    _fix_gates(monkeypatch, fa, 0.0)
    torch.testing.assert_close(fa(x), x, rtol=0, atol=0)


@pytest.mark.parametrize("attention", ["aFA", "sFA", "dFA"])
def test_non_residual_variants_with_gates_one_return_x(monkeypatch, attention):
    x = _x(1)
    fa = _module(attention)
    _fix_gates(monkeypatch, fa, 1.0)
    torch.testing.assert_close(fa(x), x, rtol=1e-10, atol=1e-10)
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

    if fa.attention == "aFA":
        m_cos = m_sin = gate(fa.fc, F.abs())
    elif fa.attention == "sFA":
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
    fa = _module("dFA")
    mats = (fa.ct, fa.st, fa.cn, fa.sn)
    m = fa.gates(*dft2(x, *mats))
    m_perm = fa.gates(*dft2(x[:, torch.randperm(x.shape[1])], *mats))
    torch.testing.assert_close(m[0], m_perm[0])
    torch.testing.assert_close(m[1], m_perm[1])
    assert m[0].shape == (2, 1, 16, 10)
    assert bool(((m[0] > 0) & (m[0] < 1)).all())


def test_afa_gates_depend_on_amplitude_only_and_dfa_does_not():
    """A circular time shift changes the phases but not the amplitude spectrum."""
    x = _x(5)
    shifted = torch.roll(x, 3, dims=2)
    for attention, invariant in (("aFA", True), ("dFA", False)):
        fa = _module(attention)
        mats = (fa.ct, fa.st, fa.cn, fa.sn)
        a, b = fa.gates(*dft2(x, *mats)), fa.gates(*dft2(shifted, *mats))
        assert torch.allclose(a[0], b[0]) == invariant, attention
        if attention == "aFA":
            assert torch.equal(a[0], a[1])  # one weight scales both components: the phase is kept


def test_sfa_shares_parameters_dfa_does_not():
    assert {n for n, _ in _module("sFA").named_parameters()} == {"fc.0.weight", "fc.0.bias", "fc.2.weight", "fc.2.bias"}
    f = torch.randn(2, 6, 16, 10, dtype=torch.float64)
    s = _module("sFA").gates(f, f)
    assert torch.equal(s[0], s[1])
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


def test_bf16_autocast_runs_and_stays_close():
    x = _x(6).float()
    fa = _module("rFA").float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fa(x)
    torch.testing.assert_close(y.float(), fa(x), rtol=0.1, atol=0.1)
