"""``run_table``: a table's planned runs, each skipped, reused or trained, and its result file written.

``slnl.experiments`` says what each row of the paper *is*, ``slnl.recipes`` how a scale trains it; ``plan`` makes
each (row, split, seed) a ``RunSpec`` once; this loop asks the ``Ledger`` whether a spec is finished or equal to a
run done already, trains it with ``slnl.engine.fit`` otherwise, and writes its result file. ``slnl.sweep`` runs the
same specs as notebooks, several at once; ``slnl.report`` reads the result files.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from slnl import engine
from slnl import experiments as ex
from slnl.study.ledger import Ledger, ResultRecord, new_record
from slnl.study.planning import Options, RunSpec, plan, store_of
from slnl.utils import atomic_write_json, atomic_write_text, file_commit, git_commit, portable, resolve_path

Log = Callable[[str], Any]


def run_table(table_name: str | int | ex.Table, rows: str | Sequence[str | ex.Row] | None = None,
              options: Options | None = None, *, reuse: bool = True, log: Log = print,
              **fields: Any) -> list[dict[str, Any]]:
    """Run a table's rows with ``slnl.engine.fit``: one result file per (row, split, seed).

    ``options`` (or its fields as keywords: ``dataset``, ``data_root``, ``split``, ``scale``, ``epochs``,
    ``batch_size``, ``seeds``, ``device``, ``results_dir``, ``max_steps_per_epoch``, ``overwrite``, ``progress``) is
    what the table notebooks' parameters say (``slnl.study.planning.Options``). A (row, split, seed) whose result file
    exists is skipped (unless ``overwrite``) after the ledger checks that it is this configuration's result on this
    data; with ``reuse``, a configuration finished in another table is not trained twice (the result is copied with
    ``reused_from`` naming the original), and one being trained by another process is waited for. Run directories
    live under ``<results_dir>/runs/``; an interrupted run resumes from its ``last.pt``.

    ``rows``: slugs/labels/``Row`` s (comma-separated or a list; None = every runnable row; Table 6's M1 / affinity
    selection is ``slnl.experiments.rows(table, m1=..., affinity=...)``). Returns the result records.
    """
    opts = options if options is not None else Options(**fields)
    if options is not None and fields:
        raise TypeError("run_table: give options or its fields as keywords, not both")
    t = ex.table(table_name)
    store, store_fp = store_of(opts)
    ledger = Ledger(resolve_path(opts.results_dir), store, store_fp)
    note = ex.stand_in_note(t, opts.dataset)
    if note:
        log(f"{t.name}: {note}")
    return [run_one(s, ledger, opts, note, reuse, log) for s in plan(t, rows, opts)]


def run_one(spec: RunSpec, ledger: Ledger, opts: Options, note: str, reuse: bool = True,
            log: Log = print) -> dict[str, Any]:
    """One spec: skip it, reuse an identical finished run, or train it; write its result file."""
    saved = ledger.finished(spec)
    if saved is not None:
        log(f"{spec.tag}: done already ({spec.result_path}), top-1 {100 * saved['top1']:.2f}%")
        return saved
    with ledger.lock(spec, on_wait=lambda: log(f"{spec.tag}: waiting for another process training the same "
                                               "configuration")):
        saved = ledger.finished(spec)  # written by another process while we waited
        if saved is not None:
            log(f"{spec.tag}: done already ({spec.result_path}), top-1 {100 * saved['top1']:.2f}%")
            return saved
        rec = new_record(spec, opts.dataset, ledger.store, ledger.store_fp, opts.scale, note)
        twin = ledger.equivalent(spec) if reuse and not spec.config.overwrite else None
        if twin is not None:
            log(f"{spec.tag}: same configuration as {twin['_path']}; reusing its run")
            rec.update(top1=twin["top1"], top5=twin["top5"], by_bn_stats=twin.get("by_bn_stats"),
                       metrics_csv=twin.get("metrics_csv"), torch=twin.get("torch"), protocol=twin.get("protocol"),
                       run_dir=twin["run_dir"], reused_from=portable(twin["_path"]),
                       wall_s=0.0, device=twin.get("device"), git_commit=twin.get("git_commit"),
                       finished=twin.get("finished"))
        else:
            _train(spec, rec, opts, log)
        atomic_write_json(spec.result_path, rec)
    return rec


def _train(spec: RunSpec, rec: ResultRecord, opts: Options, log: Log) -> None:
    cfg = spec.config
    log(f"{spec.tag}: training ({cfg.epochs} epochs, recipe {spec.recipe}, {opts.dataset}) -> {cfg.out}")
    t0 = time.perf_counter()
    res = engine.fit(cfg.replace(resume=not cfg.overwrite))
    wall = time.perf_counter() - t0
    rd = Path(res.run_dir)
    result_json = json.loads((rd / "result.json").read_text())
    # the run's per-epoch metrics beside the result file, so that every figure regenerates from committed files
    metrics = spec.result_path.with_suffix(".metrics.csv")
    metrics.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(metrics, (rd / "metrics.csv").read_text())
    protocol = Path(spec.result_path).parent.parent / "protocol.md"
    rec.update(top1=float(res.top1), top5=float(res.top5), by_bn_stats=result_json.get("by_bn_stats"),
               run_dir=portable(rd), metrics_csv=portable(metrics), wall_s=round(wall, 2),
               device=result_json.get("device"), torch=result_json.get("software", {}).get("torch"),
               protocol={"path": portable(protocol), "commit": file_commit(protocol)} if protocol.is_file() else None,
               # the commit the run trained at (its result.json), not the one checked out when it finished
               git_commit=result_json.get("git_commit") or git_commit(), finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    log(f"{spec.tag}: top-1 {100 * rec['top1']:.2f}%  top-5 {100 * rec['top5']:.2f}%  ({wall:.0f} s)")
