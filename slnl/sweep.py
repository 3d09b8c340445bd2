"""``slnl sweep TABLE`` and ``slnl reproduce``: the table notebooks executed with papermill, one row per process.

``slnl sweep table6 --gpus 0,1 -p scale paper -p seeds 0,1,2``
    One papermill execution of ``notebooks/table6.ipynb`` per row (``-p rows <slug>``). ``--jobs N`` rows run at once
    per device: N processes on the CPU (each single-threaded, ``OMP_NUM_THREADS=1``, when N > 1), or N per GPU with
    ``--gpus`` (``CUDA_VISIBLE_DEVICES`` per process). A row whose result files all exist is skipped, so a sweep
    that was stopped continues where it stopped when run again (a row stopped midway resumes from its ``last.pt``).
    A failing row is recorded in ``<results_dir>/<table>/failures.json`` and the others go on; every executed
    notebook is kept as ``<results_dir>/<table>/notebooks/<row>.ipynb`` (with a ``.log``).

``slnl reproduce --dataset synthetic --scale cpu --seeds 0 --jobs 2``
    Every runnable row of Tables 1–6 the same way (``--jobs`` at once), then each table notebook once (its rows are
    finished by then: it shows the table), Fig. 4 and the report; the executed table notebooks are saved under
    ``<results_dir>/notebooks/``. At the cpu scale only CS is run by default (the 30-minute budget of ``make
    reproduce`` on 2 cores).

Rows that several tables share train once, also with ``--jobs``: rows whose configurations all come earlier in the
queue are queued last (they find the earlier row's finished run and reuse it), and a configuration being trained is
locked by ``slnl.study.run_table``, so a second process asking for it waits and then reuses it.

Before anything runs, everything that can be checked is, and a problem is one line on stderr with a non-zero exit,
nothing written: the table names, rows and parameters, the notebooks, the Jupyter kernel, the dataset's store and its
splits.

Paths. The notebooks are the repository's: ``./notebooks`` of the working directory, or ``--notebooks DIR``.
Everything else follows ``slnl.utils.resolve_path`` (relative to the working directory, or ``$SLNL_HOME`` when set):
the notebooks get ``results_dir`` and ``data_root`` as absolute paths and run with that directory as their working
directory (papermill ``--cwd``), so a path means the same in the notebook as on the command line.

The notebooks run in the Jupyter kernel ``python3`` (``--kernel`` picks another; ``slnl.notebook_run``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence


from slnl import experiments as ex
from slnl import recipes, study
from slnl.bench.reports import rows_of
from slnl.bench.reproduce import render_time_to_reproduce, time_to_reproduce
from slnl.data.store import DATASETS
from slnl.studies import STUDIES
from slnl.study.cost import paper_tables
from slnl.notebook_params import notebook_parameters
from slnl.notebook_run import DEFAULT_KERNEL, kernel_name, resolve_value, run_notebook
from slnl.utils import atomic_write_json, default_results_dir, home, resolve_path

# Table order of `slnl reproduce`: a table comes after the one whose rows it shares (Table 4 CE = Table 3 CS-T,
# Table 5 none = Table 4 SMFL, Table 6 Local = Table 5 rFA, Table 1/2's model = Table 6's adopted rows).
ORDER = ("table3", "table4", "table5", "table6", "table1", "table2")
Log = Callable[[str], Any]


class UsageError(ValueError):
    """Bad input to ``slnl sweep`` / ``slnl reproduce``, found before anything ran (one line)."""


# ----------------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------------
def notebooks_dir(names: Sequence[str], given: str | os.PathLike | None = None) -> Path:
    """The folder holding the repository's notebooks ``names``: ``given`` (``--notebooks``) or ``./notebooks`` of the
    working directory. ``UsageError`` (one line) when one is missing."""
    where = Path(given).expanduser().absolute() if given else Path.cwd() / "notebooks"
    missing = [n for n in names if not (where / n).is_file()]
    if missing:
        hint = "" if given else " (run from the slnl repository, or pass --notebooks DIR)"
        raise UsageError(f"no {', '.join(missing)} in {where}{hint}")
    return where


def _record_failure(path: Path, key: str, info: dict[str, Any] | None) -> None:
    fails = json.loads(path.read_text()) if path.is_file() else {}
    if info is None:
        fails.pop(key, None)
    else:
        fails[key] = info
    if fails or path.is_file():
        atomic_write_json(path, fails)


# ----------------------------------------------------------------------------------------------------------------------
# Tasks: what runs, and where
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class Task:
    """One papermill execution: ``src`` into ``dst`` with ``params``. A row task (``key`` = its row slug) records
    its failure in ``failures``."""

    name: str
    src: Path
    dst: Path
    params: dict[str, Any]
    key: str | None = None
    failures: Path | None = None
    table: str = ""


@dataclass
class Slot:
    """Where a task runs: the environment it adds and the device it asks for (``device="auto"`` only)."""

    label: str
    env: dict[str, str] = field(default_factory=dict)
    device: str | None = None


def slots(gpus: Sequence[str] = (), jobs: int = 1) -> list[Slot]:
    """``jobs`` slots on the CPU (single-threaded when there are several), or ``jobs`` per GPU of ``gpus``."""
    if jobs < 1:
        raise UsageError(f"--jobs: expected a number of processes >= 1, got {jobs}")
    if gpus:
        return [Slot(f"GPU {g}", {"CUDA_VISIBLE_DEVICES": str(g)}, "cuda") for g in gpus for _ in range(jobs)]
    # One thread per process: N processes each spinning several OpenMP threads on N cores run many times slower.
    one = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} if jobs > 1 else {}
    return [Slot("CPU", dict(one)) for _ in range(jobs)]


def _table_params(params: dict[str, Any], notebooks: Sequence[Path]) -> dict[str, Any]:
    """Parameters for the table ``notebooks``, checked by name against what every one of them declares (its
    parameters cell: ``slnl.notebook_params.notebook_parameters``); paths made absolute (``resolve_path``)."""
    try:
        declared = [notebook_parameters(nb) for nb in notebooks]
    except ValueError as e:
        raise UsageError(str(e)) from None
    known = [k for k in declared[0] if all(k in d for d in declared[1:])]
    unknown = sorted(set(params) - set(known))
    if unknown:
        which = notebooks[0].name if len(notebooks) == 1 else "the table notebooks"
        raise UsageError(f"unknown notebook parameter(s) {unknown}; {which} take{'s' if len(notebooks) == 1 else ''} "
                         f"{known}")
    params = dict(params)
    params["results_dir"] = str(resolve_path(params.get("results_dir") or default_results_dir(params.get("dataset"))))
    root = resolve_path(params.get("data_root"))
    params["data_root"] = str(root) if root is not None else None
    if params.get("scale", "cpu") not in recipes.SCALES:
        raise UsageError(f"unknown scale {params['scale']!r}; expected one of {', '.join(recipes.SCALES)}")
    try:
        ex.parse_list(params.get("seeds", 0), int)
    except ValueError:
        raise UsageError(f"seeds: expected whole numbers such as 0 or 0,1,2, got {params.get('seeds')!r}") from None
    return params


def row_tasks(selection: Sequence[tuple[ex.Table, Sequence[ex.Row]]], params: dict[str, Any], nb_dir: Path,
              log: Log = print) -> list[Task]:
    """A task per selected row that has a result file missing, in an order that trains a configuration shared by
    several rows once: rows whose configurations all come earlier are moved to the end (they reuse). The specs are
    ``slnl.study.planning``'s, the notebooks' own plan, and "finished" is the study's ``Ledger``'s answer."""
    fields = {f.name for f in dataclasses.fields(study.Options)}
    options = study.Options(**{k: v for k, v in params.items() if k in fields})
    store, store_fp = study.store_of(options)
    ledger = study.Ledger(Path(params["results_dir"]), store, store_fp)
    seen: set[str] = set()
    first: list[Task] = []
    later: list[Task] = []
    for t, rows in selection:
        for r in rows:
            specs = study.plan(t, [r], options)
            # finished: every result file exists and is this row's result on the data the store holds now (else
            # the ledger refuses here, before anything runs)
            if not options.overwrite and all(s.result_path.is_file() for s in specs):
                for s in specs:
                    ledger.finished(s)
                log(f"{t.name} {r.slug}: finished already (result files exist)")
                continue
            keys = {s.key for s in specs}
            results = Path(params["results_dir"])
            nb = results / t.name / "notebooks" / f"{r.slug}.ipynb"
            task = Task(f"{t.name} {r.slug}", nb_dir / f"{t.name}.ipynb", nb, dict(params, rows=r.slug), key=r.slug,
                        failures=results / t.name / "failures.json", table=t.name)
            (later if keys <= seen else first).append(task)
            seen |= keys
    return first + later


def run_tasks(tasks: Sequence[Task], where: Sequence[Slot], kernel: str, log: Log = print) -> list[Task]:
    """Run ``tasks`` in order, one per free slot at a time; returns the tasks that failed."""
    free: queue.Queue[Slot] = queue.Queue()
    for s in where:
        free.put(s)
    lock = threading.Lock()
    failed: list[Task] = []

    def work(task: Task, slot: Slot) -> None:
        env = {**os.environ, **slot.env}
        p = dict(task.params)
        if slot.device is not None and p.get("device", "auto") == "auto":
            p["device"] = slot.device
        log(f"{task.name}: running on {slot.label} -> {task.dst}")
        t0 = time.time()
        try:
            code, tail = run_notebook(task.src, task.dst, p, kernel, env)
        except Exception as e:  # noqa: BLE001 - a task that cannot even start is recorded like one that failed
            code, tail = -1, f"{type(e).__name__}: {e}"
        with lock:
            if task.failures is not None:
                _record_failure(task.failures, task.key or task.name, None if code == 0 else {
                    "exit_code": code, "notebook": str(task.dst), "log": str(task.dst.with_suffix(".log")),
                    "device": slot.label, "params": p, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "output_tail": tail})
            if code == 0:
                log(f"{task.name}: done in {time.time() - t0:.0f} s")
            else:
                failed.append(task)
                log(f"{task.name}: FAILED (exit {code}); see {task.dst.with_suffix('.log')}")
        free.put(slot)

    threads: list[threading.Thread] = []
    for task in tasks:
        slot = free.get()  # blocks until a running task gives its slot back
        th = threading.Thread(target=work, args=(task, slot), daemon=True)
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    return failed


# ----------------------------------------------------------------------------------------------------------------------
# slnl sweep
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """What a sweep or a reproduction will run, checked (``plan_sweep``, ``plan_reproduce``)."""

    rows: list[Task]
    tables: list[Task]
    after: list[Task]
    where: list[Slot]
    kernel: str
    results: Path
    names: list[str]


def plan_sweep(table_name: str, params: dict[str, Any], rows: str | None = None, gpus: Sequence[str] = (),
               jobs: int = 1, kernel: str | None = None, notebooks: str | os.PathLike | None = None,
               log: Log = print) -> Plan:
    """Check everything ``sweep`` needs and list its tasks; writes nothing (bar the built-in synthetic store)."""
    tbl = ex.table(table_name)
    nb_dir = notebooks_dir([f"{tbl.name}.ipynb"], notebooks)
    params = _table_params(params, [nb_dir / f"{tbl.name}.ipynb"])
    selected = ex.rows(tbl, rows, m1=params.pop("M1", None), affinity=params.pop("affinity", None))
    if not selected:
        raise UsageError(f"{tbl.name}: no runnable row selected by --rows {rows!r}")
    where = slots(gpus, jobs)
    kern = kernel_name(kernel)
    tasks = row_tasks([(tbl, selected)], params, nb_dir, log)
    return Plan(tasks, [], [], where, kern, Path(params["results_dir"]), [tbl.name])


def sweep(table_name: str, params: dict[str, Any], rows: str | None = None, gpus: Sequence[str] = (), jobs: int = 1,
          kernel: str | None = None, notebooks: str | os.PathLike | None = None, log: Log = print) -> int:
    """Run a table's rows as separate papermill executions (see the module docstring). Returns 0 when every row
    finished, 1 otherwise."""
    return run_sweep(plan_sweep(table_name, params, rows, gpus, jobs, kernel, notebooks, log), log)


def run_sweep(plan: Plan, log: Log = print) -> int:
    name = plan.names[0]
    if not plan.rows:
        log(f"{name}: nothing to run")
        return 0
    failed = run_tasks(plan.rows, plan.where, plan.kernel, log)
    if failed:
        log(f"{name}: {len(failed)} row(s) failed: {', '.join(t.key or t.name for t in failed)} (details in "
            f"{plan.results / name / 'failures.json'})")
        return 1
    log(f"{name}: all {len(plan.rows)} row(s) finished; results in {plan.results / name}")
    return 0


# ----------------------------------------------------------------------------------------------------------------------
# slnl reproduce
# ----------------------------------------------------------------------------------------------------------------------
def plan_reproduce(dataset: str = "synthetic", data_root: str | None = None, scale: str = "cpu",
                   seeds: str | None = None,
                   device: str = "auto", kernel: str | None = None, results_dir: str | None = None,
                   split: str | None = None, epochs: int | None = None, max_steps_per_epoch: int | None = None,
                   jobs: int = 2, gpus: Sequence[str] = (), tables: Sequence[str] | None = None,
                   notebooks: str | os.PathLike | None = None, log: Log = print) -> Plan:
    """Check everything ``reproduce`` needs — tables, notebooks, kernel, the dataset's store and every table's
    splits — once, before any notebook starts, and list the tasks. Writes nothing (bar the built-in synthetic
    store). At the ``study`` scale, without ``seeds``, ``split`` or ``tables``, a dataset with a declared study
    (``slnl.studies.STUDIES``) runs that plan: its steps' rows, splits and seeds in their order. Otherwise
    ``seeds`` defaults to 0."""
    steps = STUDIES.get(dataset) if scale == "study" and seeds is None and split is None and not tables else None
    if steps:
        tables = list(dict.fromkeys(s.table for s in steps))
    seeds = "0" if seeds is None else seeds
    names = [ex.table(t).name for t in tables] if tables else list(ORDER)
    names = [t for t in ORDER if t in names]
    if split is None and scale == "cpu":
        split = "CS"  # the 30-minute budget of `make reproduce` on 2 cores: one split at the cpu scale
    nb_dir = notebooks_dir([f"{t}.ipynb" for t in names] + ["fig4.ipynb", "report.ipynb"], notebooks)
    params = _table_params({"dataset": dataset, "data_root": data_root, "split": split, "scale": scale,
                            "epochs": epochs, "seeds": seeds, "device": device, "results_dir": results_dir,
                            "max_steps_per_epoch": max_steps_per_epoch}, [nb_dir / f"{t}.ipynb" for t in names])
    where = slots(gpus, jobs)
    kern = kernel_name(kernel)
    store = study.resolve_store(dataset, params["data_root"])
    if params["data_root"] is None and dataset == "synthetic":
        log(f"synthetic store: {store}")
    results = Path(params["results_dir"])
    out = results / "notebooks"
    if steps:
        rows, shown = [], []
        for st in steps:  # the declared order; a table's notebook shows its first step (the others are finished)
            p = dict(params, split=",".join(st.splits), seeds=",".join(map(str, st.seeds)))
            tasks = row_tasks([(ex.table(st.table), ex.rows(st.table, st.rows and list(st.rows)))], p, nb_dir, log)
            if st.table in [t.table for t in shown]:  # the table's second step: its executed notebooks apart
                for t in tasks:
                    t.dst = t.dst.with_name(f"{t.dst.stem}__{st.splits[0]}-{st.splits[-1]}.ipynb")
            rows += tasks
            if st.table not in [t.table for t in shown]:
                p["rows"] = ",".join(st.rows) if st.rows else None
                shown.append(Task(st.table, nb_dir / f"{st.table}.ipynb", out / f"{st.table}.ipynb", p,
                                  table=st.table))
    else:
        rows = row_tasks([(ex.table(t), ex.rows(t)) for t in names], params, nb_dir, log)
        shown = [Task(t, nb_dir / f"{t}.ipynb", out / f"{t}.ipynb", dict(params), table=t) for t in names]
    after = [Task(n, nb_dir / f"{n}.ipynb", out / f"{n}.ipynb", {"results_dir": str(results)})
             for n in ("fig4", "report")]
    return Plan(rows, shown, after, where, kern, results, names)


def reproduce(dataset: str = "synthetic", data_root: str | None = None, scale: str = "cpu", seeds: str | None = None,
              device: str = "auto", kernel: str | None = None, results_dir: str | None = None,
              split: str | None = None, epochs: int | None = None, max_steps_per_epoch: int | None = None,
              jobs: int = 2, gpus: Sequence[str] = (), tables: Sequence[str] | None = None,
              notebooks: str | os.PathLike | None = None, log: Log = print) -> int:
    """Every table's rows, the table notebooks, Fig. 4 and the report (module docstring). Returns 0 when all
    succeeded."""
    plan = plan_reproduce(dataset, data_root, scale, seeds, device, kernel, results_dir, split, epochs,
                          max_steps_per_epoch, jobs, gpus, tables, notebooks, log)
    return run_reproduce(plan, log)


def run_reproduce(plan: Plan, log: Log = print) -> int:
    t_start = time.time()
    failed_rows = run_tasks(plan.rows, plan.where, plan.kernel, log)
    broken = {t.table for t in failed_rows}
    for name in sorted(broken):
        log(f"{name}: not shown, row(s) failed: {', '.join(t.key for t in failed_rows if t.table == name)} "
            f"(details in {plan.results / name / 'failures.json'})")
    # Each table notebook once: its rows are finished, so it only collects them and shows the table.
    failed = run_tasks([t for t in plan.tables if t.table not in broken], plan.where, plan.kernel, log)
    # Fig. 4, then the report (it reads every table's results); one at a time, and they take no `device` parameter.
    failed += run_tasks(plan.after, [Slot(plan.where[0].label, plan.where[0].env)], plan.kernel, log)
    results = plan.results
    p = plan.tables[0].params if plan.tables else {}
    log(f"\nreproduce: {time.time() - t_start:.0f} s ({p.get('dataset')}, scale {p.get('scale')}, split "
        f"{p.get('split') or 'all'}, seeds {p.get('seeds')})")
    log(f"  tables:    {results / 'tables'}  (tableN.md: ours beside the paper's; tableN_claims.csv)")
    log(f"  figures:   {results / 'figures'}")
    log(f"  notebooks: {results / 'notebooks'}  (executed, with outputs; one per row under tableN/notebooks/)")
    log(f"  results:   {results}/tableN/*.json (one per row, split, seed); runs: {results / 'runs'}")
    names = sorted(broken) + [t.name for t in failed]
    if names:
        log(f"  FAILED: {', '.join(names)}")
        return 1
    return 0


def estimate(bench_json: str | os.PathLike, seeds: int = 1) -> int:
    """``slnl reproduce --estimate FILE``: hours per paper table and split at the measured rate (the runs from
    ``slnl.study.cost``, the arithmetic ``slnl.bench.reproduce``'s)."""
    doc = json.loads(resolve_path(bench_json).read_text())
    print(render_time_to_reproduce(time_to_reproduce(rows_of(doc), paper_tables(seeds))), end="")
    return 0


# ----------------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------------
def _params(pairs: list[list[str]] | None) -> dict[str, Any]:
    return {k: resolve_value(v) for k, v in (pairs or [])}


def _gpus(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("sweep", "reproduce"):
        print("usage: slnl sweep TABLE [...] | slnl reproduce [...]", file=sys.stderr)
        return 2
    cmd, rest = argv[0], argv[1:]
    ap = argparse.ArgumentParser(prog=f"slnl {cmd}")
    if cmd == "sweep":
        ap.description = ("Run a paper table's rows as papermill executions, --jobs at once per device (the CPU, or "
                          "each GPU of --gpus); finished rows are skipped.")
        ap.add_argument("table", help="table1 … table6 (or 1 … 6)")
        ap.add_argument("--rows", default=None, help="comma-separated row slugs (default: every runnable row)")
        ap.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                        help="notebook parameter, papermill style (e.g. -p scale paper -p seeds 0,1,2)")
        jobs_default = 1
    else:
        ap.description = ("Run every paper table's rows, then each table notebook, Fig. 4 and the report, with "
                          "papermill; print where the tables and figures are.")
        ap.add_argument("--dataset", default="synthetic", choices=DATASETS)
        ap.add_argument("--data-root", default="", help="prepared store directory ('' = built-in synthetic set)")
        ap.add_argument("--scale", default="cpu", choices=recipes.SCALES,
                        help="which recipe for the dataset (slnl.recipes; paper: the dataset's §4.1 recipe)")
        ap.add_argument("--estimate", metavar="BENCH_JSON", default=None,
                        help="print the hours of training the paper's tables take at the rate measured in this "
                             "`slnl bench` file (runs × epochs × clips ÷ rate at §4.1's recipes), and exit")
        ap.add_argument("--seeds", default=None, help="e.g. 0 or 0,1,2 (default 0; at --scale study, a dataset's "
                        "declared study: its own rows, splits and seeds)")
        ap.add_argument("--device", default="auto")
        ap.add_argument("--results-dir", default=None,
                        help="where result files, tables and figures go (default: results/<dataset>)")
        ap.add_argument("--split", default=None, help="default: CS at the cpu scale, every reported split otherwise")
        ap.add_argument("--epochs", type=int, default=None, help="default: the scale's")
        ap.add_argument("--max-steps-per-epoch", type=int, default=None)
        ap.add_argument("--tables", default=None, help="subset, e.g. table3,table6 (default: all)")
        jobs_default = 2
    ap.add_argument("--jobs", type=int, default=jobs_default, help="rows run at once per device: processes on the "
                    "CPU (single-threaded when more than one), or per GPU with --gpus (default: %(default)s)")
    ap.add_argument("--gpus", default="", help="comma-separated GPU ids, e.g. 0,1 (default: the CPU)")
    ap.add_argument("--kernel", default=DEFAULT_KERNEL, help="Jupyter kernel (default: %(default)s, this interpreter)")
    ap.add_argument("--notebooks", default=None, help="folder of the slnl notebooks (default: ./notebooks)")
    a = ap.parse_args(rest)
    if cmd == "reproduce" and a.estimate:
        return estimate(a.estimate, len(ex.parse_list(a.seeds, int)) or 1)
    try:
        if cmd == "sweep":
            plan = plan_sweep(a.table, _params(a.parameter), rows=a.rows, gpus=_gpus(a.gpus), jobs=a.jobs,
                              kernel=a.kernel, notebooks=a.notebooks)
        else:
            plan = plan_reproduce(dataset=a.dataset, data_root=a.data_root or None, scale=a.scale, seeds=a.seeds,
                                  device=a.device, kernel=a.kernel, results_dir=a.results_dir, split=a.split,
                                  epochs=a.epochs, max_steps_per_epoch=a.max_steps_per_epoch, jobs=a.jobs,
                                  gpus=_gpus(a.gpus), tables=ex.parse_list(a.tables) if a.tables else None,
                                  notebooks=a.notebooks)
    except (KeyError, ValueError, OSError) as e:  # bad input, found before anything ran: one line, no traceback
        print(f"slnl {cmd}: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 2
    return run_sweep(plan) if cmd == "sweep" else run_reproduce(plan)


if __name__ == "__main__":
    raise SystemExit(main())
