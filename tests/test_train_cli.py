"""`slnl train` and fit() train what the paper adopted: m and M1 per split (CS: 0.4, 5; CV: 0.6, 3; Kinetics: Table
2's row), explicit values win, `--row TABLE/ROW` is exactly that row, `--dry-run` prints the resolved configuration and
touches nothing."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from slnl import experiments as ex
from slnl import study
from slnl.data import synthetic
from slnl.data.store import write_store
from slnl.engine import cli
from slnl.engine.config import TrainConfig
from slnl.recipes import config_for

REPO = Path(__file__).resolve().parent.parent


def _dry(capsys, *args) -> dict:
    assert cli.main(["train", *args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    return yaml.safe_load(out)


def _slnl(*args, timeout=120) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "slnl", "train", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


# ------------------------------------------------------------------------------------------------------ acceptance
@pytest.mark.parametrize("args,split,m,m1", [
    (["--preset", "ntu", "--split", "CS"], "xsub", 0.4, 5),
    (["--preset", "ntu", "--split", "CV"], "xview", 0.6, 3),
    (["--row", "table6/slnl-2", "--split", "CV"], "xview", 0.6, 2),
])
def test_dry_run_shows_the_adopted_m_and_m1_of_the_split(capsys, args, split, m, m1):
    cfg = _dry(capsys, *args)
    assert (cfg["preset"], cfg["split"], cfg["m"], cfg["model"]["m1"]) == ("ntu", split, m, m1)
    # every TrainConfig field is shown, with "auto" precision resolved for this machine's device
    assert set(cfg) == set(config_for("ntu").to_dict()) | {"model_config"}
    # and every field of the model that would be built
    assert (cfg["model_config"]["m1"], cfg["model_config"]["new_joints"]) == (m1, 64)
    expected = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    assert cfg["precision"] == expected


def test_the_real_command_line_prints_yaml_and_exits_0():
    r = _slnl("--preset", "ntu", "--split", "CV", "--dry-run")
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(r.stdout)
    assert (cfg["m"], cfg["model"]["m1"], cfg["split"], cfg["epochs"], cfg["batch_size"]) == (0.6, 3, "xview", 300, 32)


def test_unknown_row_is_one_line_naming_the_rows_without_traceback():
    r = _slnl("--row", "table6/slnl-9", "--split", "CV", "--dry-run")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "slnl-9" in lines[0] and all(row.slug in lines[0] for row in ex.TABLE6.rows)
    assert r.stdout == ""


@pytest.mark.parametrize("row,needle", [
    ("table1/hcn", "slnl-rfa"),  # a published number, not a model: the runnable rows are named
    ("table7/x", "table6"),  # unknown table: the tables are named
    ("table6", "TABLE/ROW"),  # no row
])
def test_bad_row_is_one_clear_line(capsys, row, needle):
    assert cli.main(["train", "--row", row, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and row in err[0]


# ------------------------------------------------------------------------------------------------- resolution rule
@pytest.mark.parametrize("preset", ["ntu", "cpu"])
@pytest.mark.parametrize("split", ["CS", "CV", "xsub", "xview"])
def test_unset_m_and_m1_follow_the_split(preset, split):
    """The cpu preset (the synthetic stand-in, splits xsub/xview) follows the NTU rule."""
    cfg = config_for(preset, split)
    want = ex.ADOPTED[ex.split_label(split)]
    assert (cfg.m, cfg.model["m1"]) == (want["m"], want["m1"])
    # the one place: Table 1's adopted row on that split
    row = ex.row_settings("table1", "slnl-rfa", split)
    assert (cfg.m, cfg.model["m1"]) == (row["m"], row["model"]["m1"])


def test_default_split_is_cs_and_its_adopted_model_is_the_default_model():
    from slnl.models import PRESETS

    cfg = config_for()
    assert (cfg.split, cfg.m, cfg.model["m1"]) == ("xsub", 0.4, 5)
    # build() without a split builds what training on the default split trains: Table 1's CS model
    assert all(PRESETS[p].m1 == ex.ADOPTED["CS"]["m1"] for p in ("ntu", "kinetics", "cpu"))


def test_kinetics_takes_table_2s_row():
    cfg = config_for("kinetics")
    row = ex.row_settings("table2", "slnl-rfa", "default")
    assert (cfg.split, cfg.m, cfg.model["m1"]) == ("default", row["m"], row["model"]["m1"]) == ("default", 0.4, 5)


def test_explicit_values_win_over_the_split(tmp_path, capsys):
    assert (config_for("ntu", "CV", m=0.2).m, config_for("ntu", "CV", model={"m1": 6}).model) == (0.2, {"m1": 6})
    cfg = _dry(capsys, "--preset", "ntu", "--split", "CV", "--m", "0.5", "--m1", "1")
    assert (cfg["m"], cfg["model"]["m1"]) == (0.5, 1)
    f = tmp_path / "c.yaml"
    f.write_text("preset: cpu\nsplit: CV\nm: 0.3\nmodel: {m1: 4}\n")
    cfg = _dry(capsys, "--config", str(f))
    assert (cfg["m"], cfg["model"]["m1"]) == (0.3, 4)
    # fit() takes an explicit TrainConfig and nothing else
    with pytest.raises(TypeError, match="expected a TrainConfig.*config_for"):
        from slnl.engine import fit
        fit({"preset": "cpu", "split": "CV"})


def test_margin_free_losses_and_local_models_say_so():
    assert config_for("ntu", "CV", loss="CE").m == 0.0  # CE has no margin, whatever the split
    assert config_for("ntu", "CV", model={"affinity": "Local"}).model["m1"] == 0  # no SLnL block


def test_a_model_too_shallow_for_the_adopted_m1_is_a_clear_error():
    with pytest.raises(ValueError, match=r"model.m1: the adopted M1 = 5 on split 'xsub' needs at least 5 blocks"):
        config_for("cpu", model={"channels": [8, 8, 16]})
    assert config_for("cpu", model={"channels": [8, 8, 16], "m1": 2}).model["m1"] == 2


def test_resolve_is_idempotent_and_rejects_a_negative_margin():
    cfg = config_for("cpu", "CV")
    assert cfg.resolve() == cfg
    with pytest.raises(ValueError, match="m: expected a margin >= 0"):
        config_for("cpu", m=-0.1)


# ------------------------------------------------------------------------------------------------------------ --row
_PLACEMENT = {"data", "out", "device", "overwrite", "progress", "resume"}


@pytest.mark.parametrize("table", list(ex.TABLES))
@pytest.mark.parametrize("split", ["CS", "CV"])
def test_cli_notebooks_and_fit_resolve_the_same_configuration(table, split, synthetic_store):
    """For every runnable row of every table on each split: `slnl train --row` (the CLI), the study's plan (what the
    table notebooks and `slnl sweep` run) and fit()'s own resolution give the same full configuration."""
    t = ex.table(table)
    if not t.metric_by_split and split == "CV":
        pytest.skip("Kinetics' table has one split")
    options = study.Options(dataset="synthetic", data_root=synthetic_store, scale="paper")
    for r in ex.rows(t):
        label = ex.split_label(split) if t.metric_by_split else "default"
        cli_cfg = cli.config_from_args(["--row", f"{t.name}/{r.slug}", "--split", ex.store_split(label)])
        planned = study.spec(t, r, label, 0, options, synthetic_store).config
        a, b = cli_cfg.to_dict(), planned.to_dict()
        assert {k: a[k] for k in a if k not in _PLACEMENT} == {k: b[k] for k in b if k not in _PLACEMENT}, r.slug
        assert planned.resolve() == planned  # what fit() resolves it to: the same
        assert cli_cfg.model == ex.row_settings(t, r, label)["model"]


