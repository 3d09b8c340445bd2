"""The declared plan of each committed study: which rows, splits and seeds, in the order they run (the studies as
data, as ``slnl.experiments`` is the paper as data).

``results/<dataset>/protocol.md`` says the same in prose, with the reasons, and was committed before the study's
first run; this is the form ``slnl reproduce --dataset <dataset> --scale study`` (``make reproduce DATASET=<dataset>
SCALE=study``) runs, each step's rows as the table notebooks do, finished ones skipped. A study is committed as its
runs finish, so the committed result files are a subset of its plan (``tests/test_study.py`` checks it).
"""
from __future__ import annotations

from dataclasses import dataclass

from slnl.data import msr3d, sbu

SEEDS = (0, 1, 2, 3, 4)
SBU_FOLDS = tuple(s for s in sbu.SPLITS if not s.endswith("-val"))


@dataclass(frozen=True)
class Step:
    """One table's ``rows`` (None: every runnable row) on ``splits`` (labels or store splits), at ``seeds``."""

    table: str
    rows: tuple[str, ...] | None
    splits: tuple[str, ...]
    seeds: tuple[int, ...] = SEEDS


STUDIES: dict[str, tuple[Step, ...]] = {
    # the final model on xsub and on the ten subject splits its anchor averages over, then every runnable row
    "msr3d": (Step("table1", None, ("CS",)), Step("table1", None, msr3d.LIE_SPLITS, (0,)),
              *(Step(t, None, ("CS",)) for t in ("table5", "table6", "table4", "table3"))),
    # the paper's cross-view column: the rows where its CV choices differ from CS's (budget: not every row)
    "nwucla": (Step("table1", None, ("CV",)), Step("table5", ("none", "rfa", "afa"), ("CV",)),
               Step("table6", ("local", "slnl-3", "slnl-5"), ("CV",)),
               Step("table4", ("ce", "smfl-2-0.4", "smfl-2-0.6"), ("CV",))),
    # two persons: the final model and Local against SLnL on the five folds
    "sbu": (Step("table1", None, SBU_FOLDS, (0, 1)), Step("table6", ("local", "slnl-5"), SBU_FOLDS, (0, 1))),
}


def planned(dataset: str) -> set[tuple[str, str | None, str, int]]:
    """``(table, row or None for every row, split, seed)`` of every run ``dataset``'s study declares."""
    return {(s.table, r, sp, k) for s in STUDIES.get(dataset, ()) for r in (s.rows or (None,))
            for sp in s.splits for k in s.seeds}
