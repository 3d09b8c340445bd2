"""SLnL-rFA (Fig. 1): two streams (position, velocity), three classifier heads; ``ModelConfig``, ``PRESETS``, ``build``.

Each stream: input BatchNorm → transform network (§3.1) → frequency attention (§3.2) → m1 SLnL blocks then
M2 = depth − m1 local blocks (§3.3), 2×2 max-pooling after every second block (§4.1) → person merge → global
average pooling. Heads (§3.4): FC(f_p), FC(f_v) and FC([f_p; f_v]); prediction uses the last one.

Choices the paper leaves open (and why):
* Input BN: "the obtained data are fed into a batch normalization layer to normalize the scale" (§4.1). Like
  ST-GCN's ``data_bn`` we normalise each (channel, joint) pair over batch and time (BatchNorm1d over C·V); unlike
  ST-GCN the statistics are shared by the persons, since persons are interchangeable. Each stream has its own BN
  (velocities and positions have different scales). Velocity is computed from the raw positions, before any BN.
* Persons: folded into the batch with shared weights and merged by an element-wise max over persons of the final
  feature maps, before global pooling — HCN's choice (Li et al. 2018); the max makes the prediction invariant to the
  order of persons. As in HCN, an absent (zero-filled) person still runs through the stream and takes part in the max.
* Pooling: ``nn.MaxPool2d(2, ceil_mode=True)`` after blocks 2, 4, 6(, 8), literally "every two blocks"; ceil mode so an
  odd T' or N' never drops the last frame or joint.
* Velocity is taken of every input channel, including Kinetics' confidence score (its change is informative and
  this keeps one code path for both datasets).
* Heads: plain linear layers on the globally pooled features; the concatenated head sees [f_p; f_v]. A single-stream
  row (Pos-N, Vel-N) has ``None`` for the missing head and its ``c`` head is an FC of the one stream's features.
* One transform network and one frequency attention per stream, not shared: Fig. 1 draws the two streams side by side
  and does not say whether they share weights. HCN, the authors' predecessor, gives each stream its own layers, and
  positions and velocities differ in scale and in spectrum (velocity is a high-pass of position), so coordinate
  systems, joint mixtures and frequency gates learnt for one need not suit the other.
* Default ``m1``: 5, the adopted depth of Table 1's CS column and of Table 2 (Kinetics); the paper adopts M1 = 3 on
  CV. Training takes M1 per split from ``slnl.experiments`` (see ``slnl.engine.config``), so the default matters only
  to a direct ``build()``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from .blocks import AFFINITIES, SLnLBlock
from .frequency import ATTENTIONS, FrequencyAttention
from .nonlocal_ import NONLOCAL_IMPLS, RECOMPUTE
from .transform import TRANSFORMS, build_transform, velocity


class Heads(NamedTuple):
    """Logits ``(B, num_classes)`` of the position, velocity and concatenated classifiers (§3.4); ``c`` predicts."""

    p: Optional[Tensor]
    v: Optional[Tensor]
    c: Tensor


@dataclass(frozen=True)
class ModelConfig:
    """Every hyper-parameter of SLnL-rFA. Defaults are the NTU RGB+D setting of §4.1 and the adopted final model of
    Table 1's CS column (CS-T transform, rFA, SLnL with m1 = 5; on CV the paper adopts m1 = 3)."""

    num_classes: int = 60
    num_joints: int = 25  # N
    in_channels: int = 3  # d: (x, y, z) for NTU, (x, y, score) for Kinetics
    num_persons: int = 2  # M
    T: int = 64  # frames after resizing (T' = T)
    K: int = 10  # coordinate systems of the coordinate transformer
    new_joints: int = 64  # N' of the skeleton transformer
    channels: tuple[int, ...] = (64, 64, 128, 128, 256, 256)
    kernels: tuple[int, ...] = (3, 3, 3, 3, 3, 3)
    pool_every: int = 2  # 2×2 max-pooling after every `pool_every` blocks
    dropout: float = 0.2
    input_bn: bool = True
    fa_ratio: int = 16  # λ of Eq. 2
    transform: str = "CS-T"  # Table 3 row
    attention: str = "rFA"  # Table 5 row
    affinity: str = "SLnL"  # Table 6 row
    m1: int = 5  # SLnL blocks (first); M2 = depth - m1 local blocks follow. Ignored when affinity="Local".
    nonlocal_impl: str = "fused"
    recompute: str = "auto"  # fused non-local: recompute q/k/v in backward (auto: on CPU yes, on CUDA no)
    channels_last: bool = False  # blocks run on NHWC feature maps (execution only: same function, see Stream)

    @property
    def depth(self) -> int:
        return len(self.channels)

    @property
    def m2(self) -> int:
        return self.depth - self.m1

    def validate(self) -> "ModelConfig":
        def choice(name: str, allowed) -> None:
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"ModelConfig.{name}={value!r} is not valid; expected one of {', '.join(allowed)}")

        choice("transform", tuple(TRANSFORMS))
        choice("attention", ATTENTIONS)
        choice("affinity", AFFINITIES)
        choice("nonlocal_impl", NONLOCAL_IMPLS)
        choice("recompute", RECOMPUTE)
        if not isinstance(self.channels_last, bool):
            raise ValueError(f"ModelConfig.channels_last must be True or False, got {self.channels_last!r}")
        for name in ("num_classes", "num_joints", "in_channels", "num_persons", "K", "new_joints", "fa_ratio",
                     "pool_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.T, int) or self.T < 2:
            raise ValueError(f"ModelConfig.T must be an integer >= 2 (velocity needs two frames), got {self.T!r}")
        if len(self.channels) == 0 or any(not isinstance(c, int) or c < 1 for c in self.channels):
            raise ValueError(f"ModelConfig.channels must be a non-empty tuple of integers >= 1, got {self.channels!r}")
        if len(self.kernels) != len(self.channels):
            raise ValueError(
                f"ModelConfig.kernels has {len(self.kernels)} entries but channels has {len(self.channels)}; "
                "one local kernel size per block is expected"
            )
        if any(not isinstance(k, int) or k < 1 or k % 2 == 0 for k in self.kernels):
            raise ValueError(f"ModelConfig.kernels must be odd integers >= 1, got {self.kernels!r}")
        if not isinstance(self.m1, int) or not 0 <= self.m1 <= self.depth:
            raise ValueError(f"ModelConfig.m1={self.m1!r} is out of range; expected an integer in 0 … {self.depth}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout!r}")
        return self


PRESETS: dict[str, ModelConfig] = {
    # §4.1: NTU RGB+D — 6 blocks (64, 64, 128, 128, 256, 256), kernels 3, T = 64, K = 10, N' = 64, dropout 0.2.
    "ntu": ModelConfig(),
    # §4.1: Kinetics — two more blocks of 512, first two kernels 5, T = 128, (X, Y, C) per joint, 18 joints.
    "kinetics": ModelConfig(
        num_classes=400,
        num_joints=18,
        in_channels=3,
        num_persons=2,
        T=128,
        channels=(64, 64, 128, 128, 256, 256, 512, 512),
        kernels=(5, 5, 3, 3, 3, 3, 3, 3),
    ),
    # Not in the paper: the NTU topology with fewer frames, coordinate systems and channels, so that tests, the
    # synthetic set and notebooks executed tiny train on a CPU. N' = 32 still augments the skeleton as §3.1 does
    # (N' ≥ N: NTU's 25 joints; 64 at the paper's scale).
    "cpu": ModelConfig(T=32, K=4, new_joints=32, channels=(16, 16, 32, 32, 64, 64)),
    # Not in the paper: the cpu model for small real datasets trained on one CPU core (MSR Action3D, slnl.study's
    # `small` scale). T = 16: MSR clips have 13-76 frames (mean 39), and the non-local blocks' cost grows with T².
    # recompute "never": at this size the fused non-local's recomputation in backward costs a third of the step on a
    # CPU core and saves memory nobody needs (same mathematics).
    # N' = 32 ≥ N of every small dataset here (MSR Action3D and NW-UCLA 20, SBU 15, NTU 25): the skeleton transformer
    # augments the joints (§3.1); a dataset's selected recipe may set another N' ≥ N (slnl.study.selection).
    "small": ModelConfig(T=16, K=4, new_joints=32, channels=(16, 16, 32, 32, 64, 64), recompute="never"),
}


class Stream(nn.Module):
    """One stream of Fig. 1: ``(B, C, T, V, M) -> (B, channels[-1])``."""

    def __init__(self, cfg: ModelConfig, transformer_kind: str) -> None:
        super().__init__()
        d, V = cfg.in_channels, cfg.num_joints
        self.data_bn = nn.BatchNorm1d(d * V) if cfg.input_bn else None
        self.transform, c, n = build_transform(transformer_kind, d, cfg.K, V, cfg.new_joints)
        self.frequency = FrequencyAttention(cfg.T, n, cfg.attention, cfg.fa_ratio)
        m1 = cfg.m1 if cfg.affinity != "Local" else 0
        layers: list[nn.Module] = []
        for i, (out, k) in enumerate(zip(cfg.channels, cfg.kernels)):
            affinity = cfg.affinity if i < m1 else "Local"
            layers.append(SLnLBlock(c, out, k, affinity, cfg.dropout, cfg.nonlocal_impl, cfg.recompute))
            if (i + 1) % cfg.pool_every == 0:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            c = out
        self.blocks = nn.Sequential(*layers)
        self.out_channels = c
        # channels_last: the blocks see (B, C, T, N) stored as (B, T, N, C). Convolutions then run in NHWC (cuDNN's
        # native layout for bf16 tensor cores, oneDNN's on CPU: no transposes around each conv), and the "s"/"st"
        # non-local projections read their channels-last view (x.permute(0, 2, 3, 1)) without a copy. Same
        # mathematics; only dropout masks differ (drawn in storage order). What it gains is in results/bench/.
        self.channels_last = cfg.channels_last
        if cfg.channels_last:
            self.blocks.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        B, C, T, V, M = x.shape
        x = x.permute(0, 4, 1, 3, 2).reshape(B * M, C * V, T)  # persons into the batch
        if self.data_bn is not None:
            x = self.data_bn(x)
        x = x.reshape(B * M, C, V, T).transpose(2, 3)  # (B·M, C, T, V)
        x = self.frequency(self.transform(x))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.blocks(x)  # (B·M, C_f, T'', N'')
        x = x.reshape(B, M, *x.shape[1:]).amax(dim=1)  # element-wise max over persons (HCN)
        return x.mean(dim=(2, 3))  # global average pooling


class SLnLNet(nn.Module):
    """SLnL-rFA: ``x: (B, C, T, V, M)`` float positions -> ``Heads(p, v, c)``."""

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.config = config.validate()
        use_p, use_v, kind = TRANSFORMS[config.transform]
        self.position = Stream(config, kind) if use_p else None
        self.velocity = Stream(config, kind) if use_v else None
        width = sum(s.out_channels for s in (self.position, self.velocity) if s is not None)
        self.fc_p = nn.Linear(self.position.out_channels, config.num_classes) if use_p and use_v else None
        self.fc_v = nn.Linear(self.velocity.out_channels, config.num_classes) if use_p and use_v else None
        self.fc_c = nn.Linear(width, config.num_classes)

    def forward(self, x: Tensor) -> Heads:
        cfg = self.config
        expected = (cfg.in_channels, cfg.T, cfg.num_joints, cfg.num_persons)
        if x.dim() != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"SLnLNet expects x of shape (B, C, T, V, M) = (B, {', '.join(map(str, expected))}) "
                f"for this config, got {tuple(x.shape)}"
            )
        f_p = self.position(x) if self.position is not None else None
        f_v = self.velocity(velocity(x)) if self.velocity is not None else None
        feats = [f for f in (f_p, f_v) if f is not None]
        c = self.fc_c(torch.cat(feats, dim=1))
        p = self.fc_p(f_p) if self.fc_p is not None else None
        v = self.fc_v(f_v) if self.fc_v is not None else None
        return Heads(p, v, c)


def build(preset: str = "ntu", **overrides) -> SLnLNet:
    """``SLnLNet`` of ``PRESETS[preset]`` with ``overrides`` (``ModelConfig`` field names) applied and validated.

    The presets have NTU RGB+D's shape; a dataset gives its own as ``num_classes``, ``in_channels`` (C),
    ``num_joints`` (V) and ``num_persons`` (M) — ``slnl.build_for(store)`` reads them from a prepared store."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; expected one of {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(
            f"build(): unknown keyword(s) {', '.join(map(repr, unknown))}; "
            f"expected ModelConfig fields: {', '.join(sorted(fields))}"
        )
    for key in ("channels", "kernels"):  # lists from YAML/CLI become tuples (the config is frozen and hashable)
        if key in overrides and isinstance(overrides[key], list):
            overrides[key] = tuple(overrides[key])
        elif key in overrides and isinstance(overrides[key], int):  # `--model channels=64`: one block
            overrides[key] = (overrides[key],)
    return SLnLNet(dataclasses.replace(PRESETS[preset], **overrides))


def param_count(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
