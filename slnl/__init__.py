"""slnl: reference reproduction of SLnL-rFA with the soft-margin focal loss (Hu, Cui, Yu; AAAI 2019).

The package follows the paper section by section (see docs/paper-to-code.md and docs/design.md):
``slnl.models`` (§3.1–3.3), ``slnl.losses`` (§3.4), ``slnl.data`` (§4.1 datasets and sampling),
``slnl.engine`` (§4.1 protocol: one configuration into a run directory), ``slnl.experiments`` (Tables 1–6 as data),
``slnl.study`` (a table's rows trained at a scale into result files), ``slnl.sweep`` (the same as notebooks),
``slnl.report`` (tables, claims and figures from result files), ``slnl.bench`` (speed, memory, FLOPs of the step).

In your own code::

    import slnl
    net = slnl.build("small")                      # a model of a preset (slnl.models.PRESETS), untrained, NTU-shaped
    net = slnl.build_for("data/msr3d", "small")    # untrained, shaped for a prepared store (classes, C, V, M)
    model = slnl.load("results/sbu/models/MODEL.pt")  # a committed model, a run directory or its last.pt (= load_model)
    p = model.predict(clips)                       # = slnl.predict(model, clips): (C, T, V, M), a batch or a list, any T
    p.labels, p.top(3), p.probs                    # names, (name, probability) pairs, (N, K) array

They are imported on first use, so that ``import slnl`` (and ``slnl --version``) stays light.
"""
__version__ = "0.1.0"  # the one place it is written: pyproject.toml reads it, `slnl --version` prints it

# name -> the module that defines it (PEP 562: imported on first access)
_LAZY = {"build": "slnl.models", "build_for": "slnl.engine.predict", "load_model": "slnl.engine.predict",
         "load": "slnl.engine.predict",
         "predict": "slnl.engine.predict", "Predictions": "slnl.engine.predict"}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'slnl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
