"""``slnl`` command line: ``prepare | train | eval | predict | export | bench | sweep | reproduce | select``.

Dispatch only: each sub-command's parser and logic live beside the code they drive, so that the CLI, the Python API
and the notebooks share one implementation.
"""
from __future__ import annotations

import importlib
import sys

from slnl import __version__

COMMANDS = {
    "prepare": ("slnl.data.prepare", "Prepare a dataset into a store (slnl prepare -h lists the formats)"),
    "train": ("slnl.engine.cli", "Train one configuration into a run directory"),
    "eval": ("slnl.engine.cli", "Evaluate a run (its directory or checkpoint file): top-1, top-5, per class"),
    "predict": ("slnl.engine.cli", "Class probabilities of clips (a store's, or an .npy/.npz file) under a run"),
    "export": ("slnl.engine.cli", "Write a run's final model alone (for eval, predict, sharing)"),
    "bench": ("slnl.bench.cli", "Throughput, memory, FLOPs and MFU of the training step; device check"),
    "sweep": ("slnl.sweep", "Run a paper table's rows as papermill executions"),
    "reproduce": ("slnl.sweep", "Run every table notebook and the report (make reproduce)"),
    "select": ("slnl.study.selection", "Choose a dataset's recipe on validation data from its training split"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: slnl <command> [options] | slnl --version\n\ncommands:")
        for name, (_, help_) in COMMANDS.items():
            print(f"  {name:<10} {help_}")
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd in ("-V", "--version"):
        print(f"slnl {__version__}")
        return 0
    if cmd not in COMMANDS:
        print(f"slnl: unknown command {cmd!r}; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[cmd][0])
    return int(module.main([cmd, *rest]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
