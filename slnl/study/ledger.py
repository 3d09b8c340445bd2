"""The study's ledger: what is finished, what equals a run done already, what another process is training; and the
result file, a typed record written by the code that defines it.

One object answers for a results directory and the store it was computed on: ``Ledger.finished(spec)`` (the spec's
result file, refused in one line unless it is this configuration's result on this data), ``Ledger.equivalent(spec)``
(a finished run of the same configuration under another table: the paper's tables share rows — Table 3 CS-T =
Table 4 CE, Table 4 SMFL = Table 5 none, Table 5 rFA = Table 6 Local, Table 6's adopted rows = Table 1) and
``Ledger.lock(spec)`` (an ``flock`` named by the spec's identity key, so that a second process asking for the same
configuration waits and then reuses it).
"""
from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Callable, Mapping, TypedDict

from slnl.data.errors import StoreChangedError
from slnl.study.planning import RunSpec
from slnl.utils import file_lock, portable, resolve_path


class ResultRecord(TypedDict, total=False):
    """``<results_dir>/<table>/<slug>__<split>__seed<k>.json``: one (table, row, split, seed)."""

    table: str
    row: str  # slug
    label: str  # the paper's label
    split: str  # CS, CV, default, …
    seed: int
    top1: float  # fraction, the final epoch's (the paper reports the last epoch), with the bn_stats statistics
    top5: float
    by_bn_stats: dict[str, dict[str, float]]  # {running, recomputed}: {top1, top5} of the same final model
    metrics_csv: str  # the run's per-epoch metrics, copied beside this file (committed with it)
    torch: str  # the torch version that trained it
    protocol: dict[str, Any]  # {path, commit}: the study's declared protocol (<results_dir>/protocol.md) when it ran
    settings: dict[str, Any]  # the row's settings on the split (slnl.experiments.Row.settings_for)
    paper: dict[str, float]  # the paper's numbers of the row
    dataset: str
    data_root: str  # as slnl.utils.portable writes it
    store_fingerprint: str  # the content of the store it was computed on
    scale: str
    recipe: str  # slnl.recipes
    epochs: int
    batch_size: int
    max_steps_per_epoch: int | None
    bn_stats: str
    preset: str  # the model preset
    note: str  # what the numbers are when the data is not the paper's
    fit_config: dict[str, Any]  # the TrainConfig that trained it (paths portable)
    trained_as: dict[str, Any]  # slnl.study.planning.trained_as
    run_dir: str
    wall_s: float
    device: str | None
    git_commit: str | None
    finished: str | None  # ISO time
    reused_from: str  # another table's result file of the same configuration


def new_record(spec: RunSpec, dataset: str, store: Path, store_fp: str, scale: str, note: str) -> ResultRecord:
    """The record of ``spec`` before it has numbers."""
    cfg = spec.config
    return ResultRecord(
        table=spec.table.name, row=spec.row.slug, label=spec.row.label, split=spec.split, seed=spec.seed,
        top1=None, top5=None, settings=spec.row.settings_for(spec.split), paper=dict(spec.row.paper),
        dataset=dataset, data_root=portable(store), store_fingerprint=store_fp, scale=scale, recipe=spec.recipe,
        epochs=cfg.epochs, batch_size=cfg.batch_size, max_steps_per_epoch=cfg.max_steps_per_epoch,
        bn_stats=cfg.bn_stats, preset=cfg.preset, note=note,
        # paths as run_dir and data_root record them (relative to home() inside it), so that a committed results
        # folder names no machine's directories
        fit_config={**cfg.to_dict(), "data": portable(cfg.data), "out": portable(cfg.out)},
        trained_as=spec.trained_as,
    )


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """``{field: (old, new)}`` for every field that differs; nested mappings by ``outer.inner``."""
    diff: dict[str, tuple[Any, Any]] = {}
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diff.update(_differences(a, b, f"{prefix}{k}."))
        elif a != b:
            diff[f"{prefix}{k}"] = (a, b)
    return diff


