"""SLnL-rFA network: presets = §4.1, build() validation, transform network §3.1, zero-init SLnL = local model,
person-max invariance, velocity alignment."""
import dataclasses

import pytest
import torch

from slnl.models import (
    AFFINITIES,
    ATTENTIONS,
    PRESETS,
    TRANSFORMS,
    CoordinateTransformer,
    Heads,
    ModelConfig,
    NonLocal,
    SkeletonTransformer,
    SLnLBlock,
    build,
    param_count,
    velocity,
)
from slnl.models.transform import CNNTransform


def _x(cfg, B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, cfg.in_channels, cfg.T, cfg.num_joints, cfg.num_persons, generator=g)


# ---------------------------------------------------------------------------------------------------- presets, build
def test_ntu_preset_is_section_4_1():
    c = PRESETS["ntu"]
    assert c.T == 64 and c.K == 10 and c.new_joints == 64
    assert c.channels == (64, 64, 128, 128, 256, 256) and c.kernels == (3,) * 6 and c.pool_every == 2
    assert c.num_classes == 60 and c.num_joints == 25 and c.in_channels == 3 and c.num_persons == 2
    assert c.dropout == 0.2 and c.input_bn is True
    # Table 1's CS model: CS-T, rFA, SLnL with M1 = 5 (the per-split rule is in test_experiments / test_engine_config)
    assert (c.transform, c.attention, c.affinity, c.m1) == ("CS-T", "rFA", "SLnL", 5)
    assert c.fa_ratio == 16 and c.nonlocal_impl == "fused"
    assert c.depth == 6 and c.m2 == 1


def test_kinetics_preset_is_section_4_1():
    c = PRESETS["kinetics"]
    assert c.T == 128 and c.K == 10 and c.new_joints == 64
    assert c.channels == (64, 64, 128, 128, 256, 256, 512, 512)
    assert c.kernels == (5, 5, 3, 3, 3, 3, 3, 3) and c.pool_every == 2
    assert c.num_classes == 400 and c.num_joints == 18 and c.in_channels == 3 and c.num_persons == 2
    assert c.dropout == 0.2 and c.input_bn is True
    assert (c.transform, c.attention, c.affinity, c.m1) == ("CS-T", "rFA", "SLnL", 5)  # Table 2's adopted model


def test_cpu_preset_keeps_the_ntu_topology():
    c, n = PRESETS["cpu"], PRESETS["ntu"]
    assert len(c.channels) == 6 and c.kernels == n.kernels and c.pool_every == 2
    assert [b / a for a, b in zip(c.channels, c.channels[1:])] == [b / a for a, b in zip(n.channels, n.channels[1:])]
    for f in ("num_classes", "num_joints", "in_channels", "num_persons", "dropout", "input_bn", "transform",
              "attention", "affinity", "m1", "fa_ratio"):
        assert getattr(c, f) == getattr(n, f), f


def test_built_model_realises_the_config():
    cfg = PRESETS["ntu"]
    model = build("ntu")
    assert model.config == cfg
    for stream in (model.position, model.velocity):
        coord, skel = stream.transform
        assert isinstance(coord, CoordinateTransformer) and coord.C.shape == (30, 3)
        assert isinstance(skel, SkeletonTransformer) and skel.W_s.shape == (64, 25)
        assert stream.data_bn.num_features == 3 * 25
        assert (stream.frequency.attention, stream.frequency.T, stream.frequency.N) == ("rFA", 64, 64)
        blocks = [m for m in stream.blocks if isinstance(m, SLnLBlock)]
        assert [b.bn.num_features for b in blocks] == list(cfg.channels)
        assert [b.t_local.kernel_size for b in blocks] == [(3, 1)] * 6
        assert [b.st_local.kernel_size for b in blocks] == [(3, 3)] * 6
        assert [b.drop.p for b in blocks] == [0.2] * 6
        assert [b.affinity for b in blocks] == ["SLnL"] * 5 + ["Local"]  # M1 = 5 SLnL blocks first (Fig. 1)
        kinds = [type(m).__name__ for m in stream.blocks]
        assert kinds == ["SLnLBlock", "SLnLBlock", "MaxPool2d"] * 3  # 2×2 max-pooling every two blocks
    assert model.fc_c.in_features == 2 * 256 and model.fc_p.in_features == model.fc_v.in_features == 256
    kin = build("kinetics")
    blocks = [m for m in kin.position.blocks if isinstance(m, SLnLBlock)]
    assert [b.t_local.kernel_size[0] for b in blocks] == [5, 5, 3, 3, 3, 3, 3, 3]
    assert [b.bn.num_features for b in blocks][-2:] == [512, 512]
    assert kin.fc_c.out_features == 400


