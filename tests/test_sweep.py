"""`slnl sweep` / `slnl reproduce`: bad input is one line before anything runs (nothing left behind); --jobs runs
single-threaded processes at once; a killed sweep resumes its rows from their checkpoints and skips finished rows.
(The notebooks themselves, a failing row's record and `reproduce` end to end: tests/test_notebooks.py.)"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from slnl import recipes, study, sweep
from slnl.utils import REPO_ROOT

NB = REPO_ROOT / "notebooks"
TABLES = "table1, table2, table3, table4, table5, table6"


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # kernels are subprocesses: 2 cores, other tests beside us
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    monkeypatch.delenv("SLNL_HOME", raising=False)


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# --------------------------------------------------------------------------------------------------------------------
# Bad input: one line, non-zero exit, nothing written
# --------------------------------------------------------------------------------------------------------------------
def test_unknown_table_is_one_line_from_the_command_line(tmp_path):
    """`slnl sweep table9`, literally, in an empty directory."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    for argv in (["sweep", "table9"], ["reproduce", "--tables", "table3,table9"]):
        proc = subprocess.run([sys.executable, "-m", "slnl", *argv], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode != 0 and proc.stdout == "", proc.stdout
        want = f"slnl {argv[0]}: unknown table 'table9'; expected one of {TABLES} (or 1-6)"
        assert proc.stderr.splitlines() == [want]
    assert _tree(tmp_path) == []


def test_bad_input_is_checked_once_before_anything_runs(tmp_path, monkeypatch, capsys, synthetic_store):
    """Each problem is one line on stderr (no traceback), exit 2, and the working directory stays empty: nothing
    is created before the tables, rows, parameters, notebooks, store and splits have all been checked."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    half = tmp_path / "half"
    half.mkdir()
    (half / "meta.json").write_text("{}")
    nbs = ["--notebooks", str(NB)]
    cases = [
        (["reproduce", "--dataset", "ntu60", *nbs], "dataset 'ntu60' needs data_root"),
        (["reproduce", "--dataset", "msr3d", "--data-root", str(half), *nbs], f"data_root {half}: missing splits.npz"),
        (["reproduce", "--data-root", str(synthetic_store), "--split", "CSet", *nbs],
         f"split 'CSet' is not in the store {synthetic_store} (it has CS, CV)"),
        (["reproduce", "--seeds", "0,one", *nbs], "seeds: expected whole numbers such as 0 or 0,1,2, got '0,one'"),
        (["sweep", "table3"], f"no table3.ipynb in {work / 'notebooks'} (run from the slnl repository, or pass "
                              "--notebooks DIR)"),
        (["sweep", "table3", "--rows", "cst", *nbs], "table3: no row 'cst'; rows are pos-n, vel-n"),
        (["sweep", "table6", "-p", "M1", "7", *nbs], "table6: no runnable row with affinity='SLnL', M1=7"),
        (["sweep", "table4", "-p", "m1", "3", *nbs], "unknown notebook parameter(s) ['m1']"),
        # M1 is table6.ipynb's parameter: the table's own notebook says what it takes
        (["sweep", "table4", "-p", "M1", "3", *nbs], "unknown notebook parameter(s) ['M1']; table4.ipynb takes "
                                                     "['rows', 'dataset',"),
        (["sweep", "table4", "-p", "scale", "huge", *nbs],
         f"unknown scale 'huge'; expected one of {', '.join(recipes.SCALES)}"),
        (["sweep", "table4", "--jobs", "0", *nbs], "--jobs: expected a number of processes >= 1, got 0"),
    ]
    for argv, message in cases:
        assert sweep.main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and len(err.splitlines()) == 1 and err.startswith(f"slnl {argv[0]}: {message}"), (argv, err)
    assert _tree(work) == [] and _tree(half) == ["meta.json"]


def test_slots():
    cpu = sweep.slots(jobs=3)
    assert [s.label for s in cpu] == ["CPU"] * 3 and all(s.device is None for s in cpu)
    assert all(s.env == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} for s in cpu)
    assert sweep.slots(jobs=1)[0].env == {}  # one process keeps the caller's thread settings
    gpu = sweep.slots(["0", "3"], jobs=2)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in gpu] == ["0", "0", "3", "3"] and {s.device for s in gpu} == {"cuda"}


# --------------------------------------------------------------------------------------------------------------------
# --jobs: several single-threaded processes at once
# --------------------------------------------------------------------------------------------------------------------
def test_jobs_run_at_once_in_single_threaded_processes(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS")  # what the slots set, not what this test process has
    monkeypatch.delenv("MKL_NUM_THREADS")
    src = tmp_path / "probe.ipynb"
    nb = new_notebook(cells=[
        new_code_cell("x = 0", metadata={"tags": ["parameters"]}),
        new_code_cell("import os, time, torch\n"
                      "t0 = time.time(); time.sleep(2)\n"
                      "print(os.environ.get('OMP_NUM_THREADS'), torch.get_num_threads(), t0, time.time())")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, src)
    tasks = [sweep.Task(f"probe {i}", src, tmp_path / f"out{i}.ipynb", {"x": i}) for i in range(2)]
    assert sweep.run_tasks(tasks, sweep.slots(jobs=2), "python3", log=lambda *_: None) == []
    spans = []
    for i in range(2):
        text = nbformat.read(tmp_path / f"out{i}.ipynb", as_version=4).cells[-1].outputs[0]["text"].split()
        assert text[:2] == ["1", "1"], text  # OMP_NUM_THREADS=1, and torch runs one thread
        spans.append((float(text[2]), float(text[3])))
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1, spans  # the two sleeps overlapped: both ran at once


def test_killed_sweep_resumes_rows_from_their_checkpoints(tmp_path, monkeypatch, capsys):
    """Two rows with --jobs 2, each process killed (SIGKILL) in its second epoch: the sweep records both failures.
    Run again, it resumes each from its last.pt: a fresh start would be killed at step 1 by the fault injected then,
    a resumed run starts at step 3. Run a third time, it runs nothing."""
    results = tmp_path / "results"
    argv = ["sweep", "table4", "--rows", "ce,fl-2", "--jobs", "2", "--notebooks", str(NB), "-p", "results_dir",
            str(results), "-p", "epochs", "2", "-p", "max_steps_per_epoch", "2", "-p", "split", "CS"]
    monkeypatch.setenv("SLNL_FAULT", "kill@3")  # step 3 = the first of epoch 2, after epoch 1's checkpoint
    assert sweep.main(argv) == 1
    assert sorted(json.loads((results / "table4" / "failures.json").read_text())) == ["ce", "fl-2"]
    for row in ("ce", "fl-2"):
        assert (results / "runs" / "table4" / f"{row}__CS__seed0" / "last.pt").is_file()
        assert not (results / "table4" / f"{row}__CS__seed0.json").exists()

    monkeypatch.setenv("SLNL_FAULT", "kill@1")
    assert sweep.main(argv) == 0, (results / "table4" / "notebooks" / "ce.log").read_text()[-3000:]
    assert json.loads((results / "table4" / "failures.json").read_text()) == {}
    spans = []
    for row in ("ce", "fl-2"):
        rec = json.loads((results / "table4" / f"{row}__CS__seed0.json").read_text())
        assert (rec["row"], rec["epochs"], rec["split"]) == (row, 2, "CS") and "reused_from" not in rec
        meta = nbformat.read(results / "table4" / "notebooks" / f"{row}.ipynb", as_version=4).metadata.papermill
        spans.append(tuple(dt.datetime.fromisoformat(meta[k]) for k in ("start_time", "end_time")))
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1, spans  # --jobs 2: the two rows ran at once
    assert not list((results / "runs" / ".locks").iterdir())

    monkeypatch.delenv("SLNL_FAULT")
    capsys.readouterr()
    assert sweep.main(argv) == 0
    out = capsys.readouterr().out
    assert "table4 ce: finished already" in out and "table4 fl-2: finished already" in out
    assert "table4: nothing to run" in out


def test_results_go_to_results_dataset_by_default(tmp_path, monkeypatch):
    """Without results_dir, a sweep, `slnl reproduce` and `make reproduce` write under results/<dataset>/ (the
    synthetic stand-in under results/synthetic/), relative to home()."""
    from slnl.utils import default_results_dir

    monkeypatch.setenv("SLNL_HOME", str(tmp_path))
    nb = [REPO_ROOT / "notebooks" / "table3.ipynb"]
    assert sweep._table_params({"dataset": "msr3d"}, nb)["results_dir"] == str(tmp_path / "results" / "msr3d")
    assert sweep._table_params({}, nb)["results_dir"] == str(tmp_path / "results" / "synthetic")
    assert sweep._table_params({"results_dir": "x"}, nb)["results_dir"] == str(tmp_path / "x")
    assert default_results_dir("sbu") == "results/sbu" and default_results_dir(None) == "results/synthetic"
    make = subprocess.run(["make", "-n", "reproduce", "DATASET=nwucla"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60).stdout
    assert "--results-dir results/nwucla" in make
    assert "--results-dir results/synthetic" in subprocess.run(["make", "-n", "reproduce"], cwd=REPO_ROOT,
                                                                capture_output=True, text=True, timeout=60).stdout
    for name in ("table3.ipynb", "report.ipynb"):  # the notebooks derive it from their dataset parameter
        code = "".join(c.source for c in nbformat.read(REPO_ROOT / "notebooks" / name, as_version=4).cells)
        assert "results_dir = None" in code and "results_dir = results_dir or default_results_dir(dataset)" in code
