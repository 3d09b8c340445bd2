"""slnl.experiments: the paper's tables as data (checked against the paper's text), row selection; slnl.study: run
configs, scales from the engine's protocol, store checks, and run_table's result files / skip / reuse behaviour on a
real (tiny) training run, also with two processes asking for the same configuration at once."""
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

from slnl import experiments as ex
from slnl import study, sweep
from slnl.data.errors import StoreChangedError
from slnl.data.store import fingerprint
from slnl.engine.config import PROTOCOL, TrainConfig
from slnl.losses import LOSS_PARAMS, loss_params, make_loss
from slnl.models import PRESETS
from slnl.report import claims_summary, write_table
from slnl.utils import resolve_path
from test_engine_fit import make_tiny_store

NTU_TABLES = ("table1", "table3", "table4", "table5", "table6")


# --------------------------------------------------------------------------------------------------------------------
# The numbers are the paper's
# --------------------------------------------------------------------------------------------------------------------
def _paper_pairs(text: str) -> list[tuple[float, float]]:
    """Every table line of the paper that ends in two percentages, in reading order."""
    pairs = []
    for line in text.splitlines():
        m = re.match(r"^\s*\S.*?\s(\d{1,2}\.\d)\s+(\d{1,2}\.\d)\s*$", line)
        if m:
            pairs.append((float(m.group(1)), float(m.group(2))))
    return pairs


def test_every_table_matches_the_paper_text(shared_data):
    """Each table's rows, in order, are a contiguous run of the paper's number lines (Tables 1–6 of paper.txt)."""
    paper = shared_data.parent / "paper.txt"
    if not paper.is_file():
        pytest.skip(f"{paper} not found")
    pairs = _paper_pairs(paper.read_text())
    for t in ex.TABLES.values():
        ours = [tuple(r.paper[c] for c in t.columns) for r in t.rows]
        hits = [i for i in range(len(pairs) - len(ours) + 1) if pairs[i:i + len(ours)] == ours]
        assert hits, f"{t.name}: {ours} is not a run of the paper's table lines"


def test_shape_of_the_data():
    assert list(ex.TABLES) == [f"table{i}" for i in range(1, 7)]
    for t in ex.TABLES.values():
        slugs = [r.slug for r in t.rows]
        assert len(set(slugs)) == len(slugs), t.name
        assert all(re.fullmatch(r"[a-z0-9.\-]+", s) for s in slugs), slugs  # safe in file names
        for r in t.rows:
            assert set(r.paper) == set(t.columns), (t.name, r.slug)
            assert r.runnable == bool(r.settings), (t.name, r.slug)  # reference rows have no settings
    assert [len(ex.rows(t)) for t in ex.TABLES.values()] == [1, 1, 7, 7, 5, 9]
    assert sum(not r.runnable for r in ex.TABLE1.rows) == 8 and sum(not r.runnable for r in ex.TABLE2.rows) == 4
    assert {t: ex.table(t).baseline.slug for t in ("table3", "table4", "table5", "table6")} == {
        "table3": "posvel-n", "table4": "ce", "table5": "none", "table6": "local"}


def test_claims_are_what_the_paper_numbers_show():
    for t in ex.TABLES.values():
        for c in t.claims:
            b, w = t.row(c.better), t.row(c.worse)
            assert b.runnable, (t.name, c)
            for col in c.columns:
                assert b.paper[col] > w.paper[col], (t.name, c.better, c.worse, col)
            for col, margin in c.margin.items():  # "by 2.6% (CS) and 3.8% (CV)" etc.
                assert b.paper[col] - w.paper[col] == pytest.approx(margin, abs=1e-9), (t.name, c)