def test_build_rejects_bad_keywords_with_allowed_values():
    with pytest.raises(TypeError, match="unknown keyword.*'depth_multiplier'.*transform"):
        build("cpu", depth_multiplier=2)
    with pytest.raises(ValueError, match="transform='CS'.*Pos-N, Vel-N, PosVel-N, CNN-V, C-T, S-T, CS-T"):
        build("cpu", transform="CS")
    with pytest.raises(ValueError, match="attention.*none, aFA, sFA, dFA, rFA"):
        build("cpu", attention="FA")
    with pytest.raises(ValueError, match="affinity.*Local, tSLnL, sSLnL, SLnL"):
        build("cpu", affinity="nonlocal")
    with pytest.raises(ValueError, match=r"m1=7 is out of range.*0 … 6"):
        build("cpu", m1=7)
    with pytest.raises(ValueError, match=r"m1=-1"):
        build("ntu", m1=-1)
    with pytest.raises(ValueError, match="kernels has 6 entries but channels has 2"):
        build("cpu", channels=[8, 8])
    with pytest.raises(ValueError, match="nonlocal_impl.*fused, reference"):
        build("cpu", nonlocal_impl="flash")
    with pytest.raises(ValueError, match="unknown model preset 'ntu120'.*ntu, kinetics, cpu"):
        build("ntu120")
    assert build("cpu", channels=[8, 8], kernels=[3, 3], m1=2).config.channels == (8, 8)


def test_forward_rejects_inputs_that_do_not_match_the_config():
    model = build("cpu")
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 25, 2\).*\(2, 3, 64, 25, 2\)"):
        model(torch.zeros(2, 3, 64, 25, 2))


def test_vocabularies_are_the_tables_rows():
    assert TRANSFORMS == ("Pos-N", "Vel-N", "PosVel-N", "CNN-V", "C-T", "S-T", "CS-T")
    assert ATTENTIONS == ("none", "aFA", "sFA", "dFA", "rFA")
    assert AFFINITIES == ("Local", "tSLnL", "sSLnL", "SLnL")


# ------------------------------------------------------------------------------------------------- §3.1 transforms
def test_velocity_of_a_linear_ramp_is_its_slope_at_every_frame():
    T = 17
    t = torch.arange(T, dtype=torch.float64)
    slope = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
    x = (slope[:, None] * t + 1.0)[None, :, :, None, None].expand(2, 3, T, 4, 2)
    v = velocity(x)
    assert v.shape == x.shape
    torch.testing.assert_close(v, slope[None, :, None, None, None].expand_as(v))


def test_velocity_alignment_on_a_parabola():
    """x = t² has differences 2s + 1 at s = 0..T-2; frame i samples s_i = clamp((i + ½)(T-1)/T - ½, 0, T-2)."""
    T = 9
    t = torch.arange(T, dtype=torch.float64)
    x = (t**2)[None, None, :, None].expand(1, 1, T, 3)
    s = ((t + 0.5) * (T - 1) / T - 0.5).clamp(0, T - 2)
    torch.testing.assert_close(velocity(x)[0, 0, :, 0], 2 * s + 1)
    with pytest.raises(ValueError, match="at least 2 frames"):
        velocity(torch.zeros(1, 3, 1, 25, 2))


