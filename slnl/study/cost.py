"""The runs that reproducing the paper's tables takes: per table and split, at §4.1's recipes.

``slnl reproduce --estimate FILE`` turns them into hours with a measured training rate
(``slnl.bench.reproduce.time_to_reproduce``, which takes this plan as its input).
"""
from __future__ import annotations

from typing import Any, Iterable

from slnl import experiments, recipes


def paper_tables(seeds: int = 1, tables: Iterable[experiments.Table] | None = None) -> list[dict[str, Any]]:
    """One entry per (table, split) of the paper: NTU tables report CS and CV (two trainings per row), Kinetics
    tables top-1/top-5 of its one split; runs = runnable rows × ``seeds``, at the §4.1 recipe of the table's family
    (``slnl.recipes``). Published (non-runnable) rows cost nothing."""
    out = []
    for t in tables if tables is not None else experiments.TABLES.values():
        runs = sum(1 for r in t.rows if r.runnable) * seeds
        if runs == 0:
            continue
        rec = recipes.RECIPES[t.family]
        splits = ("xsub", "xview") if t.metric_by_split else ("default",)
        for split in splits:
            out.append({"table": t.name, "dataset": t.paper_dataset, "split": split, "runs": runs,
                        "epochs": rec.epochs, "batch_size": rec.batch_size})
    return out