def test_tables_chain_as_the_paper_says():
    """Rows that are the same model in two tables have the same settings on each split and the same numbers —
    with the per-split adoption the paper's numbers are consistent (module docstring)."""
    t1, t3, t4, t5, t6 = (ex.table(n) for n in NTU_TABLES[:1] + NTU_TABLES[1:])
    same = [((t3, "cs-t"), (t4, "ce"), ("CS", "CV")), ((t5, "rfa"), (t6, "local"), ("CS", "CV")),
            ((t4, "smfl-2-0.4"), (t5, "none"), ("CS",)), ((t4, "smfl-2-0.6"), (t5, "none"), ("CV",)),
            ((t6, "slnl-5"), (t1, "slnl-rfa"), ("CS",)), ((t6, "slnl-3"), (t1, "slnl-rfa"), ("CV",))]
    for (ta, a), (tb, b), splits in same:
        ra, rb = ta.row(a), tb.row(b)
        for s in splits:
            ca, cb = (study.row_config(t, r, s, scale="paper") for t, r in ((ta, ra), (tb, rb)))
            ca.pop("out"), cb.pop("out")
            assert ca == cb, (a, b, s)
            assert ra.paper[s] == rb.paper[s], (a, b, s)
    # Table 6's adopted rows are Table 1's numbers, and they are the best of Table 6 on their split.
    assert {r.slug for r in t6.adopted} == {"slnl-3", "slnl-5"}
    assert max(r.paper["CS"] for r in t6.rows) == t6.row("slnl-5").paper["CS"] == t1.row("slnl-rfa").paper["CS"]
    assert max(r.paper["CV"] for r in t6.rows) == t6.row("slnl-3").paper["CV"] == t1.row("slnl-rfa").paper["CV"]
    assert t1.row("slnl-rfa").settings_for("CS")["m1"] == 5 and t1.row("slnl-rfa").settings_for("CV")["m1"] == 3
    # The paper's label typo is recorded, the row is run local-only.
    assert t6.row("local").settings["m1"] == 0 and "typo" in " ".join(t6.notes)


@pytest.mark.parametrize("name", list(ex.TABLES))
def test_every_runnable_row_builds_and_runs_forward(name):
    from slnl.models import build

    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 25, 2)
    for r in ex.rows(name):
        for split in ("CS", "CV"):
            cfg = study.row_config(name, r, split, scale="cpu", dataset="synthetic", data_root=None)
            model = build(cfg["preset"], num_classes=12, **cfg["model"]).eval()
            for k, v in cfg["model"].items():
                assert getattr(model.config, k) == v
            with torch.no_grad():
                heads = model(x)
            assert heads.c.shape == (2, 12) and torch.isfinite(heads.c).all()
            single = r.settings["transform"] in ("Pos-N", "Vel-N")
            assert (heads.p is None) == single and (heads.v is None) == single


# --------------------------------------------------------------------------------------------------------------------
# Selection and configs
# --------------------------------------------------------------------------------------------------------------------
def test_row_selection():
    t6 = ex.table(6)
    assert [r.slug for r in ex.rows(t6, m1=3)] == ["slnl-3"]
    assert [r.slug for r in ex.rows(t6, m1=0)] == ["local"]
    assert [r.slug for r in ex.rows(t6, m1=1, affinity="tSLnL")] == ["tslnl-1"]
    assert [r.slug for r in ex.rows(t6, affinity="SLnL")] == [f"slnl-{k}" for k in range(1, 7)]
    assert [r.slug for r in ex.rows("table3", "cs-t, Pos-N")] == ["pos-n", "cs-t"]  # paper order, labels accepted
    assert [r.slug for r in ex.rows(1, runnable=None)][-1] == "slnl-rfa" and len(ex.rows(1, runnable=False)) == 8
    with pytest.raises(KeyError, match="cs-t"):  # the error lists the valid slugs
        ex.rows("table3", "cst")
    with pytest.raises(ValueError, match="M1=7"):
        ex.rows(t6, m1=7)
    assert ex.table("Table 4") is ex.table(4) is ex.table("4")
    with pytest.raises(KeyError, match="table7"):
        ex.table("table7")