def test_coordinate_transformer_is_J_equals_C_J0_with_orthogonal_init():
    torch.manual_seed(0)
    ct = CoordinateTransformer(3, 4)
    C = ct.C.detach()
    torch.testing.assert_close(C[:3], torch.eye(3))  # C_1 = I: the original system
    for i in range(4):
        Ci = C[3 * i : 3 * i + 3]
        torch.testing.assert_close(Ci @ Ci.T, torch.eye(3), atol=1e-5, rtol=0)
    assert len({tuple(C[3 * i : 3 * i + 3].flatten().tolist()) for i in range(4)}) == 4  # K distinct systems
    with torch.no_grad():
        ct.C.normal_()
    x = torch.randn(2, 3, 5, 7)
    y = ct(x)
    torch.testing.assert_close(y[1, :, 2, 4], ct.C.detach() @ x[1, :, 2, 4])
    assert y.shape == (2, 12, 5, 7)


def test_skeleton_transformer_is_S_prime_equals_W_S_transposed():
    torch.manual_seed(0)
    st = SkeletonTransformer(25, 64)
    x = torch.randn(2, 3, 5, 25)
    y = st(x)
    torch.testing.assert_close(y[..., :25], x)  # identity block: the original joints come first
    with torch.no_grad():
        st.W_s.normal_()
    S = x[1, :, 3, :].T  # (N, d) skeleton of one frame
    torch.testing.assert_close(st(x)[1, :, 3, :].T, st.W_s.detach() @ S)  # S' = W_s S, shape (N', d)
    assert SkeletonTransformer(25, 16)(x).shape == (2, 3, 5, 16)


@pytest.mark.parametrize(
    "transform,C,N",
    [("Pos-N", 3, 25), ("Vel-N", 3, 25), ("PosVel-N", 3, 25), ("CNN-V", 30, 64), ("C-T", 30, 25), ("S-T", 3, 64),
     ("CS-T", 30, 64)],
)
def test_transform_rows_give_the_stated_C_prime_and_N_prime(transform, C, N):
    model = build("ntu", transform=transform, attention="dFA")
    streams = [s for s in (model.position, model.velocity) if s is not None]
    assert len(streams) == (1 if transform in ("Pos-N", "Vel-N") else 2)
    assert (model.position is None) == (transform == "Vel-N") and (model.velocity is None) == (transform == "Pos-N")
    for s in streams:
        x = torch.randn(2, 3, 64, 25)
        assert s.transform(x).shape == (2, C, 64, N)
        assert s.frequency.N == N and s.blocks[0].t_local.in_channels == C
    if transform == "CNN-V":
        assert isinstance(model.position.transform, CNNTransform)


def test_each_stream_has_its_own_transform_and_frequency_attention():
    """Fig. 1 is silent on sharing; we give each stream its own (network.py's docstring)."""
    model = build("cpu")
    for part in ("transform", "frequency"):
        a = {id(p) for p in getattr(model.position, part).parameters()}
        b = {id(p) for p in getattr(model.velocity, part).parameters()}
        assert a and b and not a & b, part


def test_local_convolutions_compose_linearly_with_a_2k_minus_1_field():
    """Fig. 3b literally: tLocal -> sLocal -> stLocal with no non-linearity between them (BN and ReLU come after)."""
    torch.manual_seed(0)
    k = 3
    b = SLnLBlock(4, 4, kernel=k, affinity="Local").double()
    chain = lambda x: b.st_local(b.s_local(b.t_local(x)))  # noqa: E731
    g = torch.Generator().manual_seed(1)
    x, y = (torch.randn(2, 4, 11, 9, generator=g, dtype=torch.float64) for _ in range(2))
    torch.testing.assert_close(chain(2.5 * x - 0.5 * y), 2.5 * chain(x) - 0.5 * chain(y), rtol=1e-10, atol=1e-10)
    impulse = torch.zeros(1, 4, 11, 9, dtype=torch.float64)
    impulse[0, :, 5, 4] = 1.0
    reach = chain(impulse).abs().sum(1)[0] > 0
    t, n = reach.nonzero(as_tuple=True)
    assert (int(t.max() - t.min()) + 1, int(n.max() - n.min()) + 1) == (2 * k - 1, 2 * k - 1)


