"""The notebooks: committed clean and up to date with notebooks/_make.py; executed with papermill on tiny parameters
(one row, one optimiser step) they write the result files, tables and figures they promise; a misspelled parameter
stops them at once; they run in the plain `python3` kernel. Also `slnl sweep` (skip / failure record) and
`slnl reproduce` (tables 1–2, Fig. 4 and the report).

Kernel: the notebooks' own kernelspec, `python3`, i.e. this interpreter (papermill runs in-process here)."""
from __future__ import annotations

import ast
import json
import math
import os
import re
import site
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import papermill
import pandas as pd
import pytest

from slnl import notebook_run, sweep
from slnl.notebook_params import parameter_names
from slnl.utils import REPO_ROOT, resolve_path

NB = REPO_ROOT / "notebooks"
PNG = b"\x89PNG\r\n\x1a\n"
TINY = {"epochs": 1, "max_steps_per_epoch": 1, "split": "CS", "seeds": "0"}
NOTEBOOKS = [f"table{i}.ipynb" for i in range(1, 7)] + ["fig4.ipynb", "report.ipynb"]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # kernels are subprocesses: 2 cores, other tests beside us
    monkeypatch.setenv("MKL_NUM_THREADS", "1")


def _execute(name: str, out, **params):
    import papermill as pm

    return pm.execute_notebook(str(NB / name), str(out), parameters=params, cwd=str(REPO_ROOT), progress_bar=False)


def _guard(nb) -> tuple[list[str], list[str], str]:
    """(names the parameters cell assigns, the check cell's `known` list, its `notebook` argument)."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    call = ast.parse(code[2].source).body[-1].value
    kw = {k.arg: k.value for k in call.keywords}
    assert call.func.id == "check_parameters"
    assert [ast.unparse(a) for a in call.args] == ["globals()", "_defined_before_parameters"]
    return parameter_names(code[1].source), ast.literal_eval(kw["known"]), ast.literal_eval(kw["notebook"])


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
        assert nb.metadata.kernelspec == {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                          "language": "python"}
        code = [c for c in nb.cells if c.cell_type == "code"]
        for c in code:
            assert c.outputs == [] and c.execution_count is None, f"{name}: committed with outputs"
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and tagged[0] is code[1], f"{name}: one parameters cell, after the snapshot cell"
        # the guard: a snapshot before the parameters, the check after them knowing exactly the parameters' names
        assert code[0].source.rstrip().endswith("_defined_before_parameters = set(globals())  # what the check "
                                                "below leaves out")
        declared, known, notebook = _guard(nb)
        assert known == declared and len(known) >= 2 and notebook == name
    params6 = [c for c in nbformat.read(NB / "table6.ipynb", as_version=4).cells if c.cell_type == "code"][1].source
    assert "M1 = None" in params6 and "affinity = None" in params6


def test_parameter_check_rules():
    """parameter_names reads assignments as papermill does; unknown_names leaves out the snapshot, the known names
    and IPython's underscore names; the message names a likely meant parameter (case first, then spelling)."""
    from slnl.notebook_params import UnknownParameterError, check_parameters, suggestion, unknown_names

    src = 'a = 1  # one\nb: int = 2\nc, d = 3, 4\nprint(a)\na = 5\nif a:\n    e = 6\n'
    assert parameter_names(src) == ["a", "b"]  # tuples, nested and repeated assignments are not parameters
    before = {"In", "Out", "get_ipython", "check_parameters", "old"}
    ns = before | {"a", "b", "_", "_i3", "_3", "seed", "A"}
    assert unknown_names(ns, before, ["a", "b"]) == ["A", "seed"]
    assert suggestion("A", ["a", "b"]) == "a" and suggestion("seed", ["seeds", "split"]) == "seeds"
    assert suggestion("xyz", ["seeds"]) is None
    check_parameters(dict.fromkeys(before | {"a", "b", "_7"}), before, ["a", "b"])  # nothing unknown: no error
    with pytest.raises(UnknownParameterError) as err:
        check_parameters(dict.fromkeys(ns), before, ["a", "b", "seeds"], notebook="x.ipynb")
    assert str(err.value) == ("x.ipynb: unknown parameters 'A' (did you mean 'a'?), 'seed' (did you mean 'seeds'?); "
                              "nothing was run. Its parameters are: a, b, seeds")