def test_row_config_is_a_valid_train_config():
    for t in ex.TABLES.values():
        for r in ex.rows(t):
            cfg = TrainConfig.from_dict(study.row_config(t, r, "CS", seed=3, scale="paper", dataset="synthetic"))
            cfg.validate()
            assert cfg.seed == 3 and cfg.split == "xsub"
            s = r.settings_for("CS")
            assert cfg.loss == s["loss"]
            assert cfg.gamma == (s.get("gamma", 0.0) if s["loss"] in ("FL", "SMFL") else 0.0)
            assert cfg.m == (s.get("m", 0.0) if s["loss"] in ("SMCE", "SMFL") else 0.0)
    # §4.1 at the paper scale: the dataset's protocol; a stand-in dataset uses the table's.
    c = study.row_config("table5", "rfa", "CV", scale="paper", dataset="synthetic")
    assert (c["preset"], c["epochs"], c["batch_size"], c["m"], c["split"]) == ("ntu", 300, 32, 0.6, "xview")
    c = study.row_config("table2", "slnl-rfa", "CS", scale="paper", dataset="synthetic")
    assert (c["preset"], c["epochs"], c["batch_size"], c["model"]["m1"]) == ("kinetics", 100, 128, 5)
    c = study.row_config("table4", "fl-3", "CS", scale="cpu", epochs=2, batch_size=8, max_steps_per_epoch=1)
    assert (c["preset"], c["epochs"], c["batch_size"], c["max_steps_per_epoch"], c["gamma"], c["m"]) == (
        "cpu", 2, 8, 1, 3.0, 0.0)
    assert c["out"].endswith("runs/table4/fl-3__CS__seed0")
    with pytest.raises(ValueError, match="published reference"):
        study.row_config("table1", "hcn", "CS")
    with pytest.raises(ValueError, match="needs data_root"):
        study.row_config("table3", "cs-t", "CS", dataset="ntu60")
    with pytest.raises(ValueError, match="unknown split"):
        ex.split_label("cross-subject")


def test_adopted_settings_are_table1_and_table2s_rows_per_split():
    """One place for the adopted m and M1 (ADOPTED, through Table 1's / Table 2's SLnL-rFA rows)."""
    assert ex.adopted("CS") == {"m": 0.4, "m1": 5} == ex.adopted("xsub")
    assert ex.adopted("CV") == {"m": 0.6, "m1": 3} == ex.adopted("xview")
    assert ex.adopted("default", "kinetics") == {"m": 0.4, "m1": 5}  # Table 2: the CS-adopted setting
    # splits without their own entry (NTU-120's CSet, an .npz store's own split name) use CS's
    assert ex.adopted("xset") == ex.adopted("my-split") == ex.adopted("CS")
    for split in ("CS", "CV"):
        assert ex.adopted(split) == {k: ex.ADOPTED[split][k] for k in ("m", "m1")}
        s = ex.row_settings("table1", "slnl-rfa", split)
        assert (s["m"], s["model"]["m1"]) == (ex.adopted(split)["m"], ex.adopted(split)["m1"])
    with pytest.raises(ValueError, match="family"):
        ex.adopted("CS", "imagenet")


def test_row_settings_are_what_row_config_trains():
    for t in ex.TABLES.values():
        for r in ex.rows(t):
            for split in ("CS", "CV"):
                s, c = ex.row_settings(t, r, split), study.row_config(t, r, split, scale="paper")
                assert s == {k: c[k] for k in ("model", "loss", "gamma", "m")}
    with pytest.raises(ValueError, match="published reference"):
        ex.row_settings("table1", "hcn", "CS")


def test_pa_lstm_numbers_are_the_papers_with_the_swap_noted():
    r = ex.TABLE1.row("pa-lstm")
    assert r.paper == {"CS": 70.3, "CV": 62.9}  # as printed in the paper's Table 1
    assert "62.93" in r.note and "70.27" in r.note and r.note in ex.TABLE1.notes


def test_paper_as_data_does_not_import_the_engine():
    """slnl.engine.config imports slnl.experiments (the adopted settings); the reverse at import time would be a
    cycle."""
    code = "import sys, slnl.experiments; assert 'slnl.engine' not in sys.modules, sorted(sys.modules)"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_result_path_and_splits(tmp_path):
    path = study.result_path("results", "table6", "slnl-3", "xview", 2)
    assert path.as_posix() == "results/table6/slnl-3__CV__seed2.json"
    assert ex.store_split("CS") == "xsub" and ex.split_label("xset") == "CSet"
    assert ex.parse_list("0, 1;2", int) == [0, 1, 2] and ex.parse_list(0, int) == [0] and ex.parse_list(None) == []
    assert "STAND-IN" in ex.stand_in_note(ex.TABLE2, "synthetic") and ex.stand_in_note(ex.TABLE2, "kinetics") == ""
    assert ex.stand_in_note(ex.TABLE3, "ntu60") == "" and "msr3d" in ex.stand_in_note(ex.TABLE3, "msr3d")
    with pytest.raises(FileNotFoundError, match="meta.json"):
        study.resolve_store("msr3d", tmp_path)


