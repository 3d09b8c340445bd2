"""The notebooks: committed clean and up to date with notebooks/_make.py; executed with papermill on tiny parameters
(one row, one optimiser step) they write the result files, tables and figures they promise. Also `slnl sweep`
(skip / failure record) and `slnl reproduce` (tables 1–2, Fig. 4 and the report).

Kernel: "slnl" when registered (make kernel), else "python3" of this environment."""
from __future__ import annotations

import json
import math

import nbformat
import numpy as np
import pandas as pd
import pytest

from slnl import experiments as ex
from slnl import sweep
from slnl.utils import REPO_ROOT

NB = REPO_ROOT / "notebooks"
PNG = b"\x89PNG\r\n\x1a\n"
TINY = {"epochs": 1, "max_steps_per_epoch": 1, "split": "CS", "seeds": "0"}
NOTEBOOKS = [f"table{i}.ipynb" for i in range(1, 7)] + ["fig4.ipynb", "report.ipynb"]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # kernels are subprocesses: 2 cores, other tests beside us
    monkeypatch.setenv("MKL_NUM_THREADS", "1")


def _kernel() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    return "slnl" if "slnl" in KernelSpecManager().find_kernel_specs() else "python3"


def _execute(name: str, out, **params):
    import papermill as pm

    return pm.execute_notebook(str(NB / name), str(out), parameters=params, kernel_name=_kernel(),
                               cwd=str(REPO_ROOT), progress_bar=False)