def test_notebook_parameters_are_read_from_the_file(tmp_path):
    """notebook_parameters returns the names of the cell tagged `parameters` (the notebook is the one place they are
    named: `slnl sweep` checks against it), reads JSON without executing anything, and names the file it refuses."""
    from slnl.notebook_params import notebook_parameters

    for name in NOTEBOOKS:
        nb = nbformat.read(NB / name, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])][0]
        assert notebook_parameters(NB / name) == parameter_names(tagged.source)
        # papermill reads the same names (a comment it cannot parse, e.g. one holding "=", hides a parameter from it)
        assert list(papermill.inspect_notebook(str(NB / name))) == parameter_names(tagged.source), name
    assert {"M1", "affinity"} <= set(notebook_parameters(NB / "table6.ipynb"))
    assert not {"M1", "affinity"} & set(notebook_parameters(NB / "table4.ipynb"))
    untagged = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("seeds = 1")])
    nbformat.write(untagged, tmp_path / "u.ipynb")
    (tmp_path / "x.ipynb").write_text("seeds = 1\n")
    for f, why in (("u.ipynb", "no cell tagged 'parameters'"), ("x.ipynb", "not a readable Jupyter notebook"),
                   ("missing.ipynb", "not a readable Jupyter notebook")):
        with pytest.raises(ValueError, match=f"^{re.escape(str(tmp_path / f))}: {why}"):
            notebook_parameters(tmp_path / f)


def _tree(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.is_dir() else set()


def test_misspelled_parameter_stops_table6_within_seconds(tmp_path):
    """`papermill notebooks/table6.ipynb out.ipynb -p m1 3`, literally: papermill itself only warns about `m1`;
    the notebook stops before any import of the engine, names what was meant and the parameters it knows, and
    writes nothing under results/ (no result file, no run directory)."""
    results = REPO_ROOT / "results"
    before = _tree(results)
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "papermill", str(NB / "table6.ipynb"), "out.ipynb", "-p", "m1", "3"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    took = time.time() - t0
    out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)  # older papermill keeps the traceback's colours
    assert proc.returncode != 0 and took < 60, out
    assert "Passed unknown parameter: m1" in out  # papermill's warning, which alone would not stop the run
    line = next(ln for ln in out.splitlines() if ln.startswith("UnknownParameterError: "))
    declared, _, _ = _guard(nbformat.read(NB / "table6.ipynb", as_version=4))
    assert "table6.ipynb: unknown parameter 'm1' (did you mean 'M1'?); nothing was run." in line
    assert line.endswith("Its parameters are: " + ", ".join(declared))
    assert _tree(results) == before and sorted(p.name for p in tmp_path.iterdir()) == ["out.ipynb"]
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    ran = [c for c in executed.cells if c.cell_type == "code" and c.execution_count]
    assert "check_parameters(globals()" in ran[-1].source  # the last cell that ran is the check
    # The notebook's part of what papermill prints is that one line, not the check's frames (52 lines in all before;
    # what is left above it is papermill's own traceback of its command line, which no notebook can shorten).
    kernel_part = out.split('Exception encountered at "In [', 1)[1].strip().splitlines()[1:]
    assert kernel_part == [line], kernel_part
    assert len(out.strip().splitlines()) <= 40, out
    (error,) = [o for o in ran[-1].outputs if o.output_type == "error"]
    assert [re.sub(r"\x1b\[[0-9;]*m", "", t) for t in error.traceback] == [line]  # so in JupyterLab too


