"""``TrainConfig``: one training run, explicit — every value it trains with is a field, set by whoever made it.

The engine looks nothing up: a configuration names its model preset and overrides, loss (and the γ, m it uses),
split, epochs, batch, learning rate and its decay, weight decay, evaluation cadence and BN statistics mode. The
defaults of those live once, in a named recipe (``slnl.recipes``: §4.1's ``ntu`` and ``kinetics``, ``cpu``,
``small``, ``small-long``), and the paper's per-split settings (the adopted m and M1) in ``slnl.experiments``;
``slnl.recipes.config_for`` combines them into a ``TrainConfig``, and that is what ``slnl train``, the notebooks,
``slnl sweep`` and the benchmark hand to ``fit()``. The fields below that have defaults say *how* a run executes
(device, precision, compile, workers, progress, …), not what it computes, except where their comment says so.

``resolve()`` applies the rules that are the engine's own, not the paper's: a loss parameter the loss does not use is
0 (``slnl.losses.LOSS_PARAMS``), the evaluation batch is the training batch unless given, and ``sync_every > 1``
implies fused Adam (it skips a non-finite step through it). The resolved configuration is what is saved with the
run (``config.yaml``), so a run directory shows every number it used.

Precision (``precision="auto"``): bf16 autocast on a CUDA device that supports it, fp32 otherwise. bf16 is the
default at paper scale because its tensor-core rate is what makes 300-epoch NTU runs affordable (an H200's dense bf16
peak is about 15× its fp32 one, and PyTorch's flash attention kernel, the fused non-local's fastest, has no fp32
variant: fp32 falls back to the memory-efficient kernel), and because autocast keeps in fp32 what bf16 would harm:
parameters and Adam's state, batch norm, the losses (``slnl.losses`` leaves autocast), and the whole frequency
attention — DFT, gates and inverse (``slnl.models.frequency``). What runs in bf16 is the convolutions and the
non-local projections and attention products (accumulated in fp32 by the kernels). ``precision="fp32"`` trains
everything in fp32, the arithmetic of the paper's era.
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

from slnl.losses import LOSSES, loss_params
from slnl.utils import atomic_write_text, resolve_path

LOSS_NAMES = LOSSES  # slnl.losses: CE | FL | SMCE | SMFL
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DATA_MODES = ("auto", "cpu", "gpu", "gpu-fp16")  # slnl.engine.fetch.fetchers
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
    """One training run. The fields without a default say what is trained and must be given (``slnl.recipes``
    makes them); the others say how it runs."""

    preset: str  # model preset: slnl.models.PRESETS (ntu | kinetics | cpu | small)
    split: str  # store split (xsub, xview, xset, default, fold1 …; aliases CS, CV)
    loss: str  # CE | FL | SMCE | SMFL, applied to each head and summed (Eq. 21)
    gamma: float  # focusing parameter γ (Eq. 18)
    m: float  # margin m (Eq. 13)
    epochs: int
    batch_size: int  # global batch (all processes together)
    lr: float
    weight_decay: float  # Adam's L2 term (torch.optim.Adam weight_decay), as in the paper
    lr_decay: float  # exponential decay per epoch: lr_e = lr * lr_decay**e
    eval_every: int  # evaluate on the test subset every k epochs (and after the last epoch)
    # BN statistics evaluation uses: "recompute" them before each evaluation from the training clips with dropout off
    # (slnl.engine.bnstats: why), or keep PyTorch's "running" averages of training.
    bn_stats: str
    model: dict[str, Any] = field(default_factory=dict)  # slnl.models.build overrides of the preset
    data: str | None = None  # prepared store directory; None = the built-in synthetic store
    # global evaluation batch (all processes together, like batch_size), also the BN statistics pass's: None = batch_size
    eval_batch_size: int | None = None
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
    # auto | cpu | gpu | gpu-fp16: the split in host memory, or resident on the GPU in float32 (auto: when it fits on
    # every process) or, chosen explicitly, in float16 (slnl.engine.fetch.fetchers); the data's dtype is identity
    data_mode: str = "auto"
    num_workers: int = 0  # CPU data-loader worker processes
    max_steps_per_epoch: int | None = None  # cap on optimiser steps per epoch (tiny runs for tests / notebooks)
    checkpoint_every_steps: int = 0  # also write last.pt every N optimiser steps (0 = once per epoch only)
    progress: bool | None = None  # tqdm bars; None = only when stderr is a terminal (quiet under papermill)
    deterministic: bool = False  # deterministic kernels (torch.use_deterministic_algorithms); CPU runs are anyway
    accum_steps: int = 1  # micro-batches per process per optimiser step (gradient accumulation)
    sync_bn: bool = False  # SyncBatchNorm across processes (CUDA only); default: BN statistics per device
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
        required = [f.name for f in fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if d.get(k) is None]
        if missing:
            raise ValueError(f"{source}: TrainConfig field(s) {missing} not set; a configuration names everything it "
                             "trains with (start from a recipe: slnl.recipes.config_for, or slnl train --preset)")
        if d.get("model") is None:
            d["model"] = {}
        if not isinstance(d["model"], dict):
            raise ValueError(f"{source}: field 'model' must be a mapping of slnl.models.build overrides, "
                             f"got {type(d['model']).__name__}")
        return cls(**d)

    @staticmethod
    def load_mapping(path: str | os.PathLike) -> dict[str, Any]:
        """The mapping of fields a YAML file holds (all of them, as ``config.yaml``, or some, to put on a recipe)."""
        path = Path(path)
        try:
            d = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML: {e}") from e
        if not isinstance(d, dict):
            raise ValueError(f"{path}: expected a mapping of TrainConfig fields at top level, got {type(d).__name__}")
        return d

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainConfig":
        """A complete configuration from YAML (a run's ``config.yaml``)."""
        return cls.from_dict(cls.load_mapping(path), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = _plain(d["model"])
        return d

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------------------------------------------------------
    def validate(self) -> None:
        if not isinstance(self.preset, str) or not self.preset:
            raise ValueError(f"preset: expected a model preset name (slnl.models.PRESETS), got {self.preset!r}")
        if not isinstance(self.split, str) or not self.split:
            raise ValueError(f"split: expected a store split name (xsub, xview, …), got {self.split!r}")
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
        if self.compile_mode == "reduce-overhead" and self.accum_steps > 1:
            # a CUDA graph replayed per micro-batch overwrites the previous micro-batch's gradients (PyTorch issue
            # 169545): refused on every machine, so a CPU dry run refuses what a GPU run would get wrong
            raise ValueError("compile_mode='reduce-overhead' (CUDA graphs) cannot accumulate gradients: with "
                             f"accum_steps={self.accum_steps} each replay overwrites the previous micro-batch's "
                             "gradients; use accum_steps=1 or compile_mode='default'")
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
        """Validate and apply the engine's own rules (module docstring): unused loss parameters are 0, the evaluation
        batch defaults to the training batch, ``sync_every > 1`` means fused Adam. Data-dependent parts (store path,
        number of classes, …) are filled in by ``fit`` once the store is open. Idempotent."""
        self.validate()
        cfg = self.replace(model=dict(self.model))
        used = loss_params(cfg.loss, cfg.gamma, cfg.m)  # the saved config names what was trained
        cfg.gamma, cfg.m = used["gamma"], used["m"]
        if cfg.eval_batch_size is None:
            cfg.eval_batch_size = cfg.batch_size
        if cfg.sync_every > 1:  # it skips a non-finite step through fused Adam: the saved config says what ran
            cfg.fused_adam = True
        cfg.validate()
        return cfg

    def identity(self) -> dict[str, Any]:
        """The fields that define what is trained (``IDENTITY_FIELDS``) and, when it is not float32, the precision of
        the data it reads (float32 adds nothing, so an identity made before data could be float16 is unchanged)."""
        d = self.to_dict()
        ident = {k: d[k] for k in IDENTITY_FIELDS}
        if self.data_dtype != "float32":
            ident["data_dtype"] = self.data_dtype
        return ident

    @property
    def data_dtype(self) -> str:
        """The clips' precision: float16 only with ``data_mode="gpu-fp16"``, chosen explicitly."""
        return "float16" if self.data_mode == "gpu-fp16" else "float32"

    def default_out(self) -> Path:
        """``results/runs/<preset>-<split>-<loss>-seed<k>-<hash>``: the same configuration always maps to the same
        directory, so re-running a notebook resumes (or returns) its run instead of starting a second one.

        ``results/runs`` is relative to the working directory (or ``$SLNL_HOME``, ``slnl.utils.home``), never to the
        installed package; ``$SLNL_RUNS_DIR`` replaces it (a relative one is relative to the same place)."""
        digest = hashlib.sha1(json.dumps(self.identity(), sort_keys=True, default=str).encode()).hexdigest()[:8]
        root = resolve_path(os.environ.get("SLNL_RUNS_DIR") or Path("results") / "runs")
        return root / f"{self.preset}-{self.split}-{self.loss}-seed{self.seed}-{digest}"


def _plain(obj: Any) -> Any:
    """Tuples → lists, recursively (YAML/JSON friendly)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def as_config(config: TrainConfig) -> TrainConfig:
    """A copy of ``config`` (its model overrides too), refusing anything but a ``TrainConfig`` in one line."""
    if isinstance(config, TrainConfig):
        return config.replace(model=dict(config.model))
    raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}; make one with "
                    "slnl.recipes.config_for(recipe, split, ...) or TrainConfig.from_dict(mapping)")


def save_config(cfg: TrainConfig, path: str | os.PathLike, model_config: dict[str, Any] | None = None) -> None:
    d = cfg.to_dict()
    if model_config is not None:
        d["model_config"] = _plain(model_config)  # the full ModelConfig the run built (informational)
    atomic_write_text(path, yaml.safe_dump(d, sort_keys=False))


def config_diff(saved: TrainConfig, new: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """Identity fields on which two resolved configs disagree: {field: (saved, new)}."""
    a = {**saved.identity(), "data_dtype": saved.data_dtype}
    b = {**new.identity(), "data_dtype": new.data_dtype}
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}