def _png(path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG


# --------------------------------------------------------------------------------------------------------------------
def test_committed_notebooks_are_clean_and_generated():
    import importlib.util

    spec = importlib.util.spec_from_file_location("nb_make", NB / "_make.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    assert make.main(["--check"]) == 0, "notebooks differ from notebooks/_make.py's output"
    assert sorted(p.name for p in NB.glob("*.ipynb")) == sorted(NOTEBOOKS)
    for name in NOTEBOOKS:
        nb = nbformat.read(NB / name, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec == {"name": "slnl", "display_name": "Python (slnl)", "language": "python"}
        code = [c for c in nb.cells if c.cell_type == "code"]
        for c in code:
            assert c.outputs == [] and c.execution_count is None, f"{name}: committed with outputs"
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and tagged[0] is code[0], f"{name}: one parameters cell, the first code cell"
    params6 = nbformat.read(NB / "table6.ipynb", as_version=4).cells[1].source
    assert "M1 = None" in params6 and "affinity = None" in params6


def test_table_notebooks_write_results(tmp_path, shared_data):
    """Tables 3–6 one row each (Table 6 through -p M1 1), and Table 3 on MSR Action3D (store from the real files)."""
    results = tmp_path / "results"
    runs = {"table3": {"rows": "pos-n"}, "table4": {"rows": "fl-2"}, "table5": {"rows": "afa"},
            "table6": {"M1": 1}}
    for table, extra in runs.items():
        _execute(f"{table}.ipynb", tmp_path / f"{table}.ipynb", results_dir=str(results), **TINY, **extra)
    expect = {"table3": ("pos-n", {"transform": "Pos-N", "loss": "CE"}),
              "table4": ("fl-2", {"transform": "CS-T", "loss": "FL", "gamma": 2.0}),
              "table5": ("afa", {"attention": "aFA", "loss": "SMFL", "m": 0.4}),
              "table6": ("slnl-1", {"affinity": "SLnL", "m1": 1, "attention": "rFA"})}
    for table, (slug, settings) in expect.items():
        files = sorted((results / table).glob("*.json"))
        assert [f.name for f in files] == [f"{slug}__CS__seed0.json"], table  # exactly the asked row
        rec = json.loads(files[0].read_text())
        assert (rec["table"], rec["row"], rec["split"], rec["seed"], rec["dataset"], rec["scale"]) == (
            table, slug, "CS", 0, "synthetic", "cpu")
        assert 0.0 <= rec["top1"] <= rec["top5"] <= 1.0 and rec["epochs"] == 1
        for k, v in settings.items():
            assert rec["settings"][k] == v, (table, k)
        cfg = json.loads((ex.repo_path(rec["run_dir"]) / "result.json").read_text())["config"]
        assert cfg["model"]["num_classes"] == 12 and cfg["max_steps_per_epoch"] == 1
        assert _png(results / "figures" / f"{table}_curves.png")
        executed = nbformat.read(tmp_path / f"{table}.ipynb", as_version=4)
        shown = json.dumps([c.get("outputs", []) for c in executed.cells])
        assert "paper" in shown and "STAND-IN" in shown  # the table beside the paper's, flagged as synthetic

    raw = shared_data / "msr_action3d"
    if not raw.is_dir():
        pytest.skip(f"{raw} absent: MSR Action3D part not run")
    from slnl.data.prepare import prepare_dataset

    store = tmp_path / "msr"
    prepare_dataset("msr3d", raw, store, workers=1, progress=False, quiet=True)
    msr_results = tmp_path / "msr_results"
    _execute("table3.ipynb", tmp_path / "msr.ipynb", results_dir=str(msr_results), dataset="msr3d",
             data_root=str(store), rows="cs-t", epochs=1, max_steps_per_epoch=1)
    rec = json.loads((msr_results / "table3" / "cs-t__CS__seed0.json").read_text())
    result = json.loads((ex.repo_path(rec["run_dir"]) / "result.json").read_text())
    assert rec["dataset"] == "msr3d" and "msr3d" in rec["note"]
    assert (result["config"]["model"]["num_classes"], result["config"]["model"]["num_joints"]) == (20, 20)


def test_reproduce_tables_1_2_fig4_and_report(tmp_path):
    """`slnl reproduce` on Tables 1–2 (tiny): Table 2 on synthetic is a stand-in reusing Table 1's identical run;
    Fig. 4's curves equal slnl.losses; the report has the paper's numbers and every figure."""
    import torch

    from slnl import losses

    results = tmp_path / "results"
    code = sweep.main(["reproduce", "--results-dir", str(results), "--tables", "table1,table2", "--epochs", "1",
                       "--max-steps-per-epoch", "1", "--kernel", _kernel()])
    assert code == 0
    for name in ("table1", "table2", "fig4", "report"):
        nb = nbformat.read(results / "notebooks" / f"{name}.ipynb", as_version=4)
        assert all(c.execution_count for c in nb.cells if c.cell_type == "code"), name
    t1 = json.loads((results / "table1" / "slnl-rfa__CS__seed0.json").read_text())
    t2 = json.loads((results / "table2" / "slnl-rfa__CS__seed0.json").read_text())
    assert t1["settings"]["m1"] == 5 and t1["settings"]["m"] == 0.4  # Table 1's CS model: M1=5, SMFL(2, 0.4)
    assert t2["reused_from"].endswith("table1/slnl-rfa__CS__seed0.json") and t2["top1"] == t1["top1"]
    assert "STAND-IN" in t2["note"] and "Kinetics" in t2["note"]

    md1 = (results / "tables" / "table1.md").read_text()
    assert "| HCN (Li et al. 2018) | 86.5 |" in md1 and "| SLnL-rFA (Ours) | 89.1 | " in md1
    assert f"{100 * t1['top1']:.1f} (1 seed)" in md1
    md2 = (results / "tables" / "table2.md").read_text()
    assert "top1 paper" in md2 and "36.6" in md2 and "STAND-IN" in md2
    md6 = (results / "tables" / "table6.md").read_text()
    assert "| SLnL (M1=5, M2=1) | 89.1 |" in md6  # paper numbers even without runs
    for fig in ("fig4", "confusion", "frequency_attention", "nonlocal_affinity", "table1_curves"):
        assert _png(results / "figures" / f"{fig}.png"), fig

    curves = pd.read_csv(results / "figures" / "fig4.csv")  # written by fig4.ipynb (then again by the report)
    assert set(curves["pair"]) == {"(γ=2, m=0.4)", "(γ=2, m=0.6)", "(γ=0, m=0.4)"}
    fns = {"CE": lambda p, g, m: losses.ce(p), "FL": lambda p, g, m: losses.fl(p, g),
           "SM": lambda p, g, m: losses.sm(p, m), "SMCE": lambda p, g, m: losses.smce(p, m),
           "SMFL": lambda p, g, m: losses.smfl(p, g, m)}
    rows = curves.iloc[np.linspace(0, len(curves) - 1, 40).astype(int)]
    for r in rows.itertuples():
        want = float(fns[r.loss](torch.tensor(r.p_t, dtype=torch.float64), r.gamma, r.m))
        assert math.isclose(r.value, want, rel_tol=1e-9, abs_tol=1e-12), r


def test_sweep_skips_finished_rows_and_records_failures(tmp_path, capsys):
    results = tmp_path / "results"
    common = ["--kernel", _kernel(), "-p", "results_dir", str(results), "-p", "epochs", "1",
              "-p", "max_steps_per_epoch", "1", "-p", "split", "CS"]
    # Both rows fail (a batch larger than the training set); the second still runs after the first failed.
    code = sweep.main(["sweep", "table4", "--rows", "ce,fl-3", *common, "-p", "batch_size", "100000"])
    assert code == 1
    fails = json.loads((results / "table4" / "failures.json").read_text())
    assert sorted(fails) == ["ce", "fl-3"] and all(f["exit_code"] != 0 for f in fails.values())
    assert "fewer than one batch" in fails["fl-3"]["output_tail"]
    assert (results / "table4" / "notebooks" / "fl-3.ipynb").is_file()
    # Then one row succeeds: its failure entry is removed and the executed notebook kept beside the results.
    assert sweep.main(["sweep", "table4", "--rows", "fl-3", *common]) == 0
    assert sorted(json.loads((results / "table4" / "failures.json").read_text())) == ["ce"]
    assert (results / "table4" / "fl-3__CS__seed0.json").is_file()
    executed = nbformat.read(results / "table4" / "notebooks" / "fl-3.ipynb", as_version=4)
    injected = [c.source for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and 'rows = "fl-3"' in injected[0]
    # A finished row is not executed again.
    capsys.readouterr()
    assert sweep.main(["sweep", "table4", "--rows", "fl-3", *common]) == 0
    out = capsys.readouterr().out
    assert "fl-3: finished already" in out and "nothing to run" in out
