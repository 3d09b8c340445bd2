"""The training engine: ``fit(config) -> Result``, ``evaluate(run)``, ``resume(run_dir)``, ``TrainConfig``.

``fit`` trains one configuration into a run directory (``config.yaml``, ``metrics.jsonl``/``.csv``, ``last.pt`` — the
one checkpoint, the final model —, ``result.json``; its typed definition is ``slnl.engine.rundir.RunResult``).
Runs resume bit for bit from ``last.pt`` (``resume=True``), stop cleanly on SIGTERM/SIGINT with a checkpoint, refuse
to overwrite finished work, record the content fingerprint of the store they train on (and refuse to resume or be
evaluated on a store whose content changed), load checkpoints without running code from them, and run on one CPU,
one GPU (fp32/bf16/fp16, ``torch.compile``, GPU-resident data) or many processes under ``torchrun`` (DDP;
``batch_size`` is the global batch — see ``slnl.engine.config``). It takes an explicit ``TrainConfig`` and imports
nothing above it: the protocols are ``slnl.recipes``, the paper's settings ``slnl.experiments``.
"""
from slnl.engine.config import TrainConfig
from slnl.engine.fit import (
    RESULT_SCHEMA_VERSION,
    NonFiniteLossError,
    Result,
    TrainingInterrupted,
    evaluate,
    fit,
    resume,
)

__all__ = [
    "fit", "evaluate", "resume", "TrainConfig", "Result", "NonFiniteLossError", "TrainingInterrupted",
    "RESULT_SCHEMA_VERSION",
]