def test_a_bad_input_ends_the_notebook_with_its_one_line(tmp_path):
    """A user error raised deep in the library (here: a data_root that is no store) shows in the notebook as its one
    line and a pointer to %tb, not as the frames that led to it; papermill still fails."""
    proc = subprocess.run([sys.executable, "-m", "papermill", str(NB / "table1.ipynb"), "out.ipynb", "-p", "dataset",
                           "msr3d", "-p", "data_root", str(tmp_path / "nope")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    assert proc.returncode != 0
    kernel_part = out.split('Exception encountered at "In [', 1)[1].strip().splitlines()[1:]
    assert len(kernel_part) == 2 and kernel_part[0].startswith(f"FileNotFoundError: data_root {tmp_path / 'nope'}: "
                                                               "missing meta.json"), kernel_part
    assert kernel_part[1] == "(the full traceback: %tb)"
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    (error,) = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
                if o.output_type == "error"]
    assert [re.sub(r"\x1b\[[0-9;]*m", "", t) for t in error.traceback] == kernel_part


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_rejects_an_unknown_parameter(name, tmp_path):
    """Each notebook: an unknown name stops it in the check cell (several at once are all named); its known
    parameters, given alongside, are not reported."""
    import papermill as pm

    nb = nbformat.read(NB / name, as_version=4)
    declared, _, _ = _guard(nb)
    params = {"no_such_parameter": 1, "results_dir": str(tmp_path / "results"), "Zzz": None}
    with pytest.raises(pm.PapermillExecutionError) as err:
        _execute(name, tmp_path / "out.ipynb", **params)
    assert err.value.ename == "UnknownParameterError"
    assert err.value.evalue == (f"{name}: unknown parameters 'Zzz', 'no_such_parameter'; nothing was run. "
                                f"Its parameters are: {', '.join(declared)}")
    assert not (tmp_path / "results").exists()


def test_known_parameters_pass_the_check_also_when_rerun(tmp_path):
    """No false alarm: every parameter of Fig. 4 given (the figure is written), and the notebook's cells run twice in
    one kernel (as "Run all" twice in JupyterLab does) with names from the first run still defined."""
    from nbclient import NotebookClient

    out = tmp_path / "fig4.ipynb"
    _execute("fig4.ipynb", out, pairs="2,0.4", results_dir=str(tmp_path / "results"))
    assert _png(tmp_path / "results" / "figures" / "fig4.png")
    nb = nbformat.read(NB / "fig4.ipynb", as_version=4)
    nb.cells = nb.cells + [nbformat.from_dict(c) for c in nb.cells]  # the same cells again, same kernel
    for i, c in enumerate(nb.cells):
        c["id"] = f"c{i}"
    params = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    for c in params:
        c.source = c.source.replace('results_dir = "results/synthetic"', f'results_dir = {str(tmp_path / "again")!r}')
    NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT)}}).execute()
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
    assert _png(tmp_path / "again" / "figures" / "fig4.png")


def _python3_only_env(tmp_path) -> tuple[str, dict[str, str]]:
    """A virtual environment whose only Jupyter kernel is ipykernel's `python3`: no kernelspec directory of its own,
    empty user and config directories, and this environment's packages through a site directory (.pth)."""
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    py = str(env_dir / "bin" / "python")
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # addsitedir, not a bare path: the .pth files there (an editable install of slnl) are processed too
    lines = [f"import site; site.addsitedir({d!r})" for d in site.getsitepackages()]
    (Path(purelib) / "outer_env.pth").write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env.update(JUPYTER_DATA_DIR=str(tmp_path / "jdata"), JUPYTER_CONFIG_DIR=str(tmp_path / "jconfig"),
               JUPYTER_PLATFORM_DIRS="1", HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "xdg"))
    return py, env