# --------------------------------------------------------------------------------------------------------------------
# run_table on the built-in synthetic set (one optimiser step)
# --------------------------------------------------------------------------------------------------------------------
def test_run_table_writes_skips_and_reuses(tmp_path, monkeypatch):
    kw = dict(split="CS", epochs=1, max_steps_per_epoch=1, results_dir=tmp_path, log=lambda *_: None)
    (rec,) = study.run_table("table3", "cs-t", **kw)
    path = tmp_path / "table3" / "cs-t__CS__seed0.json"
    saved = json.loads(path.read_text())
    assert saved == json.loads(json.dumps(rec))
    for k in ("table", "row", "split", "seed", "top1", "top5", "settings", "run_dir", "dataset", "scale", "epochs"):
        assert k in saved
    assert (saved["table"], saved["row"], saved["split"], saved["seed"], saved["epochs"]) == ("table3", "cs-t", "CS",
                                                                                            0, 1)
    result = json.loads((resolve_path(saved["run_dir"]) / "result.json").read_text())
    assert (saved["top1"], saved["top5"]) == (result["top1"], result["top5"])
    assert result["config"]["model"]["transform"] == "CS-T" and result["config"]["loss"] == "CE"

    # A finished row is skipped without training; Table 4's CE is the same model and reuses that run.
    def no_training(cfg):
        raise AssertionError(f"fit() must not be called, got {cfg['out']}")

    monkeypatch.setattr(study.engine, "fit", no_training)
    assert study.run_table("table3", "cs-t", **kw)[0]["top1"] == saved["top1"]
    (ce,) = study.run_table("table4", "ce", **kw)
    assert ce["reused_from"] == str(path) and ce["top1"] == saved["top1"] and ce["run_dir"] == saved["run_dir"]
    assert (tmp_path / "table4" / "ce__CS__seed0.json").is_file()
    # The same file asked with another configuration is an error, not a silent skip.
    with pytest.raises(ValueError, match="epochs: file has 1, asked 2"):
        study.run_table("table3", "cs-t", **dict(kw, epochs=2))
    with pytest.raises(ValueError, match="split 'CSet' is not in the store"):
        study.run_table("table3", "cs-t", **dict(kw, split="CSet"))
    assert not list((tmp_path / "runs" / ".locks").iterdir())  # every lock was given back and removed


def test_a_result_is_reused_only_under_the_protocol_and_architecture_it_was_trained_with(tmp_path, monkeypatch):
    """A row's fit configuration names the preset, not the preset's layers nor the protocol's rate, decay and
    evaluation batch: those come from PRESETS and PROTOCOL. A result file records them (``trained_as``), so that a
    result trained before either was changed is refused by name, not reported as the configuration trained now."""
    kw = dict(split="CS", epochs=1, max_steps_per_epoch=1, results_dir=tmp_path, log=lambda *_: None)
    (rec,) = study.run_table("table3", "cs-t", **kw)
    result = json.loads((resolve_path(rec["run_dir"]) / "result.json").read_text())
    ran, built = result["config"], result["model_config"]
    for k in ("lr", "lr_decay", "weight_decay", "batch_size", "eval_batch_size", "bn_stats", "seed"):
        assert rec["trained_as"][k] == ran[k], k  # what the run itself resolved
    assert rec["trained_as"]["architecture"] == {k: v for k, v in built.items() if k not in (
        "num_classes", "num_joints", "in_channels", "num_persons")}  # what it built, the store's shapes left out
    assert rec["trained_as"] == json.loads(json.dumps(rec["trained_as"]))  # stored as it is compared

    monkeypatch.setattr(study.engine, "fit", lambda cfg: pytest.fail("nothing may train"))
    assert study.run_table("table3", "cs-t", **kw)[0]["top1"] == rec["top1"]  # unchanged code: skipped
    path = tmp_path / "table3" / "cs-t__CS__seed0.json"
    cfg = study.row_config("table4", "ce", "CS", epochs=1, max_steps_per_epoch=1, results_dir=tmp_path)
    assert study._find_equivalent(tmp_path, cfg, study.trained_as(cfg), tmp_path / "x.json")["_path"] == str(path)

    decay = PROTOCOL["cpu"]["lr_decay"]
    monkeypatch.setitem(PROTOCOL["cpu"], "lr_decay", decay / 2)
    with pytest.raises(ValueError, match=rf"^{path} holds a result of a different configuration \(trained_as."
                                         rf"lr_decay: file has {decay}, asked {decay / 2}\)"):
        study.run_table("table3", "cs-t", **kw)
    # nor taken for another table's row
    assert study._find_equivalent(tmp_path, cfg, study.trained_as(cfg), tmp_path / "x.json") is None
    params = {k: v for k, v in kw.items() if k != "log"}
    with pytest.raises(ValueError, match=r"trained_as.lr_decay"):  # a sweep refuses before it runs anything
        sweep.row_tasks([(ex.table("table3"), ex.rows("table3", "cs-t"))], params, tmp_path)
    monkeypatch.setitem(PROTOCOL["cpu"], "lr_decay", decay)

    joints = PRESETS["cpu"].new_joints
    monkeypatch.setitem(PRESETS, "cpu", dataclasses.replace(PRESETS["cpu"], new_joints=joints + 1))
    with pytest.raises(ValueError, match=rf"trained_as.architecture.new_joints: file has {joints}, asked {joints + 1}"):
        study.run_table("table3", "cs-t", **kw)


