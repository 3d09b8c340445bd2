"""§3.3 non-local module: Eq. 6-11 written out, fused (SDPA) = reference, zero initial output, real fused dispatch."""
import pytest
import torch
import torch.nn.functional as F

from slnl.models.nonlocal_ import NONLOCAL_DIMS, NonLocal

B, P, Q, T, N = 2, 6, 8, 12, 7


def _pair(dims, seed=0):
    """Fused and reference modules with identical, non-zero weights (W_w non-zero so the output is non-trivial)."""
    torch.manual_seed(seed)
    fused = NonLocal(P, Q, dims, "fused")
    with torch.no_grad():
        fused.W_w.weight.normal_(0, 0.5)
        fused.qkv.weight.mul_(0.5)  # keep the unscaled (no 1/sqrt(L)) logits in a range where softmax is not one-hot
    ref = NonLocal(P, Q, dims, "reference")
    ref.load_state_dict(fused.state_dict())
    return fused, ref


def _x(seed=1, dtype=torch.float32):
    return torch.randn(B, P, T, N, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _rel(a, b):
    return float((a - b).detach().norm() / b.detach().norm())


@pytest.mark.parametrize("dims", NONLOCAL_DIMS)
def test_fused_equals_reference_outputs_and_gradients(dims):
    fused, ref = _pair(dims)
    x1 = _x().requires_grad_(True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = fused(x1), ref(x2)
    assert _rel(y1, y2) < 1e-5
    w = torch.randn_like(y1)
    (y1 * w).sum().backward()
    (y2 * w).sum().backward()
    assert _rel(x1.grad, x2.grad) < 1e-5
    for (name, p1), (_, p2) in zip(fused.named_parameters(), ref.named_parameters()):
        assert _rel(p1.grad, p2.grad) < 1e-5, name


def _weights(m):
    wq, wk, wg = m.qkv.weight.double().chunk(3, 0)  # W_ϕ, W_ψ, W_g (each Q×P)
    return wq, wk, wg, m.W_w.weight.double()


def _eq6_11(X, wq, wk, wg, ww):
    """Eq. 6-11 for one set Ω: X is (|Ω|, P) with x_i as rows; returns (|Ω|, Q)."""
    theta, psi, g = X @ wq.T, X @ wk.T, X @ wg.T  # Eq. 9, 10, 7
    phi = torch.exp(theta @ psi.T)  # Eq. 8, embedded Gaussian, no 1/sqrt(L)
    Y = (phi / phi.sum(1, keepdim=True)) @ g  # Eq. 6 with Z_i = sum_j phi(x_i, x_j)
    return Y @ ww.T  # Eq. 11: W_w y_i, no bias


@pytest.mark.parametrize("dims", NONLOCAL_DIMS)
def test_reference_is_eq_6_to_11_over_the_right_set(dims):
    """Ω = frames of one joint ("t"), joints of one frame ("s"), all positions of a clip ("st")."""
    _, ref = _pair(dims, seed=3)
    x = _x(4, torch.float64)
    ref = ref.double()
    y = ref(x)
    w = _weights(ref)
    expected = torch.zeros(B, Q, T, N, dtype=torch.float64)
    for b in range(B):
        if dims == "t":
            for n in range(N):
                expected[b, :, :, n] = _eq6_11(x[b, :, :, n].T, *w).T
        elif dims == "s":
            for t in range(T):
                expected[b, :, t, :] = _eq6_11(x[b, :, t, :].T, *w).T
        else:
            flat = x[b].reshape(P, T * N).T  # position index t*N + n
            expected[b] = _eq6_11(flat, *w).T.reshape(Q, T, N)
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dims", NONLOCAL_DIMS)
def test_affinity_is_row_stochastic_with_one_row_per_position(dims):
    _, ref = _pair(dims)
    a = ref.affinity(_x())
    L, count = {"t": (T, B * N), "s": (N, B * T), "st": (T * N, B)}[dims]
    assert a.shape == (count, L, L)
    assert bool((a >= 0).all())
    torch.testing.assert_close(a.sum(-1), torch.ones(count, L))


@pytest.mark.parametrize("impl", ["fused", "reference"])
@pytest.mark.parametrize("dims", NONLOCAL_DIMS)
def test_fresh_module_outputs_exactly_zero(dims, impl):
    """W_w = 0: a new module is a drop-in that changes nothing (§3.3)."""
    m = NonLocal(P, Q, dims, impl)
    assert torch.equal(m(_x() * 100), torch.zeros(B, Q, T, N))
    assert m.qkv.bias is None and m.qkv.weight.shape == (3 * Q, P)  # L = Q, fused projection P -> 3Q
    # Eq. 7, 9, 10, 11 have no bias: the module's only parameters are [W_ϕ; W_ψ; W_g] and W_w
    assert {n: tuple(p.shape) for n, p in m.named_parameters()} == {"qkv.weight": (3 * Q, P), "W_w.weight": (Q, Q)}


def test_fused_call_has_fused_kernel_layout(monkeypatch):
    """SDPA receives 4-D (batch, 1, seq, Q) tensors with equal head size, stride-1 last axis and scale 1."""
    calls = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, *args, **kwargs):
        calls.append((q, k, v, kwargs))
        return real(q, k, v, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    for dims, L in (("t", T), ("s", N), ("st", T * N)):
        fused, _ = _pair(dims)
        fused(_x())
        q, k, v, kwargs = calls[-1]
        assert q.dim() == k.dim() == v.dim() == 4
        assert q.shape[1] == 1 and q.shape[2] == L
        assert q.shape[-1] == k.shape[-1] == v.shape[-1] == Q
        assert q.stride(-1) == k.stride(-1) == v.stride(-1) == 1
        assert kwargs.get("scale") == 1.0 and "attn_mask" not in kwargs


def test_fused_dispatches_to_flash_kernel_and_never_builds_the_affinity():
    """On CPU the fused path runs aten::_scaled_dot_product_flash_attention_for_cpu (forward and backward) and no
    softmax; the reference path materialises the (T·N)² affinity through an explicit softmax."""
    from torch.profiler import ProfilerActivity, profile

    fused, ref = _pair("st")
    x = _x().requires_grad_(True)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fused(x).sum().backward()
    names = {e.key for e in prof.key_averages()}
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in names
    assert "aten::_scaled_dot_product_flash_attention_for_cpu_backward" in names
    assert not any("softmax" in n for n in names), sorted(names)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        ref(x).sum().backward()
    names = {e.key for e in prof.key_averages()}
    assert any("softmax" in n for n in names) and not any("flash" in n for n in names)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="t, s, st"):
        NonLocal(P, Q, "time")
    with pytest.raises(ValueError, match="fused, reference"):
        NonLocal(P, Q, "t", "naive")


def test_fused_path_never_uses_cudnn_attention():
    """cuDNN attention gave NaN bf16 gradients on an H200 where the other kernels did not (see FUSED_BACKENDS)."""
    from torch.nn.attention import SDPBackend

    from slnl.models.nonlocal_ import FUSED_BACKENDS

    assert SDPBackend.CUDNN_ATTENTION not in FUSED_BACKENDS
    assert FUSED_BACKENDS[:2] == [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]


@pytest.mark.parametrize("dims", NONLOCAL_DIMS)
def test_selective_recomputation_changes_nothing_but_memory(dims):
    """The fused training path recomputes q/k/v in backward: same output and same gradients as keeping them."""
    torch.manual_seed(0)
    a = NonLocal(6, 8, dims, "fused", recompute="always").train()
    b = NonLocal(6, 8, dims, "fused", recompute="never").train()
    with torch.no_grad():
        a.W_w.weight.normal_()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 6, 5, 4)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = a(xa), b(xb)
    torch.testing.assert_close(ya, yb, rtol=0, atol=0)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-6, atol=1e-7)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-6, atol=1e-7, msg=name)


