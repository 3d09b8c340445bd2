"""SLnL-rFA model family (§3.1–3.3): ``build(preset, **overrides) -> SLnLNet`` and the Table 3/5/6 vocabularies.

Variants are keywords of ``build`` (``transform`` ∈ TRANSFORMS, ``attention`` ∈ ATTENTIONS, ``affinity`` ∈
AFFINITIES, ``m1``), so notebooks, the CLI and sweeps share one vocabulary.
"""
from .blocks import AFFINITIES, LocalBlock, SLnLBlock
from .frequency import ATTENTIONS, FrequencyAttention
from .network import PRESETS, Heads, ModelConfig, SLnLNet, build, param_count
from .nonlocal_ import NONLOCAL_DIMS, NONLOCAL_IMPLS, NonLocal
from .transform import TRANSFORMS as _TRANSFORM_TABLE
from .transform import CoordinateTransformer, SkeletonTransformer, velocity

TRANSFORMS: tuple[str, ...] = tuple(_TRANSFORM_TABLE)

__all__ = [
    "build", "PRESETS", "ModelConfig", "Heads", "SLnLNet", "param_count",
    "TRANSFORMS", "ATTENTIONS", "AFFINITIES", "NONLOCAL_IMPLS", "NONLOCAL_DIMS",
    "CoordinateTransformer", "SkeletonTransformer", "velocity", "FrequencyAttention", "NonLocal",
    "SLnLBlock", "LocalBlock",
]
