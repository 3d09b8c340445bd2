"""slnl.experiments, the paper as data: the tables match the paper's text (numbers, shape, claims), rows that are
one model in two tables chain with the same settings, row selection, the per-split adopted settings, what a row
trains (``row_settings``, as ``slnl.recipes.config_for`` puts it on a recipe, and every row builds and runs), the
PA-LSTM note, one loss-parameter rule, and that the data imports nothing that runs. Running the tables is
tests/test_study.py; the recipes are tests/test_recipes.py."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from slnl import experiments as ex
from slnl import recipes
from slnl.losses import LOSS_PARAMS, loss_params, make_loss
from slnl.models import build

NTU_TABLES = ("table1", "table3", "table4", "table5", "table6")


def _paper_config(tbl: str | ex.Table, row: str | ex.Row, split: str, **overrides):
    """The TrainConfig of a row at the paper scale (the §4.1 recipe of the table's family)."""
    t = ex.table(tbl)
    return recipes.config_for(recipes.recipe_for("paper", t.paper_dataset, t), split, t, row, **overrides)


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
    """Rows that are the same model in two tables train the same configuration on each split and have the same
    numbers — with the per-split adoption the paper's numbers are consistent (slnl.experiments' docstring)."""
    t1, t3, t4, t5, t6 = (ex.table(n) for n in NTU_TABLES)
    same = [((t3, "cs-t"), (t4, "ce"), ("CS", "CV")), ((t5, "rfa"), (t6, "local"), ("CS", "CV")),
            ((t4, "smfl-2-0.4"), (t5, "none"), ("CS",)), ((t4, "smfl-2-0.6"), (t5, "none"), ("CV",)),
            ((t6, "slnl-5"), (t1, "slnl-rfa"), ("CS",)), ((t6, "slnl-3"), (t1, "slnl-rfa"), ("CV",))]
    for (ta, a), (tb, b), splits in same:
        ra, rb = ta.row(a), tb.row(b)
        for s in splits:
            assert _paper_config(ta, ra, s) == _paper_config(tb, rb, s), (a, b, s)
            assert ex.row_settings(ta, ra, s) == ex.row_settings(tb, rb, s), (a, b, s)
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
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 25, 2)
    for r in ex.rows(name):
        for split in ("CS", "CV"):
            cfg = recipes.config_for("cpu", split, name, r)
            model = build(cfg.preset, num_classes=12, **cfg.model).eval()
            for k, v in cfg.model.items():
                assert getattr(model.config, k) == v
            with torch.no_grad():
                heads = model(x)
            assert heads.c.shape == (2, 12) and torch.isfinite(heads.c).all()
            single = r.settings["transform"] in ("Pos-N", "Vel-N")
            assert (heads.p is None) == single and (heads.v is None) == single


# --------------------------------------------------------------------------------------------------------------------
# Selection, splits and what a row trains
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


def test_split_names_lists_and_stand_in_notes():
    assert ex.store_split("CS") == "xsub" and ex.store_split("CV") == "xview" and ex.split_label("xset") == "CSet"
    assert ex.split_label("xview") == "CV" and ex.split_label("default") == "default"
    # any other store split is its own label (SBU's folds, an .npz store's names); the store says whether it has it
    assert ex.split_label("fold3") == ex.store_split("Fold3") == "fold3" and ex.split_label("xsub-val") == "xsub-val"
    for bad in ("cross subject", "", "-x"):
        with pytest.raises(ValueError, match="expected a split name"):
            ex.split_label(bad)
    assert ex.parse_list("0, 1;2", int) == [0, 1, 2] and ex.parse_list(0, int) == [0] and ex.parse_list(None) == []
    assert "STAND-IN" in ex.stand_in_note(ex.TABLE2, "synthetic") and ex.stand_in_note(ex.TABLE2, "kinetics") == ""
    assert ex.stand_in_note(ex.TABLE3, "ntu60") == "" and "msr3d" in ex.stand_in_note(ex.TABLE3, "msr3d")
    assert ex.DATASET_FAMILY == {"ntu60": "ntu", "ntu120": "ntu", "kinetics": "kinetics"}
    assert {t.name: t.family for t in ex.TABLES.values()} == {
        "table1": "ntu", "table2": "kinetics", "table3": "ntu", "table4": "ntu", "table5": "ntu", "table6": "ntu"}


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


