"""§3.3 Blocks: the baseline local block (Fig. 3b) and the synchronous local and non-local block (Fig. 3c).

One class, ``SLnLBlock``, with ``affinity`` ∈ AFFINITIES picking which non-local modules run beside the local convs:

    y1 = tLocal(x)  + tNL(x)        tLocal: k×1 conv (time),   tNL: non-local over T, per joint
    y2 = sLocal(y1) + sNL(y1)       sLocal: 1×k conv (joints), sNL: non-local over N', per frame
    y3 = stLocal(y2) + stNL(y2)     stLocal: k×k conv,         stNL: non-local over T×N'
    out = dropout(relu(bn(y3) + residual(x)))

"Local" has no non-local module (Fig. 3b, ``LocalBlock``), "tSLnL" only tNL, "sSLnL" only sNL, "SLnL" all three.
Placement: Fig. 3b names one BN, one ReLU and a residual path; we put the BN on the sum of the convolutions (so the
non-local and local terms are normalised together, and the zero-initialised non-local branch leaves the block's
initial function unchanged), add the residual after BN (ResNet's "BN before the addition"), then ReLU, then the
block's dropout (0.2, §4.1). The three convolutions have no bias: everything before the BN is linear in the biases,
which the BN's mean subtraction removes. The residual is the identity when the channel count is unchanged and a
1×1 conv + BN otherwise (ResNet's projection shortcut).

No non-linearity between the three local convolutions: §3.3 lists one BN and one ReLU for the whole block and
Fig. 3b draws tLocal → sLocal → stLocal in sequence without any, so we follow the figure literally. The three then
compose into one linear map (a factorised (2k−1)×(2k−1) convolution); in an SLnL block the non-local modules'
softmax is the only non-linearity before the block's BN and ReLU.
"""
from __future__ import annotations

from torch import Tensor, nn

from .nonlocal_ import NonLocal

AFFINITIES: tuple[str, ...] = ("Local", "tSLnL", "sSLnL", "SLnL")
_NONLOCAL_STAGES = {"Local": (), "tSLnL": ("t",), "sSLnL": ("s",), "SLnL": ("t", "s", "st")}


class SLnLBlock(nn.Module):
    """Fig. 3c block ``(B, in_channels, T, N) -> (B, out_channels, T, N)``; ``affinity="Local"`` is Fig. 3b."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int = 3,
        affinity: str = "SLnL",
        dropout: float = 0.2,
        nonlocal_impl: str = "fused",
        recompute: str = "auto",
    ) -> None:
        super().__init__()
        if affinity not in AFFINITIES:
            raise ValueError(f"unknown affinity {affinity!r}; expected one of {', '.join(AFFINITIES)}")
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"local kernel must be odd and >= 1 (same-size padding), got {kernel}")
        self.affinity = affinity
        p = kernel // 2
        self.t_local = nn.Conv2d(in_channels, out_channels, (kernel, 1), padding=(p, 0), bias=False)
        self.s_local = nn.Conv2d(out_channels, out_channels, (1, kernel), padding=(0, p), bias=False)
        self.st_local = nn.Conv2d(out_channels, out_channels, (kernel, kernel), padding=(p, p), bias=False)
        stages = _NONLOCAL_STAGES[affinity]
        self.t_nonlocal = NonLocal(in_channels, out_channels, "t", nonlocal_impl, recompute) if "t" in stages else None
        self.s_nonlocal = NonLocal(out_channels, out_channels, "s", nonlocal_impl, recompute) if "s" in stages else None
        self.st_nonlocal = NonLocal(out_channels, out_channels, "st", nonlocal_impl, recompute) if "st" in stages else None
        self.bn = nn.BatchNorm2d(out_channels)
        if in_channels == out_channels:
            self.residual: nn.Module = nn.Identity()
        else:
            self.residual = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        y = self.t_local(x)
        if self.t_nonlocal is not None:
            y = y + self.t_nonlocal(x)
        z = self.s_local(y)
        if self.s_nonlocal is not None:
            z = z + self.s_nonlocal(y)
        y = self.st_local(z)
        if self.st_nonlocal is not None:
            y = y + self.st_nonlocal(z)
        return self.drop(self.relu(self.bn(y) + self.residual(x)))


def LocalBlock(in_channels: int, out_channels: int, kernel: int = 3, dropout: float = 0.2) -> SLnLBlock:
    """The baseline local block of Fig. 3b (an ``SLnLBlock`` with ``affinity="Local"``)."""
    return SLnLBlock(in_channels, out_channels, kernel, affinity="Local", dropout=dropout)