# The committed MSR Action3D studies: (folder, scale, finished). A finished study holds STUDY_FILES result files
# (Tables 1 and 3-6, every runnable row, seeds 0-4, and Table 2's row reused from Table 1); a study being trained
# is committed as its rows finish, so it may hold fewer.
STUDY_FILES = 150
COMMITTED_STUDIES = (("results/msr3d", "small", True), ("results/msr3d-long", "small-long", True))


@pytest.mark.parametrize("folder,scale,finished", COMMITTED_STUDIES)
def test_the_committed_study_is_what_the_code_trains_now(folder, scale, finished):
    """Every result file of a committed MSR Action3D study names the protocol and architecture it was trained with,
    and they are the ones its row trains at its scale under the code as it is: a change to PROTOCOL["small"],
    PRESETS["small"] or the scale (or to anything else a row resolves to) must come with the study trained again."""
    files = sorted(Path(__file__).resolve().parents[1].glob(f"{folder}/table*/*__*__seed*.json"))
    assert len(files) == STUDY_FILES if finished else len(files) <= STUDY_FILES
    for f in files:
        rec = json.loads(f.read_text())
        assert "trained_as" in rec, f
        now = study.trained_as(rec["fit_config"])
        assert rec["trained_as"] == now, (f"{f}: trained under another protocol or model than its row trains now, "
                                          f"{study._differences(rec['trained_as'], now)}; train the study again "
                                          "(README: make reproduce DATASET=msr3d ...)")
        assert rec["trained_as"]["preset"] == "small" and rec["scale"] == scale
        sc = study.SCALES[scale]
        assert rec["epochs"] == sc.epochs["ntu"]
        assert now["lr_decay"] == sc.lr_decay.get("ntu", PROTOCOL["small"]["lr_decay"])


@pytest.mark.parametrize("folder,scale", [(f, s) for f, s, finished in COMMITTED_STUDIES if finished])
def test_the_committed_study_tables_are_what_the_report_writes_from_its_results(folder, scale, tmp_path):
    """A finished study's committed tables (tableN.md, .csv, _claims.csv) and its claims.md are exactly what the
    report writes from its committed result files now: a change to the statistics, the verdicts or the table layout
    must come with the evidence written again (``slnl.report.build_report(folder)``, as the report notebook does)."""
    root = Path(__file__).resolve().parents[1] / folder
    claims = []
    for t in ex.TABLES.values():
        written = write_table(t.name, root, out_dir=tmp_path, dataset="msr3d", scale=scale)
        claims.append(written["claims"])
        for p in written["paths"].values():
            assert p.read_text() == (root / "tables" / p.name).read_text(), f"{folder}/tables/{p.name} is stale"
    assert (root / "tables" / "claims.md").read_text().endswith(claims_summary(claims)), f"{folder}: claims.md"


