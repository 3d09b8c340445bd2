"""slnl: reference reproduction of SLnL-rFA with the soft-margin focal loss (Hu, Cui, Yu; AAAI 2019).

The package follows the paper section by section (see README's "paper → code" map and docs/design.md):
``slnl.models`` (§3.1–3.3), ``slnl.losses`` (§3.4), ``slnl.data`` (§4.1 datasets and sampling),
``slnl.engine`` (§4.1 protocol: one configuration into a run directory), ``slnl.experiments`` (Tables 1–6 as data),
``slnl.study`` (a table's rows trained at a scale into result files), ``slnl.sweep`` (the same as notebooks),
``slnl.report`` (tables, claims and figures from result files), ``slnl.bench`` (speed, memory, FLOPs of the step).
"""
__version__ = "0.1.0"  # the one place it is written: pyproject.toml reads it, `slnl --version` prints it
