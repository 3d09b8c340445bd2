"""Named recipes: a model preset and a training protocol, every default of a run held once.

A :class:`Recipe` is what torchtune calls a recipe's config: the ``slnl.models.PRESETS`` name of the architecture and
the whole protocol that trains it — loss, optimiser (Adam, learning rate, its exponential decay per epoch, weight
decay), epochs, batch, evaluation cadence and batch, the BN statistics the headline evaluation uses (training's
running averages, as the paper and PyTorch evaluate; every evaluation also records the recomputed ones beside it)
— and the split a run takes when it names none. ``RECIPES`` is the one registry:

* ``ntu`` and ``kinetics``: §4.1 (NTU RGB+D: 300 epochs, batch 32, decay 0.98; Kinetics-skeleton: 100 epochs, batch
  128, decay 0.95; both Adam at 1e-3 with weight decay 5e-4, SMFL with γ = 2 on the three heads);
* ``cpu``: the smoke scale (the ``cpu`` model, five epochs of §4.1's NTU optimiser): every row end to end on a CPU,
  not the paper's numbers;
* ``small`` and ``small-long``: small real datasets (MSR Action3D) on one CPU core — the ``small`` model, batch 8,
  100 epochs at decay 0.95, and the same at 200 epochs at 0.975. How these were chosen is ``docs/recipes.md``;
* a dataset's name (``msr3d`` …): the recipe selected for that dataset on validation data carved from its training
  split (``slnl.study.selection``; the ``study`` scale), registered from its committed ``chosen.json``.

The paper's settings that differ by split — the margin ``m`` and the number of SLnL blocks M1 that Tables 4 and 6
adopt (CS: 0.4 and 5; CV: 0.6 and 3) — and each table row's model and loss are the paper's data
(``slnl.experiments``). :func:`config_for` is the one function that puts them on top of a recipe, and what ``slnl
train``, the notebooks (``slnl.study``), ``slnl sweep`` and the benchmark all call; the engine receives the
result, an explicit :class:`~slnl.engine.config.TrainConfig`, and looks nothing up.

A *scale* (the notebooks' ``scale`` parameter, ``make reproduce SCALE=``) is "which recipe for this dataset"
(:func:`recipe_for`): ``paper`` is the §4.1 recipe of the dataset's protocol family (``kinetics`` for Kinetics,
``ntu`` otherwise), every other scale is the recipe of that name.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from slnl import experiments as ex
from slnl.data.store import canonical_split
from slnl.engine.config import TrainConfig
from slnl.models import PRESETS


@dataclass(frozen=True)
class Recipe:
    """A model preset and its training protocol. Every field is a ``TrainConfig`` field of the same name, except
    ``name``, ``model`` (the ``slnl.models.PRESETS`` name: ``TrainConfig.preset``), ``family`` (whose adopted m and M1
    a run without a row takes: ``slnl.experiments.adopted``) and ``description``."""

    name: str
    model: str
    family: str  # "ntu" | "kinetics"
    split: str  # the store split a run takes when it names none
    epochs: int
    batch_size: int  # global batch (all processes together)
    lr: float
    lr_decay: float  # exponential decay per epoch: lr_e = lr * lr_decay**e
    weight_decay: float  # Adam's L2 term, as in the paper
    loss: str  # applied to each head and summed (Eq. 21)
    gamma: float  # focusing parameter γ (Eq. 18)
    eval_every: int  # evaluate on the test subset every k epochs (and after the last)
    eval_batch_size: int | None  # None: the training batch
    bn_stats: str  # the headline's BN statistics: "running" (the paper's, PyTorch's) | "recompute" (slnl.engine.bnstats)
    description: str
    # ModelConfig fields this recipe sets on its preset (a recipe selected for one dataset: its N', ...); a row's own
    # model settings and explicit overrides come on top
    model_fields: tuple[tuple[str, Any], ...] = ()

    def fields(self) -> dict[str, Any]:
        """The ``TrainConfig`` fields this recipe sets (m and M1 aside: they come with the split)."""
        d = dataclasses.asdict(self)
        for k in ("name", "model", "family", "description", "model_fields"):
            d.pop(k)
        return {"preset": self.model, **d}


_NTU = Recipe(
    name="ntu", model="ntu", family="ntu", split="xsub", epochs=300, batch_size=32, lr=1e-3, lr_decay=0.98,
    weight_decay=5e-4, loss="SMFL", gamma=2.0, eval_every=1, eval_batch_size=None, bn_stats="running",
    description="§4.1, NTU RGB+D: Adam lr 1e-3 (weight decay 5e-4) decayed x0.98 per epoch, 300 epochs, batch 32, "
                "SMFL (γ 2) on the three heads",
)
_SMALL = dataclasses.replace(
    _NTU, name="small", model="small", epochs=100, batch_size=8, lr_decay=0.95, eval_every=10, eval_batch_size=64,
    description="small real datasets on one CPU core (MSR Action3D): the small model (T 16), §4.1's optimiser at "
                "batch 8, decay x0.95 over 100 epochs (to 0.59 % of the rate; §4.1 ends at 0.23 %), test every 10 "
                "epochs at batch 64 (docs/recipes.md)",
)

RECIPES: dict[str, Recipe] = {
    "ntu": _NTU,
    "kinetics": dataclasses.replace(
        _NTU, name="kinetics", model="kinetics", family="kinetics", split="default", epochs=100, batch_size=128,
        lr_decay=0.95,
        description="§4.1, Kinetics-skeleton: Adam lr 1e-3 (weight decay 5e-4) decayed x0.95 per epoch, 100 epochs, "
                    "batch 128, SMFL (γ 2) on the three heads"),
    # The synthetic stand-in for NTU (NTU-shaped), so the same optimiser, loss and decay; five epochs keep `make
    # reproduce` (every runnable row once, on CS, two processes) within its 30 minutes on two cores.
    "cpu": dataclasses.replace(
        _NTU, name="cpu", model="cpu", epochs=5, batch_size=16,
        description="the cpu model, five epochs of §4.1's NTU optimiser at batch 16: exercises every row end to end; "
                    "not the paper's numbers"),
    "small": _SMALL,
    "small-long": dataclasses.replace(
        _SMALL, name="small-long", epochs=200, lr_decay=0.975,
        description="the small recipe at twice the schedule: decay x0.975 over 200 epochs (to 0.63 % of the rate), "
                    "otherwise as small (docs/recipes.md)"),
    # Selected on MSR Action3D's validation split (subjects 1, 3, 5 train, 7, 9 validate; seeds 1000, 1001) by
    # `slnl select msr3d`: results/msr3d/selection/chosen.json, whose values tests/test_selection.py checks here.
    "msr3d": dataclasses.replace(
        _SMALL, name="msr3d", epochs=200, lr_decay=0.975, model_fields=(("new_joints", 20),),
        description="MSR Action3D's selected recipe: the small recipe at 200 epochs, decay x0.975, N' = 20 "
                    "(results/msr3d/selection/chosen.json)"),
    # Selected on NW-UCLA's xview-val split (view 1 trains, view 2 validates; seeds 1000, 1001) by `slnl select
    # nwucla`: results/nwucla/selection/chosen.json. 1,020 training clips: a shorter schedule than MSR's.
    "nwucla": dataclasses.replace(
        _SMALL, name="nwucla", epochs=50, lr_decay=0.9, model_fields=(("new_joints", 20),),
        description="NW-UCLA's selected recipe: the small recipe at 50 epochs, decay x0.9, N' = 20 "
                    "(results/nwucla/selection/chosen.json)"),
    # Selected on SBU's fold1-val split (inside fold 1's training sets: folds 3-5 train, fold 2 validates; seeds
    # 1000, 1001) by `slnl select sbu`: results/sbu/selection/chosen.json.
    "sbu": dataclasses.replace(
        _SMALL, name="sbu", model_fields=(("new_joints", 15),),
        description="SBU Kinect Interaction's selected recipe: the small recipe (100 epochs, decay x0.95), N' = 15 "
                    "(results/sbu/selection/chosen.json)"),
}
# "paper": the dataset's §4.1 recipe; "study": the recipe selected for the dataset on its validation split
# (slnl.study.selection), registered under the dataset's name
SCALES: tuple[str, ...] = ("cpu", "small", "small-long", "study", "paper")


def recipe(name: str | Recipe) -> Recipe:
    """``RECIPES[name]``, with one line naming the recipes for an unknown name."""
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; expected one of {', '.join(RECIPES)}")
    return RECIPES[name]


def recipe_for(scale: str, dataset: str = "synthetic", table: ex.Table | None = None) -> Recipe:
    """The recipe a scale means for a dataset: ``paper`` → the §4.1 recipe of the dataset's protocol family (NTU or
    Kinetics; another dataset takes the table's, NTU unless Table 2); any other scale → the recipe of that name."""
    if scale == "paper":
        family = ex.DATASET_FAMILY.get(dataset, table.family if table is not None else "ntu")
        return RECIPES[family]
    if scale == "study":
        if dataset not in RECIPES:
            raise ValueError(f"scale 'study': no recipe has been selected for {dataset!r} (selected: "
                             f"{', '.join(sorted(set(RECIPES) - set(SCALES) - {'ntu', 'kinetics'})) or 'none'}); "
                             f"run `slnl select {dataset}` first, or pick another scale")
        return RECIPES[dataset]
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    return RECIPES[scale]