def test_row_settings_are_what_a_row_trains():
    """``row_settings`` is the row's model and loss; ``slnl.recipes.config_for`` trains exactly that on a recipe,
    and a configuration of any runnable row is valid, with the loss parameters its loss uses."""
    for t in ex.TABLES.values():
        for r in ex.rows(t):
            for split in ("CS", "CV"):
                s, c = ex.row_settings(t, r, split), _paper_config(t, r, split, seed=3)
                assert s == {"model": c.model, "loss": c.loss, "gamma": c.gamma, "m": c.m}, (t.name, r.slug, split)
                assert c.seed == 3 and c.split == ex.store_split(split)
                raw = r.settings_for(split)
                assert c.loss == raw["loss"]
                assert c.gamma == (raw.get("gamma", 0.0) if raw["loss"] in ("FL", "SMFL") else 0.0)
                assert c.m == (raw.get("m", 0.0) if raw["loss"] in ("SMCE", "SMFL") else 0.0)
    with pytest.raises(ValueError, match="published reference"):
        ex.row_settings("table1", "hcn", "CS")


def test_pa_lstm_numbers_are_the_papers_with_the_swap_noted():
    r = ex.TABLE1.row("pa-lstm")
    assert r.paper == {"CS": 70.3, "CV": 62.9}  # as printed in the paper's Table 1
    assert "62.93" in r.note and "70.27" in r.note and r.note in ex.TABLE1.notes


# --------------------------------------------------------------------------------------------------------------------
# The paper as data is data
# --------------------------------------------------------------------------------------------------------------------
def test_paper_as_data_does_not_import_what_runs():
    """slnl.recipes puts the paper on the engine's TrainConfig (it imports both); the paper as data imports neither
    the engine nor the recipes, nor the study."""
    code = ("import sys, slnl.experiments; bad = [m for m in sys.modules if m.startswith(('slnl.engine', "
            "'slnl.recipes', 'slnl.study'))]; assert not bad, bad")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_the_paper_as_data_holds_no_runner_and_no_recipe():
    """The runner lives in slnl.study and the protocols in slnl.recipes; the tables module holds no second copy."""
    for gone in ("DATASETS", "LOSS_KEYS", "store_meta", "store_splits", "select_rows", "SCALES", "run_table",
                 "row_config", "result_path", "repo_path", "RECIPES", "PROTOCOL", "config_for", "recipe_for"):
        assert not hasattr(ex, gone), gone


def test_one_loss_parameter_rule():
    """CE/FL have no m, CE/SMCE no gamma: LOSS_PARAMS is what the rows, the saved config and the loss all follow, and
    dropping a parameter is exact (SMCE with any gamma is the same function as SMFL with gamma 0)."""
    assert LOSS_PARAMS == {"CE": (), "FL": ("gamma",), "SMCE": ("m",), "SMFL": ("gamma", "m")}
    for name, uses in LOSS_PARAMS.items():
        want = {"gamma": 3.0 if "gamma" in uses else 0.0, "m": 0.5 if "m" in uses else 0.0}
        assert loss_params(name, 3.0, 0.5) == want
        fn = make_loss(name, gamma=3.0, m=0.5)
        assert (fn.gamma, fn.m) == (want["gamma"], want["m"])
        cfg = recipes.config_for("cpu", "CS", loss=name, gamma=3.0, m=0.5)
        assert (cfg.gamma, cfg.m) == (want["gamma"], want["m"])
        assert cfg.resolve() == cfg
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
