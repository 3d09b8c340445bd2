"""§3.4 losses: the paper's identities (Eq. 13-21) and numerical robustness at the extremes."""
import math

import pytest
import torch
import torch.nn.functional as F

from slnl.losses import LOSSES, MultiTaskLoss, SoftMarginFocalLoss, ce, fl, make_loss, sm, smce, smfl
from slnl.models import Heads


def _batch(seed=0, B=64, C=10, scale=3.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, C, generator=g, dtype=dtype) * scale
    target = torch.randint(0, C, (B,), generator=g)
    return logits, target


def _pt(logits, target):
    return torch.softmax(logits, 1).gather(1, target[:, None]).squeeze(1)


@pytest.mark.parametrize("m", [0.2, 0.4, 0.6, 1.5])
def test_smce_is_cross_entropy_with_true_score_lowered_by_m(m):
    """Eq. 16-17: SMCE(z) = CE(z - m·onehot(t)), values and gradients."""
    logits, target = _batch(seed=int(m * 10))
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    smce_loss = make_loss("SMCE", m=m).per_sample(a, target)
    shifted = b - m * F.one_hot(target, logits.shape[1]).to(b.dtype)
    ce_loss = F.cross_entropy(shifted, target, reduction="none")
    torch.testing.assert_close(smce_loss, ce_loss, rtol=1e-12, atol=1e-12)
    smce_loss.sum().backward()
    ce_loss.sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)


def test_sm_range_endpoints_and_literal_formula():
    m = 0.4
    pt = torch.linspace(0, 1, 1001, dtype=torch.float64)
    v = sm(pt, m)
    assert float(v.min()) >= 0.0 and float(v.max()) <= m + 1e-15
    assert float(sm(torch.tensor(0.0, dtype=torch.float64), m)) == pytest.approx(m, abs=1e-15)
    assert float(sm(torch.tensor(1.0, dtype=torch.float64), m)) == pytest.approx(0.0, abs=1e-15)
    assert bool((v[1:] < v[:-1]).all()), "L_SM must decrease strictly as p_t grows"
    literal = torch.log(math.exp(m) + (1 - math.exp(m)) * pt)  # Eq. 13 as printed
    torch.testing.assert_close(v, literal, rtol=0, atol=1e-14)


def test_functions_of_pt_are_the_papers_formulas():
    pt = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    torch.testing.assert_close(ce(pt), -torch.log(pt))
    torch.testing.assert_close(fl(pt, 2.0), -((1 - pt) ** 2) * torch.log(pt))
    torch.testing.assert_close(fl(pt, 0.0), ce(pt))
    torch.testing.assert_close(smce(pt, 0.4), sm(pt, 0.4) + ce(pt))
    torch.testing.assert_close(smfl(pt, 2.0, 0.4), sm(pt, 0.4) + fl(pt, 2.0))
    # FL down-weights easy samples: FL < CE wherever p_t > 0 (Fig. 4)
    assert bool((fl(pt, 2.0) < ce(pt)).all())


def test_focal_loss_with_gamma_zero_is_cross_entropy():
    logits, target = _batch(seed=3)
    torch.testing.assert_close(make_loss("FL", gamma=0.0)(logits, target), F.cross_entropy(logits, target))
    torch.testing.assert_close(make_loss("CE")(logits, target), F.cross_entropy(logits, target))
    # CE ignores gamma and m; FL ignores m; SMCE ignores gamma (Table 4 writes them as (gamma, m))
    torch.testing.assert_close(make_loss("CE", gamma=5, m=3)(logits, target), F.cross_entropy(logits, target))


@pytest.mark.parametrize("gamma,m", [(2.0, 0.4), (3.0, 0.6), (0.5, 0.4)])
def test_logits_path_equals_functions_of_pt(gamma, m):
    """From logits: FL = Eq. 18, SMFL = L_SM + L_FL (Eq. 19), SMCE = Eq. 14, per sample."""
    logits, target = _batch(seed=7)
    pt = _pt(logits, target)
    torch.testing.assert_close(make_loss("FL", gamma=gamma).per_sample(logits, target), fl(pt, gamma))
    torch.testing.assert_close(make_loss("SMCE", m=m).per_sample(logits, target), smce(pt, m))
    got = make_loss("SMFL", gamma=gamma, m=m).per_sample(logits, target)
    torch.testing.assert_close(got, sm(pt, m) + fl(pt, gamma))
    torch.testing.assert_close(got.mean(), make_loss("SMFL", gamma=gamma, m=m)(logits, target))


def test_gradcheck_smfl():
    logits, target = _batch(seed=11, B=6, C=5)
    loss = make_loss("SMFL", gamma=2.0, m=0.4)
    assert torch.autograd.gradcheck(lambda z: loss(z, target), (logits.requires_grad_(True),))


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("autocast", [False, True])
def test_finite_loss_and_gradient_at_extreme_logits(name, autocast):
    """p_t -> 1 and p_t -> 0 (logits of +-1e4) in float32 and under bf16 autocast: finite values and gradients."""
    C = 5
    logits = torch.zeros(4, C)
    target = torch.tensor([0, 1, 2, 3])
    logits[0, 0] = 1e4  # p_t = 1
    logits[1, 0] = 1e4  # p_t = 0 (another class dominates)
    logits[2] = -1e4
    logits[2, 2] = 1e4  # p_t = 1, every other class far below
    logits[3, 3] = -1e4  # p_t = 0
    logits.requires_grad_(True)
    for gamma in (2.0, 0.5):
        loss_fn = make_loss(name, gamma=gamma, m=0.4)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            z = logits.to(torch.bfloat16) if autocast else logits
            per = loss_fn.per_sample(z * 1.0, target)
            total = per.mean()
        assert per.dtype == torch.float32
        (g,) = torch.autograd.grad(total, logits)
        assert torch.isfinite(per).all() and torch.isfinite(g).all(), (name, gamma, per, g)
        per = per.detach()
        assert float(per[0]) == pytest.approx(0.0, abs=1e-6)  # confident and right: no loss
        m_used = 0.4 if name in ("SMCE", "SMFL") else 0.0
        big = float(torch.tensor(1e4).to(z.dtype))  # 9984 in bf16
        assert float(per[1]) == pytest.approx(big + m_used, rel=1e-6)  # CE = 1e4, FL weight 1, L_SM = m


def test_make_loss_rejects_unknown_names_and_bad_parameters():
    with pytest.raises(ValueError, match="CE, FL, SMCE, SMFL"):
        make_loss("hinge")
    assert make_loss("smfl").name == "SMFL(2,0.4)"
    with pytest.raises(ValueError, match="gamma"):
        SoftMarginFocalLoss(gamma=-1.0)
    with pytest.raises(ValueError, match="target"):
        make_loss("CE")(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))


def test_multitask_loss_is_the_sum_over_present_heads():
    """Eq. 21: L = L_p + L_v + L_c; a None head (single-stream rows) is skipped."""
    g = torch.Generator().manual_seed(0)
    p, v, c = (torch.randn(8, 6, generator=g) for _ in range(3))
    y = torch.randint(0, 6, (8,), generator=g)
    base = make_loss("SMFL")
    total, parts = MultiTaskLoss(base)(Heads(p, v, c), y)
    assert set(parts) == {"p", "v", "c"}
    torch.testing.assert_close(total, base(p, y) + base(v, y) + base(c, y))
    total, parts = MultiTaskLoss(base)(Heads(None, None, c), y)
    assert set(parts) == {"c"}
    torch.testing.assert_close(total, base(c, y))
