"""``slnl sweep TABLE`` and ``slnl reproduce``: the table notebooks executed with papermill.

``slnl sweep table6 --gpus 0,1 -p scale paper -p seeds 0,1,2``
    One papermill execution of ``notebooks/table6.ipynb`` per row (``-p rows <slug>``), one per GPU at a time
    (``CUDA_VISIBLE_DEVICES`` per process; without ``--gpus``, one after the other on the CPU). A row whose result
    files all exist is skipped; a failing row is recorded in ``<results_dir>/<table>/failures.json`` and the others
    go on; every executed notebook is kept as ``<results_dir>/<table>/notebooks/<row>.ipynb`` (with a ``.log``).

``slnl reproduce --dataset synthetic --scale cpu --seeds 0``
    Tables 1–6, Fig. 4 and the report, each notebook executed once, saved under ``<results_dir>/notebooks/``; prints
    where the tables and figures are. At the cpu scale only CS is run by default (the 30-minute budget of ``make
    reproduce`` on 2 cores) and the table notebooks run in two lanes in parallel (``--jobs``).

The notebooks run in the Jupyter kernel ``python3`` (``--kernel`` picks another), which runs the interpreter that runs
papermill — the one running ``slnl`` — so whatever environment slnl is installed in executes them.

Notebook parameters go to papermill as YAML (``-y``), so ``None``/numbers/booleans arrive typed, as papermill's own
``-p`` would give them.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import yaml

from slnl import experiments as ex
from slnl.utils import REPO_ROOT, atomic_write_json

NOTEBOOKS = REPO_ROOT / "notebooks"
TABLE_PARAMS = ("rows", "dataset", "data_root", "split", "scale", "epochs", "batch_size", "seeds", "device",
                "results_dir", "max_steps_per_epoch", "overwrite", "M1", "affinity")


# ----------------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------------
def resolve_value(text: str) -> Any:
    """papermill's ``-p`` typing: ``None``, ``True``/``False``, int, float, otherwise the string."""
    if text in ("None", "none", "null"):
        return None
    if text in ("True", "true"):
        return True
    if text in ("False", "false"):
        return False
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


DEFAULT_KERNEL = "python3"  # ipykernel's own: papermill's default, and the notebooks' kernelspec