# -------------------------------------------------------------------------------------- §3.3 SLnL starts as local
@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_fresh_slnl_model_computes_exactly_the_local_model(impl):
    slnl = build("cpu", affinity="SLnL", m1=6, nonlocal_impl=impl)
    local = build("cpu", affinity="Local")
    state = slnl.state_dict()
    missing, unexpected = local.load_state_dict({k: v for k, v in state.items() if k in local.state_dict()})
    assert not missing and not unexpected
    assert sum("nonlocal" in k for k in state) > 0
    x = _x(slnl.config, B=3)
    slnl.eval(), local.eval()
    with torch.no_grad():
        a, b = slnl(x), local(x)
    assert all(torch.equal(u, w) for u, w in zip(a, b))
    slnl.train(), local.train()
    torch.manual_seed(7)
    a = slnl(x)
    torch.manual_seed(7)
    b = local(x)
    assert all(torch.equal(u, w) for u, w in zip(a, b))  # same dropout masks, same batch statistics
    # ... and the non-local branch is live: W_w receives a gradient, so training can move away from local.
    a.c.sum().backward()
    w = slnl.position.blocks[0].st_nonlocal.W_w.weight
    assert w.grad is not None and w.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "affinity,m1,expected",
    [("Local", 6, [()] * 6), ("tSLnL", 1, [("t",)] + [()] * 5), ("sSLnL", 1, [("s",)] + [()] * 5),
     ("SLnL", 2, [("t", "s", "st")] * 2 + [()] * 4), ("SLnL", 0, [()] * 6)],
)
def test_table6_rows_place_nonlocal_modules_in_the_first_m1_blocks(affinity, m1, expected):
    model = build("cpu", affinity=affinity, m1=m1)
    blocks = [m for m in model.position.blocks if isinstance(m, SLnLBlock)]
    got = [tuple(d for d in ("t", "s", "st") if getattr(b, f"{d}_nonlocal") is not None) for b in blocks]
    assert got == expected
    for b in blocks:
        for d in ("t", "s", "st"):
            nl = getattr(b, f"{d}_nonlocal")
            assert nl is None or (isinstance(nl, NonLocal) and nl.dims == d)


# ------------------------------------------------------------------------------------------------- persons, heads
def test_person_max_merge_is_invariant_to_swapping_persons():
    torch.manual_seed(0)
    model = build("cpu")
    x = _x(model.config, B=4)
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x.flip(-1))
    for u, w in zip(a, b):
        torch.testing.assert_close(u, w, rtol=1e-5, atol=1e-5)
    model.train()  # batch statistics are over all persons, so training mode is invariant too
    torch.manual_seed(1)
    model.position.blocks.apply(lambda m: setattr(m, "p", 0.0) if isinstance(m, torch.nn.Dropout) else None)
    model.velocity.blocks.apply(lambda m: setattr(m, "p", 0.0) if isinstance(m, torch.nn.Dropout) else None)
    a, b = model(x), model(x.flip(-1))
    for u, w in zip(a, b):
        torch.testing.assert_close(u, w, rtol=1e-4, atol=1e-4)


