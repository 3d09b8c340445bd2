"""``TrainConfig``: one training run, with the paper's protocol (§4.1) as the presets' defaults.

§4.1, "Implementation Details": Adam with weight decay 5e-4; learning rate 1e-3, decayed exponentially per epoch by
0.98 (NTU) / 0.95 (Kinetics); dropout 0.2 in every block (a *model* setting, ``ModelConfig.dropout``); 300 / 100
epochs; batch 32 / 128; the three heads trained with SMFL (γ=2, m=0.4; Eq. 20–21); top-1 / top-5 on ``p_c``.

Every field of ``TrainConfig`` that is ``None`` means "the preset's protocol value"; ``resolve()`` fills them in and
the *resolved* configuration is what is saved with the run (``config.yaml``), so a run directory shows every number
it used, and everything that deviates from the paper is visible as a difference from ``PROTOCOL[preset]``.

The margin ``m`` and the number of SLnL blocks M1 (``model["m1"]``) are the paper's *adopted* settings, which differ
by split (Tables 4 and 6 star one row per split): unset, ``resolve()`` takes them from ``slnl.experiments.adopted``
for the split and the protocol family (CS: m = 0.4, M1 = 5; CV: m = 0.6, M1 = 3; Kinetics: Table 2's row, i.e.
CS's). The ``cpu`` preset, the synthetic stand-in for NTU, follows the same rule. A value given explicitly (a dict
key, a YAML field, ``--m`` / ``--m1``) wins. A local-only model (``affinity: Local``) has no SLnL block: M1 = 0.

Precision (``precision="auto"``): bf16 autocast on a CUDA device that supports it, fp32 otherwise. bf16 is the
default at paper scale because its tensor-core rate is what makes 300-epoch NTU runs affordable (an H200's dense bf16
peak is about 15× its fp32 one, and PyTorch's flash attention kernel, the fused non-local's fastest, has no fp32
variant: fp32 falls back to the memory-efficient kernel), and because autocast keeps in fp32 what bf16 would harm:
parameters and Adam's state, batch norm, the losses (``slnl.losses`` leaves autocast), and the whole frequency
attention — DFT, gates and inverse (``slnl.models.frequency``: in bf16 its round trip errs by ~5e-3). What runs in
bf16 is the convolutions and the non-local projections and attention products (accumulated in fp32 by the kernels).
``precision="fp32"`` trains everything in fp32, the arithmetic of the paper's era.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from slnl.experiments import adopted
from slnl.losses import LOSSES, loss_params
from slnl.utils import atomic_write_text, resolve_path

# The paper's protocol per preset (§4.1), defined here only: the `paper` scale of slnl.study is these numbers.
# `split` is the store's split used when the config names none.
PROTOCOL: dict[str, dict[str, Any]] = {
    "ntu": dict(epochs=300, batch_size=32, lr=1e-3, lr_decay=0.98, weight_decay=5e-4, split="xsub", eval_every=1),
    "kinetics": dict(epochs=100, batch_size=128, lr=1e-3, lr_decay=0.95, weight_decay=5e-4, split="default",
                     eval_every=1),
    # Same optimiser, loss and decay as NTU (the synthetic store is NTU-shaped); few epochs, small batch.
    "cpu": dict(epochs=10, batch_size=16, lr=1e-3, lr_decay=0.98, weight_decay=5e-4, split="xsub", eval_every=1),
    # Small real datasets on one CPU core (MSR Action3D: 284 training clips): the paper's optimiser and weight decay;
    # NTU's 300 epochs at 0.98 end at 0.23 % of the starting rate, these 100 at 0.95 at 0.59 %, so that the last
    # epoch is a converged model, not a draw from mid-descent. Evaluation (and its BN statistics pass, which
    # normalises each batch by its own statistics) at batch 64. Chosen from measured curves: slnl.study's `small`.
    "small": dict(epochs=100, batch_size=8, lr=1e-3, lr_decay=0.95, weight_decay=5e-4, split="xsub", eval_every=10,
                  eval_batch_size=64),
}
# Whose adopted m and M1 a preset trains (slnl.experiments.adopted): Table 1's (NTU) or Table 2's (Kinetics).
FAMILY: dict[str, str] = {"ntu": "ntu", "kinetics": "kinetics", "cpu": "ntu", "small": "ntu"}

LOSS_NAMES = LOSSES  # slnl.losses: CE | FL | SMCE | SMFL
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DATA_MODES = ("auto", "cpu", "gpu")
BN_STATS = ("recompute", "running")  # slnl.engine.bnstats
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")

# Fields that define *what* is trained. Resuming with a different value of one of these is an error; the other
# fields (where/how fast it runs) may change between a run and its resumption. `epochs` may grow on resume (train
# longer); it is checked separately.
IDENTITY_FIELDS = (
    "preset", "model", "loss", "gamma", "m", "data", "split", "batch_size", "lr", "weight_decay", "lr_decay", "seed",
    "precision", "deterministic", "accum_steps", "max_steps_per_epoch", "sync_bn", "bn_stats",
)


@dataclass
class TrainConfig:
    """One training run. ``None`` = the preset's protocol value (see ``PROTOCOL``); ``resolve()`` fills it in."""

    preset: str = "ntu"  # ntu | kinetics | cpu: model preset (slnl.models.PRESETS) and protocol defaults
    model: dict[str, Any] = field(default_factory=dict)  # slnl.models.build overrides; no m1 = the split's adopted M1
    loss: str = "SMFL"  # CE | FL | SMCE | SMFL, applied to each head and summed (Eq. 21)
    gamma: float = 2.0  # focusing parameter γ (Eq. 18)
    m: float | None = None  # margin m (Eq. 13); None = the split's adopted m (0.4 CS, 0.6 CV)
    data: str | None = None  # prepared store directory; None = the built-in synthetic store
    split: str | None = None  # store split (xsub, xview, xset, default); None = the preset's
    epochs: int | None = None
    batch_size: int | None = None  # global batch (all processes together)
    lr: float | None = None
    weight_decay: float | None = None  # Adam's L2 term (torch.optim.Adam weight_decay), as in the paper
    lr_decay: float | None = None  # exponential decay per epoch: lr_e = lr * lr_decay**e
    seed: int = 0
    precision: str = "auto"  # fp32 | bf16 | fp16 | auto (bf16 on a CUDA device that supports it, else fp32)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    compile: bool = False  # torch.compile the model
    compile_mode: str = "default"  # with compile: torch.compile mode; "reduce-overhead" = CUDA graphs
    fused_adam: bool = False  # torch.optim.Adam(fused=True): one kernel per update (resolve(): True if sync_every > 1)
    sync_every: int = 1  # host-device synchronisations: every step (1), or every N steps (see slnl.engine.step)
    out: str | None = None  # run directory; None = results/runs/<preset>-<split>-<loss>-seed<k>-<hash> (default_out)
    resume: bool = False  # continue the run in `out` from last.pt (a finished run returns its result)
    overwrite: bool = False  # allow replacing a run directory that holds a checkpoint or a finished result
    data_mode: str = "auto"  # auto | cpu | gpu (whole split resident on the GPU; auto = gpu when CUDA and it fits)
    num_workers: int = 0  # CPU data-loader worker processes
    max_steps_per_epoch: int | None = None  # cap on optimiser steps per epoch (tiny runs for tests / notebooks)
    eval_every: int | None = None  # evaluate on the test subset every k epochs (and after the last epoch)
    checkpoint_every_steps: int = 0  # also write last.pt every N optimiser steps (0 = once per epoch only)
    progress: bool | None = None  # tqdm bars; None = only when stderr is a terminal (quiet under papermill)
    deterministic: bool = False  # deterministic kernels (torch.use_deterministic_algorithms); CPU runs are anyway
    accum_steps: int = 1  # micro-batches per process per optimiser step (gradient accumulation)
    sync_bn: bool = False  # SyncBatchNorm across processes (CUDA only); default: BN statistics per device
    # BN statistics evaluation uses: "recompute" them before each evaluation from the training clips with dropout off
    # (slnl.engine.bnstats: why), or keep PyTorch's "running" averages of training.
    bn_stats: str = "recompute"
    eval_batch_size: int | None = None  # None = batch_size
    tensorboard: bool = False  # TensorBoard scalars in <out>/tensorboard/ (needs: pip install 'slnl[tensorboard]')
    # Content fingerprint of the store trained on (slnl.data.store.fingerprint); None = fit() records the store's.
    # A run resumed, evaluated or analysed on a store with another fingerprint is refused (other data, same path).
    store_fingerprint: str | None = None

    # ---------------------------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "config") -> "TrainConfig":
        """Build from a mapping, rejecting unknown keys by name (a typo must not silently train the default)."""
        d = dict(d)
        d.pop("model_config", None)  # informational copy written by save_config()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{source}: unknown TrainConfig field(s) {unknown}; expected some of {sorted(known)}")
        if d.get("model") is None:
            d["model"] = {}
        if not isinstance(d["model"], dict):
            raise ValueError(f"{source}: field 'model' must be a mapping of slnl.models.build overrides, "
                             f"got {type(d['model']).__name__}")
        return cls(**d)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainConfig":
        path = Path(path)
        try:
            d = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML: {e}") from e
        if not isinstance(d, dict):
            raise ValueError(f"{path}: expected a mapping of TrainConfig fields at top level, got {type(d).__name__}")
        return cls.from_dict(d, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = _plain(d["model"])
        return d

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------------------------------------------------------
    def validate(self) -> None:
        if self.preset not in PROTOCOL:
            raise ValueError(f"preset: expected one of {sorted(PROTOCOL)}, got {self.preset!r}")
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"loss: expected one of {LOSS_NAMES}, got {self.loss!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {PRECISIONS}, got {self.precision!r}")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode: expected one of {COMPILE_MODES}, got {self.compile_mode!r}")
        if self.compile_mode != "default" and not self.compile:
            raise ValueError(f"compile_mode={self.compile_mode!r} needs compile=True")
        if not isinstance(self.sync_every, int) or isinstance(self.sync_every, bool) or self.sync_every < 1:
            raise ValueError(f"sync_every: expected an integer >= 1, got {self.sync_every!r}")
        if self.sync_every > 1 and self.precision == "fp16":
            raise ValueError("sync_every > 1 is not supported with precision='fp16' (the loss scaler decides per "
                             "step on the host); use bf16 or fp32, or sync_every=1")
        if self.bn_stats not in BN_STATS:
            raise ValueError(f"bn_stats: expected one of {BN_STATS}, got {self.bn_stats!r}")
        if self.data_mode not in DATA_MODES:
            raise ValueError(f"data_mode: expected one of {DATA_MODES}, got {self.data_mode!r}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"device: expected auto | cpu | cuda | cuda:N, got {self.device!r}")
        for name in ("epochs", "batch_size", "accum_steps", "eval_every", "eval_batch_size", "max_steps_per_epoch"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        for name in ("checkpoint_every_steps", "num_workers"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"{name}: expected an integer >= 0, got {v!r}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr: expected > 0, got {self.lr!r}")
        if self.lr_decay is not None and not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay: expected in (0, 1], got {self.lr_decay!r}")
        if self.weight_decay is not None and not self.weight_decay >= 0:
            raise ValueError(f"weight_decay: expected >= 0, got {self.weight_decay!r}")
        if self.gamma < 0:
            raise ValueError(f"gamma: expected >= 0 (Eq. 18), got {self.gamma!r}")
        if self.m is not None and (isinstance(self.m, bool) or not isinstance(self.m, (int, float)) or self.m < 0):
            raise ValueError(f"m: expected a margin >= 0 (Eq. 13), got {self.m!r}")
        if not isinstance(self.model, dict):
            raise ValueError(f"model: expected a mapping of slnl.models.build overrides, got {self.model!r}")

    def resolve(self) -> "TrainConfig":
        """Fill every ``None`` protocol field from ``PROTOCOL[preset]``, and m / ``model["m1"]`` when unset from the
        split's adopted setting (module docstring); validate. Data-dependent parts (store path, number of classes, …)
        are filled in by ``fit`` once the store is open. Idempotent: resolving a resolved config changes nothing."""
        self.validate()
        proto = PROTOCOL[self.preset]
        changes = {k: v for k, v in proto.items() if getattr(self, k) is None}
        cfg = self.replace(**changes, model=dict(self.model))
        paper = adopted(cfg.split, FAMILY[cfg.preset])
        if cfg.m is None:
            cfg.m = paper["m"]
        if "m1" not in cfg.model:
            cfg.model["m1"] = 0 if cfg.model.get("affinity") == "Local" else paper["m1"]
            depth = _depth(cfg.model.get("channels"))
            if depth is not None and cfg.model["m1"] > depth:
                raise ValueError(f"model.m1: the adopted M1 = {cfg.model['m1']} on split {cfg.split!r} needs at least "
                                 f"{cfg.model['m1']} blocks but model.channels has {depth}; give model.m1 (--m1)")
        # the saved config names what was trained: a parameter the loss does not use is 0 (slnl.losses.LOSS_PARAMS)
        used = loss_params(cfg.loss, cfg.gamma, cfg.m)
        cfg.gamma, cfg.m = used["gamma"], used["m"]
        if cfg.eval_batch_size is None:
            cfg.eval_batch_size = cfg.batch_size
        if cfg.sync_every > 1:  # it skips a non-finite step through fused Adam: the saved config says what ran
            cfg.fused_adam = True
        cfg.validate()
        return cfg

    def identity(self) -> dict[str, Any]:
        d = self.to_dict()
        return {k: d[k] for k in IDENTITY_FIELDS}

    def default_out(self) -> Path:
        """``results/runs/<preset>-<split>-<loss>-seed<k>-<hash>``: the same configuration always maps to the same
        directory, so re-running a notebook resumes (or returns) its run instead of starting a second one.

        ``results/runs`` is relative to the working directory (or ``$SLNL_HOME``, ``slnl.utils.home``), never to the
        installed package; ``$SLNL_RUNS_DIR`` replaces it (a relative one is relative to the same place)."""
        digest = hashlib.sha1(json.dumps(self.identity(), sort_keys=True, default=str).encode()).hexdigest()[:8]
        root = resolve_path(os.environ.get("SLNL_RUNS_DIR") or Path("results") / "runs")
        return root / f"{self.preset}-{self.split}-{self.loss}-seed{self.seed}-{digest}"


def _depth(channels: Any) -> int | None:
    """Number of blocks of a ``model.channels`` override (a list, a tuple, or one int = one block); None if unset."""
    if channels is None:
        return None
    return len(channels) if isinstance(channels, (list, tuple)) else 1


def _plain(obj: Any) -> Any:
    """Tuples → lists, recursively (YAML/JSON friendly)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def as_config(config: "TrainConfig | dict[str, Any]") -> TrainConfig:
    if isinstance(config, TrainConfig):
        return config.replace(model=dict(config.model))
    if isinstance(config, dict):
        return TrainConfig.from_dict(config)
    raise TypeError(f"config: expected TrainConfig or dict, got {type(config).__name__}")


def save_config(cfg: TrainConfig, path: str | os.PathLike, model_config: dict[str, Any] | None = None) -> None:
    d = cfg.to_dict()
    if model_config is not None:
        d["model_config"] = _plain(model_config)  # the full ModelConfig the run built (informational)
    atomic_write_text(path, yaml.safe_dump(d, sort_keys=False))


def config_diff(saved: TrainConfig, new: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """Identity fields on which two resolved configs disagree: {field: (saved, new)}."""
    a, b = saved.identity(), new.identity()
    return {k: (a[k], b[k]) for k in IDENTITY_FIELDS if a[k] != b[k]}
