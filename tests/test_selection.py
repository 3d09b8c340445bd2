"""The recipe selection: every run on the validation split (never the study's test side), resumable, shared between
processes by seed, and the choice by the declared rule."""
import dataclasses
import json

import pytest

from slnl import engine, recipes
from slnl.study import selection
from slnl.utils import REPO_ROOT as REPO
from test_engine_fit import TINY_MODEL, make_tiny_store


@pytest.fixture
def tiny_grid(tmp_path, monkeypatch):
    store = make_tiny_store(tmp_path / "data" / "tiny", dataset="npz")
    cpu = recipes.RECIPES["cpu"]
    tiny = dataclasses.replace(cpu, batch_size=8, model_fields=tuple(TINY_MODEL.items()))
    monkeypatch.setitem(recipes.RECIPES, "cpu", tiny)
    grid = selection.Grid(base="cpu", split="xsub", schedules=((2, 0.98), (1, 0.98)), new_joints=(4, 6),
                          seeds=(1000, 1001))
    monkeypatch.setattr(selection, "GRIDS", {"npz": grid})
    return store, grid


def test_the_grid_is_trained_once_on_its_split_and_the_declared_rule_chooses(tiny_grid, tmp_path, monkeypatch):
    store, grid = tiny_grid
    results = tmp_path / "res"
    assert selection.select("npz", str(store), str(results), seeds=[1000], log=lambda *_: None) is None  # half
    doc = selection.select("npz", str(store), str(results), seeds=[1001], log=lambda *_: None)
    files = sorted((results / "selection").glob("*__seed*.json"))
    assert len(files) == 4 * 2 and (results / "selection" / "chosen.json").is_file()
    for f in files:
        rec = json.loads(f.read_text())
        assert rec["split"] == rec["config"]["split"] == "xsub" and rec["seed"] in grid.seeds
        assert rec["config"]["m"] == 0.4  # the paper's settings of the study's split (CS here)
        assert rec["config"]["model"]["new_joints"] == rec["new_joints"] and rec["config"]["epochs"] == rec["epochs"]
    # the rule: the highest mean over the seeds; within TIE of it, the cheaper (fewer epochs, then fewer joints)
    means = {r["config"]: sum(r["top1"]) / 2 for r in doc["configs"]}
    best = max(means.values())
    cheapest = next(r for r in doc["configs"] if means[r["config"]] >= best - selection.TIE)
    assert doc["chosen"] == {k: cheapest[k] for k in ("epochs", "lr_decay", "new_joints")}
    assert [r["config"] for r in doc["configs"]] == ["e1-d0.98-n4", "e1-d0.98-n6", "e2-d0.98-n4", "e2-d0.98-n6"]
    # finished runs are not trained again
    monkeypatch.setattr(engine, "fit", lambda cfg: pytest.fail("fit() must not be called"))
    assert selection.select("npz", str(store), str(results), log=lambda *_: None) == doc


def test_a_seed_outside_the_grid_and_an_unknown_dataset_are_refused(tiny_grid, tmp_path):
    store, _ = tiny_grid
    with pytest.raises(ValueError, match="seed 0 is not among the grid's seeds"):
        selection.select("npz", str(store), str(tmp_path), seeds=[0])
    with pytest.raises(ValueError, match="no selection grid for 'msr3d'"):
        selection.select("msr3d", str(store), str(tmp_path))


JOINTS = {"msr3d": 20, "nwucla": 20, "sbu": 15}  # N of each dataset with a declared grid


def test_the_declared_grids_use_seeds_apart_from_the_studys_and_a_split_inside_its_training_data():
    for dataset, grid in selection.GRIDS.items():
        assert min(grid.seeds) >= 1000, dataset  # the study's seeds start at 0
        assert grid.split.endswith("-val"), dataset
        assert min(grid.new_joints) >= JOINTS[dataset], dataset  # N' >= N: the transformer augments (§3.1)


def test_each_selected_recipe_holds_its_committed_choice():
    """A dataset's recipe (the study scale) is frozen from its committed selection: the values of chosen.json on the
    grid's base recipe, nothing else changed."""
    selected = [name for name in recipes.RECIPES if name in selection.GRIDS]
    committed = sorted(p.parent.parent.name for p in REPO.glob("results/*/selection/chosen.json"))
    assert selected == committed  # every committed choice is a recipe, and every selected recipe has its choice
    for name in selected:
        chosen = json.loads((REPO / "results" / name / "selection" / "chosen.json").read_text())
        grid, rec = selection.GRIDS[name], recipes.RECIPES[name]
        base = recipes.RECIPES[grid.base]
        assert chosen["chosen"] == {"epochs": rec.epochs, "lr_decay": rec.lr_decay,
                                    "new_joints": dict(rec.model_fields)["new_joints"]}, name
        assert dataclasses.replace(rec, name=base.name, epochs=base.epochs, lr_decay=base.lr_decay, model_fields=(),
                                   description=base.description) == base, name
        assert chosen["split"] == grid.split and chosen["seeds"] == list(grid.seeds)