def test_small_long_scale_is_the_small_scale_at_twice_the_schedule():
    """`small-long` trains what `small` trains, for twice the epochs with the decay stretched to match: the schedule
    still ends near §4.1's final rate. Its rows are other configurations (never reused for a `small` row)."""
    kw = dict(dataset="synthetic", results_dir="results")
    short = study.row_config("table1", "slnl-rfa", "CS", 0, scale="small", **kw)
    long = study.row_config("table1", "slnl-rfa", "CS", 0, scale="small-long", **kw)
    assert "lr_decay" not in short  # the protocol's
    assert long["epochs"] == 2 * short["epochs"] and long["lr_decay"] == study.SMALL_LONG_DECAY
    a, b = study.trained_as(short), study.trained_as(long)
    assert study._differences(a, b) == {"lr_decay": (PROTOCOL["small"]["lr_decay"], study.SMALL_LONG_DECAY)}
    paper_end = PROTOCOL["ntu"]["lr_decay"] ** PROTOCOL["ntu"]["epochs"]
    assert paper_end / 3 <= study.SMALL_LONG_DECAY ** long["epochs"] <= paper_end * 3
    assert study.config_key(short) != study.config_key(long)
    assert f"{long['epochs']} epochs" in study.SCALES["small-long"].description


# --------------------------------------------------------------------------------------------------------------------
# One definition per rule
# --------------------------------------------------------------------------------------------------------------------
def test_paper_scale_is_the_engine_protocol():
    """§4.1 is written once (slnl.engine.config.PROTOCOL); the paper scale is those numbers."""
    paper = study.SCALES["paper"]
    for family in ("ntu", "kinetics"):
        assert paper.presets[family] == family
        assert (paper.epochs[family], paper.batch_size[family]) == (PROTOCOL[family]["epochs"],
                                                                    PROTOCOL[family]["batch_size"])
    assert (paper.epochs["ntu"], paper.batch_size["ntu"], paper.epochs["kinetics"], paper.batch_size["kinetics"]) == (
        300, 32, 100, 128)  # §4.1: "300 epochs ... batch size 32" (NTU), "100 epochs ... 128" (Kinetics)
    # the runner lives in slnl.study only; the tables module holds no second copy of it
    for gone in ("DATASETS", "LOSS_KEYS", "store_meta", "store_splits", "select_rows", "SCALES", "run_table",
                 "row_config", "result_path", "repo_path"):
        assert not hasattr(ex, gone), gone


def test_small_scale_keeps_the_paper_optimiser_and_its_overall_decay():
    """The `small` scale compresses §4.1's schedule without changing what it does: Adam at the paper's rate and weight
    decay, the whole decay (0.98**300) within a factor of 3 at its last epoch, so the reported last epoch is a
    converged model; its preset is the `small` model and the protocol's eval cadence reaches the config."""
    small, ntu = PROTOCOL["small"], PROTOCOL["ntu"]
    sc = study.SCALES["small"]
    for family in ("ntu", "kinetics"):
        assert sc.presets[family] == "small"
        assert (sc.epochs[family], sc.batch_size[family]) == (small["epochs"], small["batch_size"])
    assert (small["lr"], small["weight_decay"]) == (ntu["lr"], ntu["weight_decay"])
    paper_end = ntu["lr_decay"] ** ntu["epochs"]
    assert paper_end / 3 <= small["lr_decay"] ** small["epochs"] <= paper_end * 3
    assert f"{small['epochs']} epochs" in sc.description
    assert TrainConfig(preset="small").resolve().eval_every == small["eval_every"] > 1
    assert TrainConfig(preset="ntu").resolve().eval_every == 1
    assert TrainConfig(preset="small", eval_every=2).resolve().eval_every == 2  # an explicit value wins
    # the protocol's evaluation batch (also the BN statistics pass's) reaches the config; elsewhere it is the batch
    assert TrainConfig(preset="small").resolve().eval_batch_size == small["eval_batch_size"] != small["batch_size"]
    assert TrainConfig(preset="cpu").resolve().eval_batch_size == PROTOCOL["cpu"]["batch_size"]
    assert PRESETS["small"].T == 16 and PRESETS["small"].channels == PRESETS["cpu"].channels
    assert set(PRESETS) == set(PROTOCOL)  # every protocol has its model preset