def kernel_interpreter(name: str) -> str | None:
    """The Python interpreter the Jupyter kernel ``name`` starts when papermill runs in this interpreter, or None if
    its command is not a Python (``jupyter_client`` replaces a bare ``python``/``python3`` by ``sys.executable``)."""
    from jupyter_client.kernelspec import KernelSpecManager  # here, not at the top: `slnl sweep --help` stays fast

    argv = KernelSpecManager().get_kernel_spec(name).argv
    if not argv:
        return None
    if argv[0] in ("python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]):
        return sys.executable
    return argv[0] if "ipykernel" in " ".join(argv) else None


def kernel_name(requested: str | None = None) -> str:
    """The Jupyter kernel the notebooks run in: ``requested`` (default ``python3``), which must be installed.

    ``python3`` normally runs this very interpreter (``sys.executable``), so any environment with slnl and ipykernel
    installed runs the notebooks. A ``python3`` kernelspec of another interpreter can shadow it (a user-level one,
    ``jupyter kernelspec list`` shows which wins); that is said in one line, since slnl may be missing there."""
    from jupyter_client.kernelspec import KernelSpecManager  # here, not at the top: `slnl sweep --help` stays fast

    have = KernelSpecManager().find_kernel_specs()
    want = requested or DEFAULT_KERNEL
    if want not in have:
        raise SystemExit(f"slnl: Jupyter kernel {want!r} is not installed (installed: {', '.join(sorted(have))}); "
                         f"--kernel {DEFAULT_KERNEL} runs this interpreter")
    if want == DEFAULT_KERNEL:
        exe = kernel_interpreter(want)
        if exe is not None and os.path.abspath(exe) != os.path.abspath(sys.executable):
            print(f"slnl: Jupyter kernel {want!r} ({have[want]}) runs {exe}, not this interpreter ({sys.executable})",
                  file=sys.stderr)
    return want


def run_notebook(src: Path, dst: Path, params: dict[str, Any], kernel: str, env: dict[str, str] | None = None,
                 log_path: Path | None = None, timeout: float | None = None) -> tuple[int, str]:
    """Execute ``src`` with papermill into ``dst`` in a subprocess; returns (exit code, tail of its output)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "papermill", str(src), str(dst), "-k", kernel, "--cwd", str(REPO_ROOT),
           "--no-progress-bar", "-y", yaml.safe_dump(params, default_flow_style=True).strip()]
    log_path = log_path or dst.with_suffix(".log")
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        try:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = 124
    text = log_path.read_text(errors="replace")
    return code, text[-4000:]


def _table_params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(TABLE_PARAMS))
    if unknown:
        raise SystemExit(f"slnl: unknown notebook parameter(s) {unknown}; table notebooks take {list(TABLE_PARAMS)}")
    return params


def pending(tbl: ex.Table, rows: Sequence[ex.Row], params: dict[str, Any]) -> tuple[list[ex.Row], list[ex.Row]]:
    """(rows with a missing result file, rows already finished) for the splits and seeds the parameters ask for."""
    store = ex.resolve_store(params.get("dataset", "synthetic"), params.get("data_root") or None)
    splits = [ex.split_label(s) for s in ex.parse_list(params.get("split"))] or ex.default_splits(tbl, store)
    seeds = ex.parse_list(params.get("seeds", 0), int) or [0]
    results_dir = Path(params.get("results_dir", "results"))
    todo, done = [], []
    for r in rows:
        paths = [ex.result_path(results_dir, tbl, r, s, k) for s in splits for k in seeds]
        (done if all(p.is_file() for p in paths) and not params.get("overwrite") else todo).append(r)
    return todo, done


def _record_failure(path: Path, key: str, info: dict[str, Any] | None) -> None:
    fails = json.loads(path.read_text()) if path.is_file() else {}
    if info is None:
        fails.pop(key, None)
    else:
        fails[key] = info
    if fails or path.is_file():
        atomic_write_json(path, fails)


# ----------------------------------------------------------------------------------------------------------------------
# slnl sweep
# ----------------------------------------------------------------------------------------------------------------------
def sweep(table_name: str, params: dict[str, Any], rows: str | None = None, gpus: Sequence[str] = (),
          kernel: str | None = None, log: Any = print) -> int:
    """Run a table's rows as separate papermill executions (see the module docstring). Returns 0 when every row
    finished, 1 otherwise."""
    tbl = ex.table(table_name)
    params = _table_params(dict(params))
    # Paths on the command line are relative to where the command runs; the notebooks get them absolute.
    params["results_dir"] = str(Path(params.get("results_dir", "results")).resolve())
    params["data_root"] = str(Path(params["data_root"]).resolve()) if params.get("data_root") else None
    selected = ex.select_rows(tbl, rows, m1=params.get("M1"), affinity=params.get("affinity"))
    params.pop("M1", None)
    params.pop("affinity", None)  # the row is named explicitly below
    if params.get("dataset", "synthetic") == "synthetic" and not params.get("data_root"):
        from slnl.data import synthetic

        synthetic.ensure_default()  # build once here, not in parallel in every execution
    todo, done = pending(tbl, selected, params)
    for r in done:
        log(f"{tbl.name} {r.slug}: finished already (result files exist)")
    if not todo:
        log(f"{tbl.name}: nothing to run")
        return 0
    kern = kernel_name(kernel)
    results_dir = Path(params["results_dir"])
    nb_dir = results_dir / tbl.name / "notebooks"
    fail_path = results_dir / tbl.name / "failures.json"
    slots: list[str | None] = list(gpus) if gpus else [None]
    free = list(slots)
    lock = threading.Lock()
    failed: list[str] = []

    def job(r: ex.Row, slot: str | None) -> None:
        env = dict(os.environ)
        p = dict(params, rows=r.slug)
        if slot is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(slot)
            if p.get("device", "auto") == "auto":
                p["device"] = "cuda"
        where = f"GPU {slot}" if slot is not None else "CPU"
        log(f"{tbl.name} {r.slug}: running on {where} -> {nb_dir / (r.slug + '.ipynb')}")
        t0 = time.time()
        try:
            code, tail = run_notebook(NOTEBOOKS / f"{tbl.name}.ipynb", nb_dir / f"{r.slug}.ipynb", p, kern, env)
        except Exception as e:  # noqa: BLE001 - a row that cannot even start is recorded like one that failed
            code, tail = -1, f"{type(e).__name__}: {e}"
        with lock:
            if code == 0:
                _record_failure(fail_path, r.slug, None)
                log(f"{tbl.name} {r.slug}: done in {time.time() - t0:.0f} s")
            else:
                failed.append(r.slug)
                _record_failure(fail_path, r.slug, {
                    "exit_code": code, "notebook": str(nb_dir / f"{r.slug}.ipynb"),
                    "log": str(nb_dir / f"{r.slug}.log"), "device": where, "params": p,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "output_tail": tail})
                log(f"{tbl.name} {r.slug}: FAILED (exit {code}); see {nb_dir / (r.slug + '.log')}")
            free.append(slot)

    threads: list[threading.Thread] = []
    for r in todo:
        while True:
            with lock:
                slot = free.pop(0) if free else "busy"
            if slot != "busy":
                break
            time.sleep(0.5)
        th = threading.Thread(target=job, args=(r, slot), daemon=True)
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    if failed:
        log(f"{tbl.name}: {len(failed)} row(s) failed: {', '.join(failed)} (details in {fail_path})")
        return 1
    log(f"{tbl.name}: all {len(todo)} row(s) finished; results in {results_dir / tbl.name}")
    return 0


# ----------------------------------------------------------------------------------------------------------------------
# slnl reproduce
# ----------------------------------------------------------------------------------------------------------------------
# Two lanes balanced at the cpu scale (Table 6's eight non-local models ≈ Tables 3–5's seventeen local ones). Within a
# lane the order lets a table reuse a finished identical run of the previous one (see experiments.run_table):
# Table 4 CE = Table 3 CS-T, Table 5 none = Table 4 SMFL, Table 1/2's model = Table 6 SLnL M1=5 on CS.
LANES = (("table6", "table1", "table2"), ("table3", "table4", "table5"))
ORDER = ("table3", "table4", "table5", "table6", "table1", "table2")


def reproduce(dataset: str = "synthetic", data_root: str | None = None, scale: str = "cpu", seeds: str = "0",
              device: str = "auto", kernel: str | None = None, results_dir: str = "results",
              split: str | None = None, epochs: int | None = None, max_steps_per_epoch: int | None = None,
              jobs: int = 2, tables: Sequence[str] | None = None, log: Any = print) -> int:
    """Every table notebook, then Fig. 4 and the report (module docstring). Returns 0 when all succeeded."""
    results = Path(results_dir).resolve()
    nb_out = results / "notebooks"
    kern = kernel_name(kernel)
    if split is None and scale == "cpu":
        split = "CS"  # the 30-minute budget of `make reproduce` on 2 cores: one split at the cpu scale
    data_root = str(Path(data_root).resolve()) if data_root else None
    params = {"dataset": dataset, "data_root": data_root, "split": split, "scale": scale, "epochs": epochs,
              "seeds": seeds, "device": device, "results_dir": str(results),
              "max_steps_per_epoch": max_steps_per_epoch}
    if dataset == "synthetic" and not data_root:
        from slnl.data import synthetic

        log(f"synthetic store: {synthetic.ensure_default()}")
    names = [ex.table(t).name for t in tables] if tables else list(ORDER)
    lanes = [[t for t in lane if t in names] for lane in LANES] if jobs >= 2 else [[t for t in ORDER if t in names]]
    lanes = [lane for lane in lanes if lane]
    failed: list[str] = []
    lock = threading.Lock()
    t_start = time.time()

    def lane_worker(lane: list[str]) -> None:
        for name in lane:
            t0 = time.time()
            log(f"{name}: running notebooks/{name}.ipynb -> {nb_out / (name + '.ipynb')}")
            code, tail = run_notebook(NOTEBOOKS / f"{name}.ipynb", nb_out / f"{name}.ipynb", params, kern)
            with lock:
                if code != 0:
                    failed.append(name)
                    log(f"{name}: FAILED (exit {code}); see {nb_out / (name + '.log')}\n{tail[-1500:]}")
                else:
                    log(f"{name}: done in {time.time() - t0:.0f} s")

    threads = [threading.Thread(target=lane_worker, args=(lane,), daemon=True) for lane in lanes]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for name, p in (("fig4", {"results_dir": str(results)}), ("report", {"results_dir": str(results)})):
        log(f"{name}: running notebooks/{name}.ipynb")
        code, tail = run_notebook(NOTEBOOKS / f"{name}.ipynb", nb_out / f"{name}.ipynb", p, kern)
        if code != 0:
            failed.append(name)
            log(f"{name}: FAILED (exit {code}); see {nb_out / (name + '.log')}\n{tail[-1500:]}")
    log(f"\nreproduce: {time.time() - t_start:.0f} s ({dataset}, scale {scale}, split {split or 'all'}, seeds {seeds})")
    log(f"  tables:    {results / 'tables'}  (tableN.md: ours beside the paper's; tableN_claims.csv)")
    log(f"  figures:   {results / 'figures'}")
    log(f"  notebooks: {nb_out}  (executed, with outputs)")
    log(f"  results:   {results}/tableN/*.json (one per row, split, seed); runs: {results / 'runs'}")
    if failed:
        log(f"  FAILED: {', '.join(failed)}")
        return 1
    return 0


# ----------------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------------
def _params(pairs: list[list[str]] | None) -> dict[str, Any]:
    return {k: resolve_value(v) for k, v in (pairs or [])}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("sweep", "reproduce"):
        print("usage: slnl sweep TABLE [...] | slnl reproduce [...]", file=sys.stderr)
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "sweep":
        ap = argparse.ArgumentParser(prog="slnl sweep", description="Run a paper table's rows as papermill "
                                     "executions, one per GPU at a time (sequential on the CPU without --gpus).")
        ap.add_argument("table", help="table1 … table6 (or 1 … 6)")
        ap.add_argument("--gpus", default="", help="comma-separated GPU ids, e.g. 0,1 (default: CPU, one at a time)")
        ap.add_argument("--rows", default=None, help="comma-separated row slugs (default: every runnable row)")
        ap.add_argument("--kernel", default=DEFAULT_KERNEL, help="Jupyter kernel (default: %(default)s, this "
                        "interpreter)")
        ap.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                        help="notebook parameter, papermill style (e.g. -p scale paper -p seeds 0,1,2)")
        a = ap.parse_args(rest)
        gpus = [g.strip() for g in a.gpus.split(",") if g.strip()]
        return sweep(a.table, _params(a.parameter), rows=a.rows, gpus=gpus, kernel=a.kernel)
    ap = argparse.ArgumentParser(prog="slnl reproduce", description="Run every table notebook, Fig. 4 and the report "
                                 "with papermill; print where the tables and figures are.")
    ap.add_argument("--dataset", default="synthetic", choices=ex.DATASETS)
    ap.add_argument("--data-root", default="", help="prepared store directory ('' = built-in synthetic set)")
    ap.add_argument("--scale", default="cpu", choices=tuple(ex.SCALES))
    ap.add_argument("--seeds", default="0", help="e.g. 0 or 0,1,2")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--kernel", default=DEFAULT_KERNEL,
                    help="Jupyter kernel (default: %(default)s, this interpreter)")
    ap.add_argument("--results-dir", default="results")
    ap.add_argument("--split", default=None, help="default: CS at the cpu scale, every reported split otherwise")
    ap.add_argument("--epochs", type=int, default=None, help="default: the scale's")
    ap.add_argument("--max-steps-per-epoch", type=int, default=None)
    ap.add_argument("--jobs", type=int, default=2, help="table notebooks run in parallel (1 or 2 lanes)")
    ap.add_argument("--tables", default=None, help="subset, e.g. table3,table6 (default: all)")
    a = ap.parse_args(rest)
    return reproduce(dataset=a.dataset, data_root=a.data_root or None, scale=a.scale, seeds=a.seeds,
                     device=a.device, kernel=a.kernel, results_dir=a.results_dir, split=a.split, epochs=a.epochs,
                     max_steps_per_epoch=a.max_steps_per_epoch, jobs=a.jobs,
                     tables=ex.parse_list(a.tables) if a.tables else None)


if __name__ == "__main__":
    raise SystemExit(main())