def test_notebooks_run_where_only_the_python3_kernel_exists(tmp_path):
    """`papermill notebooks/fig4.ipynb out.ipynb` in an environment that has no kernel but ipykernel's python3:
    papermill finds it from the notebook's kernelspec and starts it with the interpreter that runs papermill."""
    py, env = _python3_only_env(tmp_path)
    probe = ("import json\n"
             "from jupyter_client.kernelspec import KernelSpecManager\n"
             "from jupyter_client.manager import KernelManager\n"
             "print(json.dumps([sorted(KernelSpecManager().find_kernel_specs()),"
             " KernelManager(kernel_name='python3').format_kernel_cmd()[0]]))")
    found = subprocess.run([py, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    kernels, exe = json.loads(found.stdout)
    if kernels != ["python3"]:
        pytest.skip(f"system-wide Jupyter kernels {kernels} are installed on this machine")
    assert exe == py  # python3 starts the interpreter that asks, not some other Python on PATH
    results = tmp_path / "results"
    proc = subprocess.run([py, "-m", "papermill", str(NB / "fig4.ipynb"), str(tmp_path / "out.ipynb"),
                           "-p", "results_dir", str(results)], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _png(results / "figures" / "fig4.png")
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert executed.metadata.kernelspec["name"] == "python3"
    assert all(c.execution_count for c in executed.cells if c.cell_type == "code")


def test_kernel_name_defaults_to_python3_and_refuses_a_missing_kernel(capsys):
    assert notebook_run.kernel_name() == "python3" == notebook_run.kernel_name("python3")
    assert notebook_run.kernel_interpreter("python3") == sys.executable
    with pytest.raises(SystemExit, match=r"Jupyter kernel 'no-such-kernel' is not installed \(installed: .*python3"):
        notebook_run.kernel_name("no-such-kernel")


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
        cfg = json.loads((resolve_path(rec["run_dir"]) / "result.json").read_text())["config"]
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
    result = json.loads((resolve_path(rec["run_dir"]) / "result.json").read_text())
    assert rec["dataset"] == "msr3d" and "msr3d" in rec["note"]
    assert (result["config"]["model"]["num_classes"], result["config"]["model"]["num_joints"]) == (20, 20)


def test_reproduce_tables_1_2_fig4_and_report(tmp_path):
    """`slnl reproduce` on Tables 1–2 (tiny): Table 2 on synthetic is a stand-in sharing Table 1's identical run
    (trained once); Fig. 4's curves equal slnl.losses; the report has the paper's numbers and every figure."""
    import torch

    from slnl import losses

    results = tmp_path / "results"
    code = sweep.main(["reproduce", "--results-dir", str(results), "--tables", "table1,table2", "--epochs", "1",
                       "--max-steps-per-epoch", "1"])  # the default kernel, python3
    assert code == 0
    for name in ("table1", "table2", "fig4", "report"):
        nb = nbformat.read(results / "notebooks" / f"{name}.ipynb", as_version=4)
        assert all(c.execution_count for c in nb.cells if c.cell_type == "code"), name
    t1 = json.loads((results / "table1" / "slnl-rfa__CS__seed0.json").read_text())
    t2 = json.loads((results / "table2" / "slnl-rfa__CS__seed0.json").read_text())
    assert t1["settings"]["m1"] == 5 and t1["settings"]["m"] == 0.4  # Table 1's CS model: M1=5, SMFL(2, 0.4)
    # The two jobs start together: whichever takes the configuration's lock first trains, the other reuses its run.
    trained, reused = (t1, t2) if "reused_from" in t2 else (t2, t1)
    assert reused["reused_from"].endswith(f"{trained['table']}/slnl-rfa__CS__seed0.json")
    assert (reused["top1"], reused["run_dir"]) == (trained["top1"], trained["run_dir"]) and "reused_from" not in trained
    assert sorted(p.name for p in (results / "runs").iterdir()) == [".locks", trained["table"]]  # trained once
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
    common = ["--kernel", "python3", "-p", "results_dir", str(results), "-p", "epochs", "1",
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