def recorded_trained_as(rec: Mapping[str, Any]) -> dict[str, Any] | None:
    """A result file's ``trained_as``. One written before the identity named the run's arithmetic (its precision as
    resolved, the device's kind: ``slnl.study.planning.trained_as``) takes them from the ``device`` block the same
    file records, which says what the run computed in."""
    ta = rec.get("trained_as")
    dev = rec.get("device")
    if not isinstance(ta, dict) or "device_type" in ta or not isinstance(dev, dict):
        return ta
    return {**ta, "precision": dev.get("precision"), "device_type": dev.get("type")}


def _what(rec: Mapping[str, Any]) -> dict[str, Any]:
    """What a result file says was trained: its ``trained_as`` and its epochs."""
    return {"trained_as": recorded_trained_as(rec), "epochs": rec.get("epochs")}


def check_result_store(rec: Mapping[str, Any], path: str | Path, store: str | Path, store_fp: str) -> None:
    """Refuse (``StoreChangedError``, one line) to reuse the result file ``path`` unless it was computed on the data
    ``store`` holds now: its ``store_fingerprint`` must be the store's (``slnl.data.store.fingerprint``). A store
    re-prepared in place keeps its path, so the path alone says nothing."""
    recorded = rec.get("store_fingerprint")
    if recorded == store_fp:
        return
    what = ("records no store fingerprint (written by an earlier slnl)" if not recorded else
            f"was computed on other data (store fingerprint {str(recorded)[:12]})")
    raise StoreChangedError(f"{path} {what}, not on the store {store} as it is now (fingerprint {store_fp[:12]}); "
                            "re-run it with overwrite (-p overwrite True in a notebook or slnl sweep) to train on "
                            "this store, or restore the store it used")


class Ledger:
    """Finished, equivalent and locked runs under ``results`` for the data ``store`` holds (fingerprint
    ``store_fp``)."""

    def __init__(self, results: str | Path, store: str | Path, store_fp: str) -> None:
        self.results = Path(results)
        self.store = Path(store)
        self.store_fp = store_fp

    def check(self, saved: Mapping[str, Any], path: Path, spec: RunSpec) -> None:
        """Refuse (one line) to take the result file ``path`` for ``spec`` unless it is that configuration's result —
        the same ``trained_as`` and epochs — computed on the data the store holds now."""
        diff = _differences(_what(saved), {"trained_as": spec.trained_as, "epochs": spec.config.epochs})
        if diff:
            shown = "; ".join(f"{k}: file has {a!r}, asked {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"{path} holds a result of a different configuration ({shown}). Pass overwrite (-p "
                             f"overwrite True) to replace it, or give another results_dir (one per dataset/scale).")
        check_result_store(saved, path, self.store, self.store_fp)

    def finished(self, spec: RunSpec) -> dict[str, Any] | None:
        """The spec's result record if its file exists (and overwrite is off), checked (``check``); else None."""
        if spec.config.overwrite or not spec.result_path.is_file():
            return None
        saved = json.loads(spec.result_path.read_text())
        self.check(saved, spec.result_path, spec)
        return saved

    def equivalent(self, spec: RunSpec) -> dict[str, Any] | None:
        """A finished result of the same configuration in another table (with ``_path``), on this store's data."""
        want = {"trained_as": spec.trained_as, "epochs": spec.config.epochs}
        for p in sorted(self.results.glob("table*/*__*__seed*.json")):
            if p == spec.result_path:
                continue
            try:
                rec = json.loads(p.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if _what(rec) == want and rec.get("run_dir") and (resolve_path(rec["run_dir"]) / "result.json").is_file():
                check_result_store(rec, p, self.store, self.store_fp)
                return {**rec, "_path": str(p)}
        return None

    def lock(self, spec: RunSpec, on_wait: Callable[[], Any] | None = None) -> AbstractContextManager:
        """Held while ``spec``'s configuration trains: ``<results>/runs/.locks/<key>.lock``."""
        return file_lock(self.results / "runs" / ".locks" / f"{spec.key}.lock", on_wait=on_wait)
