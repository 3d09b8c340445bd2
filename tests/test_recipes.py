"""slnl.recipes, every default of a run held once: the paper scale is §4.1, the ``small`` recipe keeps the paper's
optimiser and overall decay and ``small-long`` is it at twice the schedule, the evaluation cadence and batch rules,
every model preset has its recipe, docs/recipes.md's table is the registry's numbers; ``config_for``'s layering
(recipe < the paper's adopted settings on the split < a table row < overrides) and its one-line refusals,
``recipe_for`` for each scale and dataset, every recipe resolves (idempotently) into an explicit ``TrainConfig``,
the model's default depth is the paper's CS adoption, and the engine looks no recipe up."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from slnl import experiments as ex
from slnl import recipes, study
from slnl.data.store import DATASETS
from slnl.engine.config import TrainConfig
from slnl.models import PRESETS, ModelConfig
from slnl.study.cost import paper_tables
from slnl.study.ledger import _differences
from test_imports import MODULES, imported_modules

RECIPES = recipes.RECIPES
DOC = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"


# --------------------------------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------------------------------
def test_paper_scale_is_section_4_1():
    """§4.1 is written once (the ``ntu`` and ``kinetics`` recipes); the paper scale is those numbers, and so is the
    plan of the time to reproduce the paper."""
    ntu, kin = RECIPES["ntu"], RECIPES["kinetics"]
    # §4.1: "300 epochs ... batch size 32" (NTU), "100 epochs ... 128" (Kinetics); Adam 1e-3, decay 0.98 / 0.95
    assert (ntu.epochs, ntu.batch_size, ntu.lr_decay, kin.epochs, kin.batch_size, kin.lr_decay) == (
        300, 32, 0.98, 100, 128, 0.95)
    for family, rec in (("ntu", ntu), ("kinetics", kin)):
        assert (rec.name, rec.model, rec.family) == (family, family, family)
        assert (rec.lr, rec.weight_decay, rec.loss, rec.gamma) == (1e-3, 5e-4, "SMFL", 2.0)
        assert (rec.eval_every, rec.eval_batch_size) == (1, None)
        assert recipes.recipe_for("paper", {"ntu": "ntu60", "kinetics": "kinetics"}[family]) is rec
    assert (ntu.split, kin.split) == ("xsub", "default")
    for entry in paper_tables(seeds=2):
        rec = RECIPES[ex.table(entry["table"]).family]
        assert (entry["epochs"], entry["batch_size"]) == (rec.epochs, rec.batch_size), entry


def test_small_recipe_keeps_the_paper_optimiser_and_its_overall_decay():
    """The ``small`` recipe compresses §4.1's schedule without changing what it does: Adam at the paper's rate and
    weight decay, the same loss, the whole decay (0.98**300) within a factor of 3 at its last epoch, so the reported
    last epoch is a converged model; its model is the ``small`` preset (the cpu model at T 16)."""
    small, ntu = RECIPES["small"], RECIPES["ntu"]
    assert small.model == "small" and small.family == "ntu"
    assert (small.lr, small.weight_decay, small.loss, small.gamma, small.bn_stats) == (
        ntu.lr, ntu.weight_decay, ntu.loss, ntu.gamma, ntu.bn_stats)
    paper_end = ntu.lr_decay ** ntu.epochs
    assert paper_end / 3 <= small.lr_decay ** small.epochs <= paper_end * 3
    assert f"{small.epochs} epochs" in small.description
    assert PRESETS["small"].T == 16 and PRESETS["small"].channels == PRESETS["cpu"].channels
    assert recipes.recipe_for("small", "msr3d") is small


def test_small_long_is_the_small_recipe_at_twice_the_schedule():
    """``small-long`` trains what ``small`` trains, for twice the epochs with the decay stretched to match: the
    schedule still ends near §4.1's final rate. Its rows are other configurations (never reused for a ``small``
    row)."""
    short, long = RECIPES["small"], RECIPES["small-long"]
    diff = _differences(dataclasses.asdict(short), dataclasses.asdict(long))
    assert set(diff) == {"name", "epochs", "lr_decay", "description"}
    assert long.epochs == 2 * short.epochs and long.lr_decay > short.lr_decay
    paper_end = RECIPES["ntu"].lr_decay ** RECIPES["ntu"].epochs
    assert paper_end / 3 <= long.lr_decay ** long.epochs <= paper_end * 3
    assert f"{long.epochs} epochs" in long.description
    a = recipes.config_for("small", "CS", "table1", "slnl-rfa")
    b = recipes.config_for("small-long", "CS", "table1", "slnl-rfa")
    assert _differences(study.trained_as(a), study.trained_as(b)) == {"lr_decay": (short.lr_decay, long.lr_decay)}
    assert (a.epochs, b.epochs) == (short.epochs, long.epochs)
    assert study.config_key(study.trained_as(a), a.epochs) != study.config_key(study.trained_as(b), b.epochs)


def test_evaluation_cadence_and_batch():
    """A recipe's evaluation cadence and batch (also the BN statistics pass's) reach the configuration; an explicit
    value wins; a recipe without an evaluation batch evaluates at the training batch, the overridden one too."""
    small, cpu = RECIPES["small"], RECIPES["cpu"]
    assert recipes.config_for("small").eval_every == small.eval_every == 10 > 1
    assert recipes.config_for("ntu").eval_every == 1
    assert recipes.config_for("small", eval_every=2).eval_every == 2
    assert recipes.config_for("small").eval_batch_size == small.eval_batch_size == 64 != small.batch_size
    assert recipes.config_for("small", batch_size=4).eval_batch_size == 64
    assert cpu.eval_batch_size is None and recipes.config_for("cpu").eval_batch_size == cpu.batch_size
    assert recipes.config_for("cpu", batch_size=4).eval_batch_size == 4
    assert recipes.config_for("cpu", eval_batch_size=5).eval_batch_size == 5


def test_every_model_preset_has_a_recipe_of_its_name():
    for name, rec in RECIPES.items():
        assert rec.name == name and rec.model in PRESETS and rec.family in ("ntu", "kinetics"), name
    for preset in PRESETS:
        assert RECIPES[preset].model == preset, preset
    selected = {name for name in RECIPES if name in DATASETS}  # a dataset's selected recipe (the "study" scale)
    assert set(recipes.SCALES) == (set(RECIPES) - {"ntu", "kinetics"} - selected) | {"paper", "study"}


def _doc_table() -> dict[str, dict[str, str]]:
    """docs/recipes.md's table of recipes: {recipe: {column: cell}}."""
    lines = [ln for ln in DOC.read_text().splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert set(lines[1]) <= set("|-: "), lines[1]  # the separator line
    out = {}
    for line in lines[2:]:
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        out[cells["recipe"].strip("`")] = cells
    return out


def test_docs_recipes_table_is_the_registry():
    table = _doc_table()
    assert list(table) == list(RECIPES)
    for name, row in table.items():
        rec = RECIPES[name]
        assert re.match(r"`([^`]+)`", row["model"]).group(1) == rec.model, name
        assert (int(row["epochs"]), int(row["batch"])) == (rec.epochs, rec.batch_size), name
        m = re.fullmatch(r"([0-9.e-]+), ×([0-9.]+)", row["lr, decay per epoch"])
        assert m, row["lr, decay per epoch"]
        assert (float(m.group(1)), float(m.group(2))) == (rec.lr, rec.lr_decay), name
        evaluation = row["evaluation"]
        if rec.eval_every == 1:
            assert evaluation == "every epoch", name
        else:
            assert evaluation.startswith(f"every {rec.eval_every} epochs"), name
        if rec.eval_batch_size is None:
            assert "batch" not in evaluation, name
        else:
            assert evaluation.endswith(f"batch {rec.eval_batch_size}"), name
    text = DOC.read_text()
    assert "weight decay 5e-4 and SMFL (γ = 2)" in text
    assert all((r.weight_decay, r.loss, r.gamma) == (5e-4, "SMFL", 2.0) for r in RECIPES.values())


# --------------------------------------------------------------------------------------------------------------------
# config_for and recipe_for
# --------------------------------------------------------------------------------------------------------------------
def test_config_for_layers_recipe_split_row_and_overrides():
    cpu = RECIPES["cpu"]
    c = recipes.config_for("cpu")  # the recipe, on its split, with the paper's adopted settings there
    for k, v in cpu.fields().items():
        assert getattr(c, k) == (cpu.batch_size if k == "eval_batch_size" and v is None else v), k
    assert (c.split, c.m, c.model) == ("xsub", ex.adopted("CS")["m"], {"m1": ex.adopted("CS")["m1"]})
    c = recipes.config_for("cpu", "CV")  # the adopted settings of the split asked
    assert (c.split, c.m, c.model, c.epochs) == ("xview", 0.6, {"m1": 3}, cpu.epochs)
    assert recipes.config_for("kinetics").model == {"m1": ex.adopted("default", "kinetics")["m1"]}
    c = recipes.config_for("cpu", "CV", "table4", "fl-3")  # the row replaces the adopted settings
    assert (c.loss, c.gamma, c.m, c.model) == ("FL", 3.0, 0.0, ex.row_settings("table4", "fl-3", "CV")["model"])
    assert (c.epochs, c.lr, c.lr_decay) == (cpu.epochs, cpu.lr, cpu.lr_decay)
    c = recipes.config_for("cpu", "CV", "table6", "slnl-2", m=0.9, epochs=2, lr_decay=0.5, model={"m1": 1})
    assert (c.m, c.epochs, c.lr_decay, c.loss) == (0.9, 2, 0.5, "SMFL")  # overrides win
    assert c.model == {**ex.row_settings("table6", "slnl-2", "CV")["model"], "m1": 1}
    assert recipes.config_for("cpu", "CS", m=0.1, model={"m1": 2}).model == {"m1": 2}
    assert recipes.config_for("cpu", "CS", loss="CE").m == 0.0  # resolved: the loss's parameters only


def test_config_for_depth_rules_and_refusals():
    # a local-only model has no SLnL block
    assert recipes.config_for("cpu", "CS", model={"affinity": "Local"}).model == {"m1": 0, "affinity": "Local"}
    # the adopted depth needs enough blocks: one line naming model.m1, unless it is given
    with pytest.raises(ValueError, match=r"^model\.m1: the adopted M1 = 5 .*channels has 2; give model\.m1") as e:
        recipes.config_for("cpu", "CS", model={"channels": [16, 32]})
    assert "\n" not in str(e.value)
    assert recipes.config_for("cpu", "CS", model={"channels": [16, 32], "m1": 1}).model["m1"] == 1
    assert recipes.config_for("cpu", "CV", model={"channels": [16, 16, 32]}).model["m1"] == 3  # enough on CV
    with pytest.raises(ValueError, match="model.m1"):
        recipes.config_for("cpu", "CS", model={"channels": 16})  # one int: one block
    with pytest.raises(ValueError, match=r"unknown recipe 'tiny'; expected one of ntu, kinetics, cpu, small"):
        recipes.config_for("tiny")
    with pytest.raises(ValueError, match=r"unknown TrainConfig field\(s\) \['epoch'\]"):
        recipes.config_for("cpu", epoch=3)
    with pytest.raises(ValueError, match="a row needs its table"):
        recipes.config_for("cpu", row="slnl-2")
    with pytest.raises(ValueError, match="published reference"):
        recipes.config_for("ntu", "CS", "table1", "hcn")
    with pytest.raises(ValueError, match="lr_decay"):
        recipes.config_for("cpu", lr_decay=1.5)


@pytest.mark.parametrize("dataset", DATASETS)
def test_recipe_for_each_scale_and_dataset(dataset):
    for t in ex.TABLES.values():
        for scale in recipes.SCALES:
            if scale == "study" and dataset not in RECIPES:
                with pytest.raises(ValueError, match=f"no recipe has been selected for '{dataset}'.*slnl select"):
                    recipes.recipe_for(scale, dataset, t)
                continue
            rec = recipes.recipe_for(scale, dataset, t)
            if scale == "study":
                assert rec is RECIPES[dataset]
            elif scale != "paper":
                assert rec is RECIPES[scale]
            elif dataset == "kinetics":
                assert rec is RECIPES["kinetics"]
            elif dataset in ("ntu60", "ntu120"):
                assert rec is RECIPES["ntu"]
            else:  # another dataset takes the protocol of the table it stands in for
                assert rec is RECIPES[t.family], (dataset, t.name)
    assert recipes.recipe_for("paper", dataset) is RECIPES[ex.DATASET_FAMILY.get(dataset, "ntu")]
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        recipes.recipe_for("huge", dataset)


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_resolves_into_an_explicit_config(name):
    rec = RECIPES[name]
    for split in (None, "CS", "CV"):
        cfg = recipes.config_for(name, split)
        assert isinstance(cfg, TrainConfig) and cfg.resolve() == cfg  # resolved, and resolve is idempotent
        assert cfg.preset == rec.model and cfg.split == (split and ex.store_split(split) or rec.split)
        assert TrainConfig.from_dict(cfg.to_dict()) == cfg  # every field it trains with is written down
    assert recipes.recipe(name) is rec and recipes.recipe(rec) is rec


def test_a_train_config_names_everything_it_trains_with():
    with pytest.raises(ValueError, match=r"TrainConfig field\(s\) \[.*'split'.*\] not set"):
        TrainConfig.from_dict({"preset": "cpu"})
    with pytest.raises(TypeError):
        TrainConfig(preset="cpu")  # no protocol default in the engine


def test_model_default_depth_is_the_papers_cs_adoption():
    """One value: the model's default M1 (every preset's) is the depth the paper adopts on CS (``ADOPTED``), so a
    model built without a recipe is Table 1's CS model."""
    assert ModelConfig().m1 == ex.ADOPTED["CS"]["m1"]
    for name, preset in PRESETS.items():
        assert preset.m1 == ex.ADOPTED["CS"]["m1"], name
        assert recipes.config_for(name, "CS").model["m1"] == preset.m1, name


def test_the_engine_looks_no_recipe_up():
    """The engine takes an explicit TrainConfig: no module of it (its command line aside, which makes one) imports
    the recipes or the paper's data, anywhere (functions included)."""
    engine = [m for m in MODULES if m == "slnl.engine" or m.startswith("slnl.engine.")]
    assert "slnl.engine.config" in engine and "slnl.engine.fit" in engine
    for m in engine:
        if m == "slnl.engine.cli":
            continue
        hits = sorted(n for n in imported_modules(m, module_level_only=False)
                      if n.startswith(("slnl.recipes", "slnl.experiments", "slnl.study")))
        assert not hits, f"{m} imports {hits}"
    assert "slnl.recipes" in imported_modules("slnl.engine.cli", module_level_only=False)  # the walk sees them