def test_single_stream_rows_have_one_head_and_vel_n_ignores_position_offsets():
    torch.manual_seed(0)
    vel = build("cpu", transform="Vel-N", attention="none").eval()
    x = _x(vel.config)
    with torch.no_grad():
        h = vel(x)
        h_shift = vel(x + torch.tensor([1.0, -2.0, 0.5])[None, :, None, None, None])
    assert h.p is None and h.v is None and h.c.shape == (2, 60)
    torch.testing.assert_close(h.c, h_shift.c, rtol=1e-4, atol=1e-4)  # velocity does not see a global translation
    pos = build("cpu", transform="Pos-N")
    assert pos.velocity is None and pos.fc_c.in_features == 64
    both = build("cpu", transform="PosVel-N")
    h = both(x)
    assert isinstance(h, Heads) and h.p.shape == h.v.shape == h.c.shape == (2, 60)


def test_param_count_of_presets():
    n_ntu, n_cpu = param_count(build("ntu")), param_count(build("cpu"))
    assert n_cpu < n_ntu
    # the frequency attention of the ntu preset: 2 streams × 2 FC pairs (4096 -> 256 -> 4096)
    fa = 2 * 2 * (4096 * 256 + 256 + 256 * 4096 + 4096)
    assert sum(p.numel() for n, p in build("ntu").named_parameters() if "frequency" in n) == fa


def test_config_is_frozen_and_lists_become_tuples():
    cfg = build("cpu", channels=[8, 8, 8, 8, 8, 8]).config
    assert cfg.channels == (8,) * 6
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.m1 = 2  # type: ignore[misc]
    assert ModelConfig().validate() == PRESETS["ntu"]


def test_skeleton_transformer_with_fewer_new_joints_starts_as_group_means():
    """N' < N: every original joint contributes to exactly one new joint at initialisation (no joint starts dead)."""
    st = SkeletonTransformer(25, 16)
    W = st.W_s.detach()
    assert torch.equal((W > 0).sum(dim=0), torch.ones(25, dtype=torch.long))  # each joint in one group
    torch.testing.assert_close(W.sum(dim=1), torch.ones(16))  # each new joint is a mean
    x = torch.randn(2, 3, 5, 25)
    torch.testing.assert_close(st(x)[..., 0], x[..., :2].mean(-1))  # group 0 = joints 0 and 1 (0·16//25 = 1·16//25 = 0)


def test_a_single_integer_channels_or_kernels_means_one_block():
    m = build("cpu", channels=8, kernels=3, m1=1)
    assert m.config.channels == (8,) and m.config.kernels == (3,) and m.config.depth == 1


# ---------------------------------------------------------------------------------------------------- channels_last
def test_channels_last_is_the_same_function_with_nhwc_feature_maps():
    """channels_last changes storage only: same outputs, same gradients (dropout off: its masks follow storage order);
    the blocks really run on NHWC tensors and a state dict moves between the two layouts. float64, so that the
    comparison is about the function, not about float32 summation order."""
    torch.manual_seed(0)
    a = build("cpu", m1=3, dropout=0.0).double()
    with torch.no_grad():  # non-zero W_w, so the non-local branches contribute
        for m in a.modules():
            if isinstance(m, NonLocal):
                m.W_w.weight.normal_(0, 0.1)
    b = build("cpu", m1=3, dropout=0.0, channels_last=True).double()
    b.load_state_dict(a.state_dict())
    conv = b.position.blocks[0].st_local
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    seen = []
    conv.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].is_contiguous(memory_format=torch.channels_last)))
    x, y = _x(a.config, B=3).double(), torch.tensor([0, 1, 2])
    for mode in ("eval", "train"):
        getattr(a, mode)(), getattr(b, mode)()
        ha, hb = a(x), b(x)
        for u, v in zip(ha, hb):
            torch.testing.assert_close(v, u, rtol=1e-10, atol=1e-12)
    assert seen and all(seen)
    for net in (a, b):
        net.zero_grad()
        sum(torch.nn.functional.cross_entropy(h, y) for h in net(x)).backward()
    ga, gb = dict(a.named_parameters()), dict(b.named_parameters())
    for name, p in ga.items():
        torch.testing.assert_close(gb[name].grad, p.grad, rtol=1e-9, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")
    with pytest.raises(ValueError, match="channels_last"):
        build("cpu", channels_last="yes")