def config_for(recipe_name: str | Recipe = "ntu", split: str | None = None, table: str | int | ex.Table | None = None,
               row: str | ex.Row | None = None, **overrides: Any) -> TrainConfig:
    """The explicit ``TrainConfig`` of a recipe on a split, with a paper row (or the paper's adopted settings) on top.

    Layers, later wins: the recipe's protocol (:meth:`Recipe.fields`) < the paper on the split (``split``, else the
    recipe's) — the row's model and loss (``slnl.experiments.row_settings``) when ``table`` and ``row`` are given,
    otherwise the adopted margin m and depth M1 of the recipe's family (``slnl.experiments.adopted``; a local-only
    model has no SLnL block: M1 = 0) < ``overrides`` (``TrainConfig`` fields; ``model`` is merged into the model
    overrides). The result is resolved (``TrainConfig.resolve``: a parameter the loss does not use is 0), so every
    field has its value.
    """
    rec = recipe(recipe_name)
    overrides = dict(overrides)
    model_over = dict(overrides.pop("model", None) or {})
    split = canonical_split(str(split or overrides.pop("split", None) or rec.split))
    overrides.pop("split", None)
    fields = rec.fields()
    if row is not None:
        if table is None:
            raise ValueError("config_for: a row needs its table (e.g. table='table6', row='slnl-2')")
        settings = ex.row_settings(table, row, split)
        model = {**dict(rec.model_fields), **settings.pop("model")}
        fields.update(settings)
    else:
        paper = ex.adopted(split, rec.family)
        affinity = model_over.get("affinity", PRESETS[rec.model].affinity)
        fields["m"] = paper["m"]
        model = {**dict(rec.model_fields), "m1": 0 if affinity == "Local" else paper["m1"]}
        depth = _depth(model_over.get("channels"))
        if "m1" not in model_over and depth is not None and model["m1"] > depth:
            raise ValueError(f"model.m1: the adopted M1 = {model['m1']} on split {split!r} needs at least "
                             f"{model['m1']} blocks but model.channels has {depth}; give model.m1 (--m1)")
    model.update(model_over)
    fields.update(overrides)
    return TrainConfig.from_dict({**fields, "split": split, "model": model}, source=f"recipe {rec.name}").resolve()


def _depth(channels: Any) -> int | None:
    """Number of blocks of a ``model.channels`` override (a list, a tuple, or one int = one block); None if unset."""
    if channels is None:
        return None
    return len(channels) if isinstance(channels, (list, tuple)) else 1
