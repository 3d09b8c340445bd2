"""§3.4 The soft-margin loss family: SM (Eq. 13), CE, FL (Eq. 18), SMCE (Eq. 14), SMFL (Eq. 19), multi-task sum (Eq. 21).

Two faces of the same formulas:

* ``sm, ce, fl, smce, smfl`` take a tensor ``pt`` (the posterior of the true class) and return the per-sample loss,
  written exactly as the paper prints them. They are for plotting (Fig. 4) and for tests.
* ``make_loss(name, gamma, m)`` returns a callable ``(logits, target) -> mean loss`` used for training. All four
  losses are one formula, ``L = L_SM(m) + (1 - p_t)^gamma * (-log p_t)``, with CE = (gamma=0, m=0),
  FL = (gamma, m=0), SMCE = (gamma=0, m), SMFL = (gamma, m). It is evaluated in *log space* from ``log_softmax`` so
  that loss and gradient stay finite for p_t -> 0 and p_t -> 1 (logits of +-1e4 in float32 or under bf16 autocast):

      log p_t      = log_softmax(z)[t]                      (computed in float32)
      L_CE         = -log p_t
      1 - p_t      = -expm1(log p_t)                        (no cancellation near p_t = 1)
      L_SM         = log(e^m + (1 - e^m) p_t) = m + log1p(-(1 - e^-m) p_t)     (argument of log1p > -1 for all p_t)

  Eq. 16-17 give the same SMCE as cross entropy on logits whose true-class score is lowered by m; the tests check
  this identity rather than relying on it.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Which of the two parameters each loss uses (the corners of the one formula above): gamma focuses (Eq. 18), m is the
#: margin (Eq. 13). The one statement of the rule "CE/FL have no m, CE/SMCE have no gamma"; see ``loss_params``.
LOSS_PARAMS: dict[str, tuple[str, ...]] = {"CE": (), "FL": ("gamma",), "SMCE": ("m",), "SMFL": ("gamma", "m")}
LOSSES: tuple[str, ...] = tuple(LOSS_PARAMS)


def loss_params(name: str, gamma: float, m: float) -> dict[str, float]:
    """``{"gamma": gamma, "m": m}`` as the loss ``name`` (CE, FL, SMCE, SMFL) uses them: a parameter it does not use
    is 0.0, the value at which the formula drops that term (``LOSS_PARAMS``). A configuration that stores these says
    exactly which loss ran, and two spellings of the same loss compare equal."""
    uses = LOSS_PARAMS[name]
    return {"gamma": float(gamma) if "gamma" in uses else 0.0, "m": float(m) if "m" in uses else 0.0}


# --------------------------------------------------------------------------------------------------------------------
# Functions of p_t (Fig. 4). Written as in the paper; use the logits path (make_loss) for training.
# --------------------------------------------------------------------------------------------------------------------
def sm(pt: Tensor, m: float = 0.4) -> Tensor:
    """Soft-margin term, Eq. 13: ``L_SM(p_t) = log(e^m + (1 - e^m) p_t)``; L_SM(0) = m, L_SM(1) = 0, in [0, m]."""
    pt = torch.as_tensor(pt)
    # m + log1p(-(1 - e^-m) p_t) is the same number as Eq. 13 with no loss of precision near p_t = 1.
    return m + torch.log1p(math.expm1(-m) * pt)  # expm1(-m) = -(1 - e^-m)


def ce(pt: Tensor) -> Tensor:
    """Cross entropy of the true class: ``-log p_t``."""
    return -torch.log(torch.as_tensor(pt))


def fl(pt: Tensor, gamma: float = 2.0) -> Tensor:
    """Focal loss, Eq. 18: ``-(1 - p_t)^gamma log p_t`` (Lin et al. 2017)."""
    pt = torch.as_tensor(pt)
    return -((1 - pt) ** gamma) * torch.log(pt)


def smce(pt: Tensor, m: float = 0.4) -> Tensor:
    """Soft-margin cross entropy, Eq. 14: ``L_SM + L_CE``."""
    return sm(pt, m) + ce(pt)


def smfl(pt: Tensor, gamma: float = 2.0, m: float = 0.4) -> Tensor:
    """Soft-margin focal loss, Eq. 19: ``L_SM + L_FL``."""
    return sm(pt, m) + fl(pt, gamma)


# --------------------------------------------------------------------------------------------------------------------
# From logits (training).
# --------------------------------------------------------------------------------------------------------------------
class SoftMarginFocalLoss(nn.Module):
    """``mean_i [ L_SM(p_t; m) + (1 - p_t)^gamma * (-log p_t) ]`` from logits, in log space (Eq. 19-20).

    With ``gamma = 0`` and ``m = 0`` this is exactly cross entropy; ``make_loss`` names the four corners.
    The loss is computed in (at least) float32 whatever the autocast dtype of ``logits`` (losses are reductions; bf16 would lose
    the small per-sample differences that FL and SM are about).
    """

    def __init__(self, gamma: float = 0.0, m: float = 0.0, name: str | None = None) -> None:
        super().__init__()
        if not (math.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"gamma must be a finite number >= 0 (focusing parameter of Eq. 18), got {gamma!r}")
        if not math.isfinite(m):
            raise ValueError(f"m must be a finite number (margin of Eq. 13), got {m!r}")
        self.gamma = float(gamma)
        self.m = float(m)
        self.name = name or f"SMFL(gamma={gamma}, m={m})"

    def per_sample(self, logits: Tensor, target: Tensor) -> Tensor:
        if logits.dim() != 2:
            raise ValueError(f"{self.name}: logits must be (batch, classes), got shape {tuple(logits.shape)}")
        if target.shape != logits.shape[:1]:
            raise ValueError(
                f"{self.name}: target must be (batch,) = {tuple(logits.shape[:1])} class indices, "
                f"got shape {tuple(target.shape)}"
            )
        with torch.autocast(device_type=logits.device.type, enabled=False):
            dtype = torch.promote_types(logits.dtype, torch.float32)  # float32, or float64 for gradcheck
            log_pt = F.log_softmax(logits.to(dtype), dim=1).gather(1, target.long().unsqueeze(1)).squeeze(1)
            loss = -log_pt  # L_CE
            if self.gamma != 0.0:
                # (1 - p_t)^gamma with 1 - p_t = -expm1(log p_t). The clamp only matters when p_t rounds to exactly 1:
                # there (1 - p_t)^gamma is ~0 either way, and the clamp keeps pow's gradient finite for gamma < 1.
                one_minus_pt = (-torch.expm1(log_pt)).clamp_min(torch.finfo(dtype).tiny)
                loss = one_minus_pt.pow(self.gamma) * loss
            if self.m != 0.0:
                # Eq. 13 as m + log1p(-(1 - e^-m) p_t): finite for every p_t in [0, 1] and every finite m.
                loss = loss + (self.m + torch.log1p(math.expm1(-self.m) * torch.exp(log_pt)))
        return loss

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.per_sample(logits, target).mean()

    def extra_repr(self) -> str:
        return f"name={self.name}, gamma={self.gamma}, m={self.m}"


def make_loss(name: str = "SMFL", gamma: float = 2.0, m: float = 0.4) -> SoftMarginFocalLoss:
    """The loss of Table 4 called ``name`` (CE, FL, SMCE, SMFL; case-insensitive) as ``(logits, target) -> mean``.

    ``gamma`` is used by FL and SMFL only, ``m`` by SMCE and SMFL only (the paper writes them as (gamma, m)).
    """
    key = str(name).upper()
    if key not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")
    used = loss_params(key, gamma, m)
    g, mm = used["gamma"], used["m"]
    label = {"CE": "CE", "FL": f"FL({g:g},)", "SMCE": f"SMCE(,{mm:g})", "SMFL": f"SMFL({g:g},{mm:g})"}[key]
    return SoftMarginFocalLoss(gamma=g, m=mm, name=label)


class MultiTaskLoss(nn.Module):
    """Eq. 21: ``L = L_p + L_v + L_c``, one ``base`` loss per classifier head (position, velocity, concatenation).

    Called as ``(heads, target) -> (total, {"p": L_p, "v": L_v, "c": L_c})``; a head that is ``None`` (single-stream
    rows Pos-N / Vel-N) contributes nothing and is absent from the dict.
    """

    def __init__(self, base: Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__()
        self.base = base

    def forward(self, heads, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        parts: dict[str, Tensor] = {}
        for key in ("p", "v", "c"):
            logits = getattr(heads, key)
            if logits is not None:
                parts[key] = self.base(logits, target)
        if not parts:
            raise ValueError("MultiTaskLoss: every head is None; nothing to optimise")
        total = sum(parts.values())
        return total, parts
