"""slnl.study, running the paper's tables: a run's plan (``spec`` / ``plan``: its configuration, result file, run
directory and identity key), stores (``resolve_store``, ``table_splits``), and ``run_table``'s result files on a
real (tiny) training run — written, skipped when finished, reused from another table's identical row, refused by the
``Ledger`` when they were trained under another recipe, architecture or store; also with two processes asking for
the same configuration at once, and with the results folder moved. The committed MSR Action3D studies are checked
against what the code trains now and what the report writes from them."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import slnl.study.run as study_run
from slnl import experiments as ex
from slnl import recipes, study, sweep
from slnl.data.errors import StoreChangedError
from slnl.data.store import fingerprint
from slnl.engine.config import TrainConfig
from slnl.models import PRESETS
from slnl.report import claims_summary, write_table
from slnl.study.ledger import _differences, recorded_trained_as
from slnl.utils import resolve_path
from test_engine_fit import make_tiny_store

REPO = Path(__file__).resolve().parents[1]
# ModelConfig fields the store decides (left out of a result's recorded architecture)
STORE_SHAPED = ("num_classes", "num_joints", "in_channels", "num_persons")


def _tiny(tmp_path: Path, **kw) -> dict:
    """run_table keywords of a one-step run (the cpu recipe, one epoch of one optimiser step) on CS, quiet."""
    return dict(dict(split="CS", epochs=1, max_steps_per_epoch=1, results_dir=tmp_path, log=lambda *_: None), **kw)


def _no_training(monkeypatch, why: str = "nothing may train") -> None:
    monkeypatch.setattr(study_run.engine, "fit", lambda cfg: pytest.fail(f"{why}, got {cfg.out}"))


def _options(kw: dict) -> study.Options:
    return study.Options(**{k: v for k, v in kw.items() if k != "log"})


# --------------------------------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------------------------------
def test_result_path_and_run_dir():
    path = study.result_path("results", "table6", "slnl-3", "xview", 2)
    assert path.as_posix() == "results/table6/slnl-3__CV__seed2.json"
    assert study.result_path("r", 3, ex.TABLE3.row("CS-T"), "CS", 0).as_posix() == "r/table3/cs-t__CS__seed0.json"
    assert study.run_dir("results", "table6", "slnl-3", "CV", 2).as_posix() == "results/runs/table6/slnl-3__CV__seed2"


def test_a_spec_is_the_row_on_the_scales_recipe(tmp_path):
    """Every runnable row's spec is a valid, explicit TrainConfig: the scale's recipe for the dataset, the row on the
    split, the notebooks' options on top; its files are the row's result file and run directory."""
    paper = study.Options(scale="paper", results_dir=tmp_path)
    for t in ex.TABLES.values():
        for r in ex.rows(t):
            s = study.spec(t, r, "CS", 3, paper, "store")
            assert isinstance(s.config, TrainConfig) and s.config.resolve() == s.config
            assert (s.config.seed, s.config.split, s.split, s.config.data) == (3, "xsub", "CS", "store")
            assert s.recipe == t.family and s.config.preset == t.family  # §4.1: the table's protocol (a stand-in)
            settings = ex.row_settings(t, r, "CS")
            assert (s.config.model, s.config.loss, s.config.gamma, s.config.m) == (
                settings["model"], settings["loss"], settings["gamma"], settings["m"])
            assert s.trained_as == study.trained_as(s.config)
            assert s.key == study.config_key(s.trained_as, s.config.epochs)
    # §4.1 at the paper scale: the dataset's protocol; a stand-in dataset uses the table's.
    c = study.spec("table5", "rfa", "CV", 0, paper, "store").config
    assert (c.preset, c.epochs, c.batch_size, c.m, c.split) == ("ntu", 300, 32, 0.6, "xview")
    c = study.spec("table2", "slnl-rfa", "CS", 0, paper, "store").config
    assert (c.preset, c.epochs, c.batch_size, c.model["m1"]) == ("kinetics", 100, 128, 5)
    assert study.spec("table2", "slnl-rfa", "CS", 0, dataclasses.replace(paper, dataset="ntu60"), "s").recipe == "ntu"
    opts = study.Options(scale="cpu", epochs=2, batch_size=8, max_steps_per_epoch=1, results_dir=tmp_path)
    s = study.spec("table4", "fl-3", "CS", 0, opts, "store")
    c = s.config
    assert (c.preset, c.epochs, c.batch_size, c.max_steps_per_epoch, c.gamma, c.m) == ("cpu", 2, 8, 1, 3.0, 0.0)
    assert c.out == str(tmp_path / "runs" / "table4" / "fl-3__CS__seed0")
    assert s.result_path == tmp_path / "table4" / "fl-3__CS__seed0.json" and s.tag == "table4 fl-3 CS seed0"
    with pytest.raises(ValueError, match="published reference"):
        study.spec("table1", "hcn", "CS", 0, opts, "store")
    with pytest.raises(ValueError, match="needs data_root"):
        study.plan("table3", "cs-t", study.Options(dataset="ntu60"))


def test_shared_rows_have_one_key_and_placement_is_not_identity(tmp_path):
    """The identity key is what a run trains and for how long: equal for the rows several tables share (Table 3
    CS-T = Table 4 CE), whatever the device or results folder; another seed, split or epochs is another run."""
    opts = study.Options(epochs=1, max_steps_per_epoch=1, results_dir=tmp_path)
    key = study.spec("table3", "cs-t", "CS", 0, opts, "s").key
    assert study.spec("table4", "ce", "CS", 0, opts, "s").key == key
    moved = dataclasses.replace(opts, device="cpu", results_dir=tmp_path / "other", progress=True)
    assert study.spec("table3", "cs-t", "CS", 0, moved, "elsewhere").key == key  # the store is its fingerprint's
    for other in (study.spec("table3", "cs-t", "CS", 1, opts, "s"), study.spec("table3", "cs-t", "CV", 0, opts, "s"),
                  study.spec("table3", "cs-t", "CS", 0, dataclasses.replace(opts, epochs=2), "s")):
        assert other.key != key


def test_plan_is_every_row_split_and_seed_in_the_papers_order(tmp_path):
    specs = study.plan("table3", None, study.Options(split="CS,CV", seeds="0,1", results_dir=tmp_path))
    rows = [r.slug for r in ex.rows("table3")]
    assert [(s.row.slug, s.split, s.seed) for s in specs] == [
        (r, sp, k) for r in rows for sp in ("CS", "CV") for k in (0, 1)]
    assert len({s.result_path for s in specs}) == len(specs)
    with pytest.raises(ValueError, match="split 'CSet' is not in the store"):
        study.plan("table3", "cs-t", study.Options(split="CSet", results_dir=tmp_path))


# --------------------------------------------------------------------------------------------------------------------
# Stores: one line for each way a data_root can be wrong
# --------------------------------------------------------------------------------------------------------------------
def _fake_store(root: Path, meta: str) -> Path:
    root.mkdir(parents=True)
    for name in ("splits.npz", "x.npy", "labels.npy"):
        (root / name).write_bytes(b"")
    (root / "meta.json").write_text(meta)
    return root


def test_resolve_store_refuses_what_is_not_a_finished_store_of_the_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta.json"):
        study.resolve_store("msr3d", tmp_path)
    with pytest.raises(ValueError, match="needs data_root"):
        study.resolve_store("ntu60")
    half = _fake_store(tmp_path / "half", json.dumps({"dataset": "msr3d", "complete": False}))
    with pytest.raises(ValueError, match=r"half: preparation did not finish"):
        study.resolve_store("msr3d", half)
    other = _fake_store(tmp_path / "other", json.dumps({"dataset": "msr3d", "complete": True}))
    with pytest.raises(ValueError, match=r"other holds a 'msr3d' store .*not 'ntu60'"):
        study.resolve_store("ntu60", other)
    assert study.resolve_store("msr3d", other) == other
    broken = _fake_store(tmp_path / "broken", "{not json")
    with pytest.raises(ValueError, match=r"broken/meta.json: not valid JSON \(line 1\)"):
        study.resolve_store("msr3d", broken)
    with pytest.raises(ValueError, match="unknown dataset 'ntu'"):
        study.resolve_store("ntu", other)


def test_table_splits_are_the_papers_that_the_store_has(synthetic_store):
    assert study.table_splits(ex.TABLE3, synthetic_store) == ["CS", "CV"]
    assert study.table_splits(ex.TABLE3, synthetic_store, "xview") == ["CV"]
    assert study.table_splits(ex.TABLE2, synthetic_store) == ["CS"]  # Kinetics' split absent: the first, a stand-in
    with pytest.raises(ValueError, match="split 'CSet' is not in the store"):
        study.table_splits(ex.TABLE3, synthetic_store, "CSet")


# --------------------------------------------------------------------------------------------------------------------
# run_table on the built-in synthetic set (one optimiser step)
# --------------------------------------------------------------------------------------------------------------------
# The committed studies
# --------------------------------------------------------------------------------------------------------------------
# results/<dataset>: each study trains with the recipe selected for its dataset (scale "study"); it is committed as
# its rows finish, so a study being trained holds fewer files than its protocol plans.
COMMITTED_STUDIES = ("msr3d", "nwucla", "sbu")


def test_a_result_written_before_the_identity_named_its_arithmetic_takes_it_from_its_device_block():
    old = {"trained_as": {"precision": "auto", "seed": 0}, "device": {"type": "cpu", "precision": "fp32"}}
    assert recorded_trained_as(old) == {"precision": "fp32", "device_type": "cpu", "seed": 0}
    new = {"trained_as": {"precision": "bf16", "device_type": "cuda"}, "device": {"type": "cpu", "precision": "fp32"}}
    assert recorded_trained_as(new) == new["trained_as"]  # a file that names it is taken as it is
    assert recorded_trained_as({"trained_as": {"precision": "auto"}}) == {"precision": "auto"}  # no device: as is


def _committed(dataset: str) -> list[Path]:
    return sorted(REPO.glob(f"results/{dataset}/table*/*__*__seed*.json"))


def test_the_committed_studies_hold_results():
    assert any(_committed(d) for d in COMMITTED_STUDIES), "no committed study result under results/<dataset>"


@pytest.mark.parametrize("dataset", COMMITTED_STUDIES)
def test_the_committed_study_is_what_the_code_trains_now(dataset):
    """Every result file of a committed study names the recipe and architecture it was trained with, and they are
    what its row's spec trains under the study's recipe with the code as it is; it was trained after its protocol
    was committed, and records that commit. A change to the dataset's recipe, a preset or anything else a row
    resolves to must come with the study trained again."""
    files = _committed(dataset)
    if not files:
        pytest.skip(f"results/{dataset}: no result yet")
    for f in files:
        rec = json.loads(f.read_text())
        assert "trained_as" in rec and rec["scale"] == "study" and rec["dataset"] == dataset, f
        s = study.spec(rec["table"], rec["row"], rec["split"], rec["seed"],
                       study.Options(dataset=rec["dataset"], scale=rec["scale"]), Path(rec["data_root"]))
        assert s.trained_as == recorded_trained_as(rec), (
            f"{f}: trained under another recipe or model than its row trains now, "
            f"{_differences(recorded_trained_as(rec), s.trained_as)}; train the study again")
        assert s.config.epochs == rec["epochs"] == recipes.RECIPES[dataset].epochs, f
        assert s.recipe == dataset and rec["bn_stats"] == "running", f
        assert rec["protocol"]["path"] == f"results/{dataset}/protocol.md" and rec["protocol"]["commit"], f


@pytest.mark.parametrize("dataset", COMMITTED_STUDIES)
def test_the_committed_study_tables_are_what_the_report_writes_from_its_results(dataset, tmp_path):
    """A study's committed tables (tableN.md, .csv, _claims.csv) and its claims.md are exactly what the report writes
    from its committed result files now: a change to the statistics, the verdicts or the table layout must come with
    the evidence written again (``slnl.report.build_report(folder)``, as the report notebook does)."""
    root = REPO / "results" / dataset
    if not _committed(dataset):
        pytest.skip(f"results/{dataset}: no result yet")
    claims = []
    for t in ex.TABLES.values():
        written = write_table(t.name, root, out_dir=tmp_path, dataset=dataset, scale="study")
        claims.append(written["claims"])
        for p in written["paths"].values():
            stale = f"results/{dataset}/tables/{p.name} is stale"
            assert p.read_text() == (root / "tables" / p.name).read_text(), stale
    assert (root / "tables" / "claims.md").read_text().endswith(claims_summary(claims)), f"{dataset}: claims.md"


# --------------------------------------------------------------------------------------------------------------------
# A configuration two processes ask for at once trains once
# --------------------------------------------------------------------------------------------------------------------
# The first process holds the configuration's lock inside fit() until the test has seen the second one wait for it.
_DRIVER = r'''
import sys, time
from pathlib import Path
from slnl import engine, study

real_fit = engine.fit


def fit_when_told(cfg):
    print("FIT", cfg.out, flush=True)
    go, t0 = Path(sys.argv[3]), time.time()
    while not go.exists() and time.time() - t0 < 120:
        time.sleep(0.05)
    return real_fit(cfg)


engine.fit = fit_when_told
study.run_table(sys.argv[1], sys.argv[2], split="CS", epochs=1, max_steps_per_epoch=1, results_dir=sys.argv[4],
                log=lambda m: print(m, flush=True))
'''


def _read_until(proc: subprocess.Popen, marker: str) -> list[str]:
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"{marker!r} never printed:\n" + "".join(lines))


def test_shared_configuration_trains_once_when_two_processes_ask_at_once(tmp_path):
    """Table 5's rFA row and Table 6's Local row are one configuration (Baseline4): started together, one process
    trains it and the other waits on its lock, then reuses the finished run."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    results, go = tmp_path / "results", tmp_path / "go"

    def start(tbl, row):
        return subprocess.Popen([sys.executable, "-c", _DRIVER, tbl, row, str(go), str(results)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    a = start("table5", "rfa")
    try:
        _read_until(a, "FIT")  # a holds the lock
        b = start("table6", "local")
        try:
            b_lines = _read_until(b, "waiting for another process training the same configuration")
            go.touch()
            b_lines += b.communicate(timeout=300)[0].splitlines(keepends=True)
        finally:
            b.kill()
        a_out = a.communicate(timeout=300)[0]
    finally:
        a.kill()
    assert a.returncode == 0 and b.returncode == 0, a_out + "".join(b_lines)
    assert not any(line.startswith("FIT") for line in b_lines), "".join(b_lines)
    t5 = json.loads((results / "table5" / "rfa__CS__seed0.json").read_text())
    t6 = json.loads((results / "table6" / "local__CS__seed0.json").read_text())
    assert t6["reused_from"] == str(results / "table5" / "rfa__CS__seed0.json")
    assert (t6["top1"], t6["run_dir"]) == (t5["top1"], t5["run_dir"]) and "reused_from" not in t5
    assert sorted(p.name for p in (results / "runs").iterdir()) == [".locks", "table5"]  # one run directory
    assert not list((results / "runs" / ".locks").iterdir())


def test_a_results_folder_moved_with_its_store_is_taken_as_it_is(tmp_path, monkeypatch):
    """Result files name the store and the run directory relative to home() (as run_dir and data_root do), so that a
    working directory copied elsewhere (a clone with its committed results) names no machine's directories: its
    finished rows are skipped, and another table's identical row reuses them, without training."""
    here, there = tmp_path / "here", tmp_path / "there"
    monkeypatch.setenv("SLNL_HOME", str(here))
    make_tiny_store(here / "data" / "tiny", seed=0, dataset="npz")
    kw = _tiny("res", dataset="npz", data_root="data/tiny")
    (rec,) = study.run_table("table3", "cs-t", **kw)
    assert (rec["fit_config"]["data"], rec["fit_config"]["out"]) == ("data/tiny", "res/runs/table3/cs-t__CS__seed0")
    assert (rec["data_root"], rec["run_dir"]) == ("data/tiny", "res/runs/table3/cs-t__CS__seed0")
    assert str(tmp_path) not in (here / "res" / "table3" / "cs-t__CS__seed0.json").read_text()

    shutil.copytree(here, there)
    shutil.rmtree(here)
    monkeypatch.setenv("SLNL_HOME", str(there))
    _no_training(monkeypatch)
    assert study.run_table("table3", "cs-t", **kw)[0]["top1"] == rec["top1"]
    (ce,) = study.run_table("table4", "ce", **kw)
    assert (ce["reused_from"], ce["top1"]) == ("res/table3/cs-t__CS__seed0.json", rec["top1"])  # relative, too


# --------------------------------------------------------------------------------------------------------------------
# A result is reused only on the data it was computed on
# --------------------------------------------------------------------------------------------------------------------
def test_a_result_is_reused_only_on_the_store_it_was_computed_on(tmp_path, monkeypatch):
    store = make_tiny_store(tmp_path / "store", seed=0, dataset="npz")  # npz: a user's own data
    kw = _tiny(tmp_path, dataset="npz", data_root=store)
    (rec,) = study.run_table("table3", "cs-t", **kw)
    result = json.loads((resolve_path(rec["run_dir"]) / "result.json").read_text())
    assert rec["store_fingerprint"] == fingerprint(store) == result["store_fingerprint"]

    make_tiny_store(store, seed=1, dataset="npz")  # prepared again in place: same path, other clips
    assert fingerprint(store) != rec["store_fingerprint"]
    _no_training(monkeypatch, "nothing may train before the refusal")
    path = tmp_path / "table3" / "cs-t__CS__seed0.json"
    refused = re.escape(f"{path} was computed on other data")
    with pytest.raises(StoreChangedError, match=f"^{refused} .*{re.escape(str(store))} as it is now.*"
                                                r"re-run it with overwrite"):
        study.run_table("table3", "cs-t", **kw)
    with pytest.raises(StoreChangedError, match=f"^{refused}"):
        study.run_table("table4", "ce", **kw)  # the same configuration in another table is not reused either
    assert not (tmp_path / "table4" / "ce__CS__seed0.json").exists()
    params = {k: v for k, v in kw.items() if k != "log"}
    with pytest.raises(StoreChangedError, match=f"^{refused}"):
        sweep.row_tasks([(ex.table("table3"), ex.rows("table3", "cs-t"))], params, tmp_path)  # refused before it runs

    # The same clips at another path (a clone of the repository, a store prepared elsewhere) are the same data: the
    # finished row is taken, by run_table and by a sweep, without training.
    moved = make_tiny_store(tmp_path / "elsewhere", seed=0, dataset="npz")  # the clips the result was computed on
    assert fingerprint(moved) == rec["store_fingerprint"]
    assert study.run_table("table3", "cs-t", **dict(kw, data_root=moved))[0]["top1"] == rec["top1"]
    assert sweep.row_tasks([(ex.table("table3"), ex.rows("table3", "cs-t"))], dict(params, data_root=moved),
                           tmp_path) == []

    legacy = {k: v for k, v in rec.items() if k != "store_fingerprint"}
    path.write_text(json.dumps(legacy))
    with pytest.raises(StoreChangedError, match="records no store fingerprint"):
        study.run_table("table3", "cs-t", **kw)