def test_one_loss_parameter_rule():
    """CE/FL have no m, CE/SMCE no gamma: LOSS_PARAMS is what the rows, the saved config and the loss all follow, and
    dropping a parameter is exact (SMCE with any gamma is the same function as SMFL with gamma 0)."""
    assert LOSS_PARAMS == {"CE": (), "FL": ("gamma",), "SMCE": ("m",), "SMFL": ("gamma", "m")}
    for name, uses in LOSS_PARAMS.items():
        want = {"gamma": 3.0 if "gamma" in uses else 0.0, "m": 0.5 if "m" in uses else 0.0}
        assert loss_params(name, 3.0, 0.5) == want
        fn = make_loss(name, gamma=3.0, m=0.5)
        assert (fn.gamma, fn.m) == (want["gamma"], want["m"])
        cfg = TrainConfig(preset="cpu", loss=name, gamma=3.0, m=0.5, split="xsub").resolve()
        assert (cfg.gamma, cfg.m) == (want["gamma"], want["m"])
    for t in ex.TABLES.values():
        for r in ex.rows(t):
            s = ex.row_settings(t, r, "CS")
            assert {k: s[k] for k in ("gamma", "m")} == loss_params(s["loss"], s["gamma"], s["m"])
    torch.manual_seed(0)
    logits, y = torch.randn(64, 12, dtype=torch.float64) * 4, torch.randint(0, 12, (64,))
    torch.testing.assert_close(make_loss("SMCE", 3.0, 0.5).per_sample(logits, y),
                               make_loss("SMFL", 0.0, 0.5).per_sample(logits, y), rtol=0, atol=0)
    torch.testing.assert_close(make_loss("FL", 3.0, 0.5).per_sample(logits, y),
                               make_loss("SMFL", 3.0, 0.0).per_sample(logits, y), rtol=0, atol=0)


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
    print("FIT", cfg["out"], flush=True)
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
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent), OMP_NUM_THREADS="1")
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
    kw = dict(dataset="npz", data_root="data/tiny", split="CS", epochs=1, max_steps_per_epoch=1, results_dir="res",
              log=lambda *_: None)
    (rec,) = study.run_table("table3", "cs-t", **kw)
    assert (rec["fit_config"]["data"], rec["fit_config"]["out"]) == ("data/tiny", "res/runs/table3/cs-t__CS__seed0")
    assert str(tmp_path) not in (here / "res" / "table3" / "cs-t__CS__seed0.json").read_text()

    shutil.copytree(here, there)
    shutil.rmtree(here)
    monkeypatch.setenv("SLNL_HOME", str(there))
    monkeypatch.setattr(study.engine, "fit", lambda cfg: pytest.fail(f"nothing may train, got {cfg['out']}"))
    assert study.run_table("table3", "cs-t", **kw)[0]["top1"] == rec["top1"]
    (ce,) = study.run_table("table4", "ce", **kw)
    assert (ce["reused_from"], ce["top1"]) == (str(there / "res" / "table3" / "cs-t__CS__seed0.json"), rec["top1"])


# --------------------------------------------------------------------------------------------------------------------
# A result is reused only on the data it was computed on
# --------------------------------------------------------------------------------------------------------------------
def test_a_result_is_reused_only_on_the_store_it_was_computed_on(tmp_path, monkeypatch):
    store = make_tiny_store(tmp_path / "store", seed=0, dataset="npz")  # npz: a user's own data
    kw = dict(dataset="npz", data_root=store, split="CS", epochs=1, max_steps_per_epoch=1, results_dir=tmp_path,
              log=lambda *_: None)
    (rec,) = study.run_table("table3", "cs-t", **kw)
    result = json.loads((resolve_path(rec["run_dir"]) / "result.json").read_text())
    assert rec["store_fingerprint"] == fingerprint(store) == result["store_fingerprint"]

    make_tiny_store(store, seed=1, dataset="npz")  # prepared again in place: same path, other clips
    assert fingerprint(store) != rec["store_fingerprint"]
    monkeypatch.setattr(study.engine, "fit", lambda cfg: pytest.fail("nothing may train before the refusal"))
    path = tmp_path / "table3" / "cs-t__CS__seed0.json"
    with pytest.raises(StoreChangedError, match=rf"^{path} was computed on other data .*{store} as it is now.*"
                                                 r"re-run it with overwrite"):
        study.run_table("table3", "cs-t", **kw)
    with pytest.raises(StoreChangedError, match=rf"^{path} was computed on other data"):
        study.run_table("table4", "ce", **kw)  # the same configuration in another table is not reused either
    assert not (tmp_path / "table4" / "ce__CS__seed0.json").exists()
    params = {k: v for k, v in kw.items() if k != "log"}
    with pytest.raises(StoreChangedError, match=rf"^{path} was computed on other data"):
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