def test_row_defaults_to_the_tables_protocol_and_flags_override_single_fields(capsys):
    cfg = _dry(capsys, "--row", "table2/slnl-rfa")
    assert (cfg["preset"], cfg["split"], cfg["model"]["m1"], cfg["epochs"]) == ("kinetics", "default", 5, 100)
    cfg = _dry(capsys, "--row", "table6/slnl-2", "--split", "CV", "--m1", "4", "--epochs", "2", "--preset", "cpu")
    assert (cfg["preset"], cfg["model"]["m1"], cfg["m"], cfg["epochs"], cfg["model"]["attention"]) == (
        "cpu", 4, 0.6, 2, "rFA")
    cfg = _dry(capsys, "--row", "table5/afa", "--split", "CS", "--attention", "dFA")
    assert (cfg["model"]["attention"], cfg["model"]["affinity"], cfg["m"]) == ("dFA", "Local", 0.4)
    cfg = _dry(capsys, "--row", "table4/fl-3", "--split", "CV")  # FL: no margin even on CV
    assert (cfg["loss"], cfg["gamma"], cfg["m"], cfg["model"]["m1"]) == ("FL", 3.0, 0.0, 0)


# --------------------------------------------------------------------------------------------------------- dry run
def test_dry_run_touches_neither_data_nor_run_directory(tmp_path, capsys, monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("the dry run must not generate data or train")

    monkeypatch.setattr(synthetic, "ensure_default", forbidden)
    monkeypatch.setattr(cli, "fit", forbidden)
    out = tmp_path / "run"
    cfg = _dry(capsys, "--preset", "cpu", "--out", str(out))
    assert cfg["out"] == str(out) and cfg["data"] is None
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_dry_run_resolves_auto_precision_for_the_device(capsys, monkeypatch):
    monkeypatch.setattr(cli, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert _dry(capsys, "--preset", "ntu")["precision"] == "bf16"
    assert _dry(capsys, "--preset", "ntu", "--precision", "fp32")["precision"] == "fp32"


# ------------------------------------------------------------------------------- the run's config.yaml says it all
def _two_split_store(root: Path, N: int = 36, T: int = 24, V: int = 5, K: int = 3) -> Path:
    """A tiny store (docs/design.md layout) with the synthetic store's two splits, xsub and xview."""
    rng = np.random.default_rng(0)
    test_s, test_v = np.arange(N) % 3 == 0, np.arange(N) % 3 == 1
    meta = {"dataset": "tiny-two-splits", "class_names": [f"c{k}" for k in range(K)],
            "names": [f"s{i:03d}" for i in range(N)], "splits": ["xsub", "xview"]}
    return write_store(root, rng.standard_normal((N, 3, T, V, 2)), np.arange(N) % K, np.full(N, T),
                       {"xsub_train": ~test_s, "xsub_test": test_s, "xview_train": ~test_v, "xview_test": test_v},
                       meta)


def test_fit_writes_the_resolved_m_and_m1_into_config_yaml(tmp_path):
    from slnl.engine import fit

    store = _two_split_store(tmp_path / "store")
    res = fit(config_for("cpu", "CV", data=str(store), out=str(tmp_path / "run"), epochs=1, batch_size=8,
                         max_steps_per_epoch=1, progress=False,
                         model={"channels": [8, 8, 8, 8, 8, 8], "T": 16, "new_joints": 4, "K": 2}))
    saved = yaml.safe_load((Path(res.run_dir) / "config.yaml").read_text())
    assert (saved["split"], saved["m"], saved["model"]["m1"]) == ("xview", 0.6, 3)
    assert saved["model_config"]["m1"] == 3  # ... and the model that was built has M1 = 3