@pytest.mark.parametrize("recompute,expected", [("auto", 1), ("always", 1), ("never", 0)])
def test_recompute_policy_on_cpu(monkeypatch, recompute, expected):
    """'auto' recomputes for CPU tensors (memory), only in training with gradients; never for the reference path."""
    import slnl.models.nonlocal_ as nl

    calls = []
    real = nl.checkpoint
    monkeypatch.setattr(nl, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    m = NonLocal(4, 4, "st", "fused", recompute=recompute).train()
    m(torch.randn(1, 4, 3, 3, requires_grad=True))
    assert len(calls) == expected
    with torch.no_grad():
        m(torch.randn(1, 4, 3, 3))
    m.eval()(torch.randn(1, 4, 3, 3, requires_grad=True))
    NonLocal(4, 4, "st", "reference", recompute=recompute).train()(torch.randn(1, 4, 3, 3, requires_grad=True))
    assert len(calls) == expected
    with pytest.raises(ValueError, match="recompute"):
        NonLocal(4, 4, "st", "fused", recompute="sometimes")


@pytest.mark.parametrize("recompute", ["always", "never"])
@pytest.mark.parametrize("dims", NONLOCAL_DIMS)
def test_attention_batch_is_chunked_at_the_kernel_limit(monkeypatch, dims, recompute):
    """CUDA's flash and memory-efficient kernels fail on a batch above 65,535 (pytorch/pytorch#146704, #142228), and
    the modules fold B·N ("t") or B·T ("s") sequences into that batch. Above SDPA_MAX_BATCH the attention runs in
    chunks: every kernel call within the limit, output and gradients bit for bit those of one call."""
    import slnl.models.nonlocal_ as nl

    sizes = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, *args, **kwargs):
        sizes.append(q.shape[0])
        return real(q, k, v, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    torch.manual_seed(0)
    m = NonLocal(P, Q, dims, "fused", recompute=recompute).train()
    with torch.no_grad():
        m.W_w.weight.normal_(0, 0.5)
        m.qkv.weight.mul_(0.5)
    x = torch.randn(5, P, T, N)  # folded batch: 35 ("t"), 60 ("s"), 5 ("st")

    def run():
        m.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_(True)
        y = m(xi)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        return y.detach(), xi.grad, [p.grad for p in m.parameters()]

    y1, gx1, gp1 = run()
    folded = sizes[0]
    assert all(s == folded for s in sizes)  # today's path: one call over the whole folded batch
    monkeypatch.setattr(nl, "SDPA_MAX_BATCH", 3)
    sizes.clear()
    y2, gx2, gp2 = run()
    assert max(sizes) <= 3 and sum(sizes[: -(-folded // 3)]) == folded  # chunks of <= 3 covering the batch
    torch.testing.assert_close(y2, y1, rtol=0, atol=0)
    torch.testing.assert_close(gx2, gx1, rtol=0, atol=0)
    for a, b in zip(gp2, gp1):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_attention_below_the_limit_is_one_unchanged_call(monkeypatch):
    """A batch within SDPA_MAX_BATCH (every batch this repository trains) takes exactly the single call it took before
    chunking existed."""
    import slnl.models.nonlocal_ as nl

    assert nl.SDPA_MAX_BATCH == 65535
    calls = []
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention",
                        lambda q, k, v, *a, **kw: calls.append(q.shape[0]) or real(q, k, v, *a, **kw))
    for dims, folded in (("t", B * N), ("s", B * T), ("st", B)):
        fused, _ = _pair(dims)
        x = _x()
        y = fused(x)
        q, k, v = fused._sequences(x)
        expected = fused._back(fused.W_w(real(q, k, v, scale=1.0)), B, T, N)
        assert calls[-1] == folded
        torch.testing.assert_close(y, expected, rtol=0, atol=0)
