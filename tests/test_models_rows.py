"""Every row of Tables 3, 5 and 6 builds for the ntu and cpu presets and trains (forward + backward) on cpu."""
import pytest
import torch

from slnl.losses import MultiTaskLoss, make_loss
from slnl.models import ATTENTIONS, TRANSFORMS, build

# Each table varies one keyword on top of its section's baseline (§4.3): Table 3 on Baseline1 (local blocks, no
# frequency attention), Table 5 on Baseline3 (CS-T, local blocks), Table 6 on Baseline4 (CS-T, rFA).
ROWS = (
    [pytest.param(dict(transform=t, attention="none", affinity="Local"), id=f"table3-{t}") for t in TRANSFORMS]
    + [pytest.param(dict(attention=a, affinity="Local"), id=f"table5-{a}") for a in ATTENTIONS]
    + [pytest.param(dict(affinity="Local", m1=6), id="table6-Local"),
       pytest.param(dict(affinity="tSLnL", m1=1), id="table6-tSLnL-m1=1"),
       pytest.param(dict(affinity="sSLnL", m1=1), id="table6-sSLnL-m1=1")]
    + [pytest.param(dict(affinity="SLnL", m1=k), id=f"table6-SLnL-m1={k}") for k in range(1, 7)]
)


@pytest.mark.parametrize("overrides", ROWS)
def test_row_builds_for_ntu_and_trains_on_cpu(overrides):
    ntu = build("ntu", **overrides)
    assert all(getattr(ntu.config, k) == v for k, v in overrides.items())
    del ntu
    torch.manual_seed(0)
    model = build("cpu", **overrides)
    cfg = model.config
    x = torch.randn(2, cfg.in_channels, cfg.T, cfg.num_joints, cfg.num_persons)
    y = torch.tensor([3, 41])
    heads = model(x)
    single = overrides.get("transform") in ("Pos-N", "Vel-N")
    assert (heads.p is None and heads.v is None) == single
    total, parts = MultiTaskLoss(make_loss("SMFL"))(heads, y)
    assert set(parts) == ({"c"} if single else {"p", "v", "c"})
    total.backward()
    assert torch.isfinite(total)
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} gets no gradient"
        assert torch.isfinite(p.grad).all(), name
    # One optimiser step changes the prediction: the graph really connects input, parameters and loss.
    with torch.no_grad():
        before = model.eval()(x).c
    torch.optim.Adam(model.parameters(), lr=1e-2).step()
    with torch.no_grad():
        after = model(x).c
    assert not torch.allclose(before, after)
