"""§3.1 Transform network: velocity, the coordinate transformer (C ∈ R^{Kd×d}), the skeleton transformer
(W_s ∈ R^{N'×N}), the CNN-V control of Table 3, and ``build_transform`` mapping a Table 3 row to its module.

Tensors here are ``(B, C, T, N)``: persons are already folded into the batch by the network.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Table 3 rows: (uses position stream, uses velocity stream, transformer kind).
TRANSFORMS: dict[str, tuple[bool, bool, str]] = {
    "Pos-N": (True, False, "none"),
    "Vel-N": (False, True, "none"),
    "PosVel-N": (True, True, "none"),
    "CNN-V": (True, True, "cnn"),
    "C-T": (True, True, "coord"),
    "S-T": (True, True, "skeleton"),
    "CS-T": (True, True, "coord+skeleton"),
}


def velocity(x: Tensor) -> Tensor:
    """Joint velocity of ``x: (B, C, T, V, M)`` (or ``(B, C, T, V)``), same shape as ``x``; HCN's recipe.

    Following HCN (Li et al. 2018, the authors' predecessor): frame differences ``x[t+1] - x[t]`` (T-1 of them,
    the difference d_t sits at time t + 1/2) are resized back to T frames by bilinear interpolation along time with
    ``align_corners=False``, so output frame i samples the differences at fractional index
    ``s_i = (i + 1/2)(T-1)/T - 1/2`` (clamped to [0, T-2]), i.e. at time ``s_i + 1/2 = (i + 1/2)(T-1)/T``. The first and
    last frames get the first and last difference, and a constant-velocity ramp gives exactly its slope at every frame.
    """
    if x.dim() not in (4, 5):
        raise ValueError(f"velocity: expected (B, C, T, V[, M]), got shape {tuple(x.shape)}")
    T = x.shape[2]
    if T < 2:
        raise ValueError(f"velocity: need at least 2 frames, got T={T}")
    d = x[:, :, 1:] - x[:, :, :-1]
    B, C = d.shape[:2]
    rest = d.shape[3:]
    # Bilinear over (time, joints·persons) with the second size unchanged = linear interpolation along time only.
    flat = d.reshape(B, C, T - 1, -1)
    out = F.interpolate(flat, size=(T, flat.shape[-1]), mode="bilinear", align_corners=False)
    return out.reshape(B, C, T, *rest)


class CoordinateTransformer(nn.Module):
    """K adaptive oblique coordinate systems: ``J = C J0`` per joint and frame, C = [C_1; …; C_K] ∈ R^{Kd×d}.

    A bias-free 1×1 convolution d → Kd (a change of basis has no offset). Initialisation: C_1 = I (the original
    rectangular system, so the view-adaptive special case of Zhang et al. 2017 is the starting point) and C_2…C_K
    random orthogonal matrices (QR of a Gaussian), so every system starts as a rotation/reflection of the input with
    the same scale (the input is batch-normalised) and the K systems are distinct; training then makes them oblique.
    """

    def __init__(self, d: int, K: int) -> None:
        super().__init__()
        if d < 1 or K < 1:
            raise ValueError(f"CoordinateTransformer: need d >= 1 and K >= 1, got d={d}, K={K}")
        self.d, self.K = d, K
        self.C = nn.Parameter(torch.empty(K * d, d))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        blocks = [torch.eye(self.d)]
        for _ in range(self.K - 1):
            q, r = torch.linalg.qr(torch.randn(self.d, self.d))
            blocks.append(q * torch.sign(torch.diagonal(r)))  # sign fix: Haar-distributed orthogonal matrix
        self.C.copy_(torch.cat(blocks, 0))

    def forward(self, x: Tensor) -> Tensor:  # (B, d, T, N) -> (B, Kd, T, N)
        return F.conv2d(x, self.C[:, :, None, None])  # a bias-free 1×1 convolution

    def extra_repr(self) -> str:
        return f"d={self.d}, K={self.K}"


class SkeletonTransformer(nn.Module):
    """Augments and reorders joints: ``S' = (W_s S^T)^T`` with W_s ∈ R^{N'×N}, a linear map over the joint axis.

    With S ∈ R^{N×d} as printed the product W_s S^T does not type-check; the only consistent reading (and TS-CNN's)
    is S' = W_s S ∈ R^{N'×d} for every frame, i.e. S'^T = S^T W_s^T, which is what ``forward`` computes on the joint
    axis of ``(B, C, T, N)``.

    Initialisation: with N' ≥ N (the paper's 64 ≥ 25) the first N new joints are the original joints (W_s starts
    with an identity block) and the remaining rows are random mixtures (``nn.Linear``'s U(-1/√N, 1/√N)), so the
    network starts from the raw skeleton plus extra joints rather than from N' arbitrary blends. With N' < N (small
    presets) an identity block would start some joints at weight zero; instead new joint i starts as the mean of the
    i-th of N' contiguous groups of original joints, so every joint contributes from the first step. TS-CNN (Li et
    al. 2017) learns the same matrix.
    """

    def __init__(self, num_joints: int, new_joints: int) -> None:
        super().__init__()
        if num_joints < 1 or new_joints < 1:
            raise ValueError(f"SkeletonTransformer: need N >= 1 and N' >= 1, got N={num_joints}, N'={new_joints}")
        self.num_joints, self.new_joints = num_joints, new_joints
        self.W_s = nn.Parameter(torch.empty(new_joints, num_joints))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        N, Np = self.num_joints, self.new_joints
        if Np >= N:
            bound = N**-0.5
            self.W_s.uniform_(-bound, bound)
            self.W_s[:N] = torch.eye(N)
        else:  # group j -> new joint floor(j·N'/N): contiguous, non-empty groups covering every joint once
            group = torch.arange(N) * Np // N
            W = torch.zeros(Np, N)
            W[group, torch.arange(N)] = 1.0
            self.W_s.copy_(W / W.sum(dim=1, keepdim=True))

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T, N) -> (B, C, T, N')
        return torch.matmul(x, self.W_s.t())

    def extra_repr(self) -> str:
        return f"N={self.num_joints}, N'={self.new_joints}"


class CNNTransform(nn.Module):
    """CNN-V of Table 3: a plain CNN of the same depth (two layers) giving the same ``(Kd, T, N')`` output.

    Layer 1 is a 3×1 temporal convolution d → Kd over coordinates (HCN's point-level conv); layer 2 moves joints to
    the channel axis and applies a 3×1 convolution N → N' (HCN's co-occurrence trick), with BN + ReLU between them.
    Unlike C and W_s it is non-linear and looks at neighbouring frames, so Table 3 compares our transforms against
    "just more depth".
    """

    def __init__(self, d: int, K: int, num_joints: int, new_joints: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(d, K * d, (3, 1), padding=(1, 0), bias=False)
        self.bn1 = nn.BatchNorm2d(K * d)
        self.conv2 = nn.Conv2d(num_joints, new_joints, (3, 1), padding=(1, 0))

    def forward(self, x: Tensor) -> Tensor:  # (B, d, T, N) -> (B, Kd, T, N')
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.conv2(y.permute(0, 3, 2, 1))  # joints as channels: (B, N, T, Kd) -> (B, N', T, Kd)
        return y.permute(0, 3, 2, 1).contiguous()


def build_transform(kind: str, d: int, K: int, num_joints: int, new_joints: int) -> tuple[nn.Module, int, int]:
    """The transform of a Table 3 row's ``kind`` and its output ``(C', N')``.

    Without the coordinate transformer C' = d; without the skeleton transformer N' = num_joints.
    """
    if kind == "none":
        return nn.Identity(), d, num_joints
    if kind == "cnn":
        return CNNTransform(d, K, num_joints, new_joints), K * d, new_joints
    if kind == "coord":
        return CoordinateTransformer(d, K), K * d, num_joints
    if kind == "skeleton":
        return SkeletonTransformer(num_joints, new_joints), d, new_joints
    if kind == "coord+skeleton":
        return (
            nn.Sequential(CoordinateTransformer(d, K), SkeletonTransformer(num_joints, new_joints)),
            K * d,
            new_joints,
        )
    raise ValueError(f"unknown transformer kind {kind!r}")
