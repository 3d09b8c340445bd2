"""The store a study runs on, and the splits a table takes from it.

``resolve_store`` turns the notebooks' ``dataset`` / ``data_root`` into a checked store directory (one line naming
the directory and what was expected when it is not one); ``table_splits`` says which of the store's splits a table
runs on (the paper's columns that the store has, or the ones asked for).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from slnl import experiments as ex
from slnl.data import synthetic
from slnl.data.errors import StoreError
from slnl.data.store import DATASETS, read_meta, split_names
from slnl.utils import resolve_path


def resolve_store(dataset: str = "synthetic", data_root: str | Path | None = None) -> Path:
    """The prepared store directory for ``dataset``, checked: a complete store holding that dataset (``npz``: any
    store ``slnl prepare npz`` made, whatever name its file gave it — one rule for your own data).

    ``synthetic`` with no ``data_root`` is the built-in synthetic set (generated on first use, ``slnl.data.synthetic``).
    Every other dataset needs ``data_root``: the directory that ``slnl prepare`` wrote (``x.npy``, ``labels.npy``,
    ``meta.json``, ...). Every failure is one line naming the directory and what was expected.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)} (a store prepared "
                         "from your own .npz file, whatever its name, is dataset 'npz')")
    root = resolve_path(data_root)
    if root is None:
        if dataset != "synthetic":
            raise ValueError(f"dataset {dataset!r} needs data_root: the prepared store directory written by "
                             f"`slnl prepare {dataset} ...` (holding x.npy, labels.npy, meta.json, splits.npz)")
        return Path(synthetic.ensure_default())
    for name in ("meta.json", "splits.npz", "x.npy", "labels.npy"):
        if not (root / name).is_file():
            raise FileNotFoundError(f"data_root {root}: missing {name}; expected a prepared store (run `slnl prepare "
                                    f"{dataset} ...` first)")
    meta = read_meta(root)
    if meta.get("complete") is not True:
        raise StoreError(f"data_root {root}: preparation did not finish (meta.json has no \"complete\": true); "
                         "re-run `slnl prepare` with the same --out to resume")
    if dataset == "npz":  # your own data: a store prepared from any .npz file, whatever name it was given
        if meta.get("source_format") != "npz" and meta.get("dataset") != "npz":
            raise ValueError(f"data_root {root} was not prepared from an .npz file (meta.json \"source_format\" is "
                             f"{meta.get('source_format')!r}); pass dataset {meta.get('dataset')!r}")
    elif meta.get("dataset") != dataset:
        hint = "npz" if meta.get("source_format") == "npz" else meta.get("dataset")
        raise ValueError(f"data_root {root} holds a {meta.get('dataset')!r} store (meta.json \"dataset\"), not "
                         f"{dataset!r}; pass dataset {hint!r} or another data_root")
    return root


def default_splits(tbl: ex.Table, store: str | Path) -> list[str]:
    """The splits a table runs on by default, as labels: every fold of a store evaluated by k-fold cross-validation
    (``fold1`` …), else the store's splits that the paper's table reports (CS and CV for NTU-format data — NW-UCLA's
    only split is CV —, Kinetics' single split; a validation split such as ``xsub-val`` never). A table whose paper split the store does not have (Table 2 on
    synthetic NTU-format data) runs on the store's first split as a stand-in. (``make reproduce`` limits the cpu
    scale to CS for its time budget; see ``slnl.sweep.reproduce``.)"""
    have = [ex.SPLIT_LABELS.get(s, s) for s in split_names(store)]
    folds = [s for s in have if re.fullmatch(r"fold\d+", s)]
    if folds:  # k-fold cross-validation (SBU): every fold; the mean over folds is the dataset's number
        return folds
    wanted = ["default"] if tbl.family == "kinetics" else ["CS", "CV", "CSet"]
    return [s for s in have if s in wanted] or have[:1]


def table_splits(tbl: ex.Table, store: str | Path, split: str | Sequence[str] | None = None) -> list[str]:
    """The split labels a run of ``tbl`` on ``store`` uses: ``split`` (labels or store names, comma-separated or a
    list; each must be in the store) or, when None, ``default_splits``."""
    have = [ex.SPLIT_LABELS.get(s, s) for s in split_names(store)]
    splits = [ex.split_label(s) for s in ex.parse_list(split)] or default_splits(tbl, store)
    for s in splits:
        if s not in have:
            raise ValueError(f"split {s!r} is not in the store {store} (it has {', '.join(have)})")
    return splits
