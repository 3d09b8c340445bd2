"""TrainConfig: explicit (nothing looked up), validation, YAML round trip, CLI precedence; metrics arithmetic."""
import dataclasses

import numpy as np
import pytest
import torch

from slnl.engine.cli import config_from_args
from slnl.engine.config import TrainConfig, config_diff, save_config
from slnl.engine.metrics import EvalAccumulator, topk_hits
from slnl.recipes import RECIPES, config_for


def test_a_config_names_everything_it_trains_with():
    # the fields that say what is trained have no default: the engine looks nothing up
    required = {f.name for f in dataclasses.fields(TrainConfig) if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING}
    assert {"preset", "split", "loss", "gamma", "m", "epochs", "batch_size", "lr", "weight_decay", "lr_decay",
            "eval_every", "bn_stats"} == required
    full = config_for("cpu").to_dict()
    with pytest.raises(ValueError, match=r"\['epochs'\] not set.*recipe"):
        TrainConfig.from_dict({k: v for k, v in full.items() if k != "epochs"})
    assert TrainConfig.from_dict(full) == config_for("cpu")


def test_explicit_values_override_the_recipe():
    c = config_for("ntu", epochs=3, lr=0.01, batch_size=8)
    assert (c.epochs, c.lr, c.batch_size, c.lr_decay) == (3, 0.01, 8, RECIPES["ntu"].lr_decay)
    assert c.eval_batch_size == 8  # the ntu recipe evaluates at the training batch


@pytest.mark.parametrize("field,value,needle", [
    ("preset", "", "preset"), ("loss", "MSE", "loss"), ("precision", "fp8", "precision"),
    ("batch_size", 0, "batch_size"), ("lr_decay", 1.5, "lr_decay"), ("device", "tpu", "device"),
    ("accum_steps", 0, "accum_steps"), ("checkpoint_every_steps", -1, "checkpoint_every_steps"),
])
def test_bad_values_are_rejected_by_name(field, value, needle):
    with pytest.raises(ValueError, match=needle):
        config_for("cpu").replace(**{field: value}).resolve()


def test_unknown_fields_are_rejected_by_name(tmp_path):
    with pytest.raises(ValueError, match="epoch_count"):
        TrainConfig.from_dict({"epoch_count": 3})
    p = tmp_path / "c.yaml"
    p.write_text("preset: cpu\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"c\.yaml.*learning_rate"):
        TrainConfig.load(p)
    p.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="mapping"):
        TrainConfig.load(p)


def test_yaml_round_trip(tmp_path):
    c = config_for("cpu", model={"channels": (8, 8, 16), "m1": 1}, seed=3, lr=0.5)
    save_config(c, tmp_path / "config.yaml", model_config={"channels": (8, 8, 16)})
    back = TrainConfig.load(tmp_path / "config.yaml")
    assert back.to_dict() == c.to_dict()
    assert config_diff(back, c) == {}
    assert set(config_diff(back, c.replace(lr=0.25, seed=4))) == {"lr", "seed"}


def test_default_run_dir_is_a_function_of_what_is_trained():
    a = config_for("cpu", seed=1)
    assert a.default_out() == config_for("cpu", seed=1, progress=True).default_out()
    assert a.default_out() != config_for("cpu", seed=2).default_out()
    assert a.default_out() != config_for("cpu", seed=1, model={"m1": 0}).default_out()


def test_cli_flags_override_config_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("preset: cpu\nepochs: 7\nlr: 0.01\nmodel: {m1: 2, K: 3}\n")
    c = config_from_args(["--config", str(f), "--epochs", "2", "--m1", "0", "--model", "channels=8,8,16",
                          "--model", "dropout=0", "--batch-size", "4", "--attention", "none", "--resume"])
    assert (c.preset, c.epochs, c.lr, c.batch_size, c.resume) == ("cpu", 2, 0.01, 4, True)
    assert c.model == {"m1": 0, "K": 3, "channels": [8, 8, 16], "dropout": 0, "attention": "none"}
    # flags not given keep the recipe's values (argparse must not inject its own defaults)
    assert config_from_args(["--preset", "kinetics"]) == config_for("kinetics")


def test_cli_resume_starts_from_the_saved_config(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    save_config(config_for("cpu", epochs=4, lr=0.02, model={"K": 2}), run / "config.yaml")
    c = config_from_args(["--out", str(run), "--resume", "--epochs", "6"])
    # the saved config is explicit: it names the split's adopted M1 (xsub: 5) beside the override it was given
    assert (c.preset, c.lr, c.epochs, c.model, c.resume) == ("cpu", 0.02, 6, {"K": 2, "m1": 5}, True)


# ----------------------------------------------------------------------------------------------------- metrics
def test_topk_hits_matches_a_direct_count():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(200, 9, generator=g), torch.randint(0, 9, (200,), generator=g)
    rank = (logits > logits.gather(1, y[:, None])).sum(1)  # classes scoring above the true one
    hits = topk_hits(logits, y, (1, 5, 20))
    assert hits[1] == int((rank < 1).sum()) and hits[5] == int((rank < 5).sum())
    assert hits[20] == 200  # k beyond #classes: every sample


def test_eval_accumulator_counts_add_up_across_shards():
    g = torch.Generator().manual_seed(1)
    logits, y = torch.randn(50, 6, generator=g), torch.randint(0, 5, (50,), generator=g)  # class 5 has no sample
    whole = EvalAccumulator(6)
    whole.update(logits, y, {"total": 1.0, "c": 0.5})
    a, b = EvalAccumulator(6), EvalAccumulator(6)
    a.update(logits[:17], y[:17], {"total": 1.0, "c": 0.5})
    b.update(logits[17:], y[17:], {"total": 1.0, "c": 0.5})
    merged = EvalAccumulator(6)
    merged.load_tensor(a.tensor() + b.tensor())  # what all_reduce(SUM) does across processes
    s, m = whole.summary(), merged.summary()
    assert s == m
    pred = logits.argmax(1)
    assert s["top1"] == pytest.approx(float((pred == y).float().mean()))
    assert np.array(s["confusion"]).sum() == 50 and np.trace(np.array(s["confusion"])) == int((pred == y).sum())
    assert s["per_class_accuracy"][5] is None
    for k in range(5):
        mask = y == k
        assert s["per_class_accuracy"][k] == pytest.approx(float((pred[mask] == k).float().mean()))
    assert s["loss"]["total"] == pytest.approx(1.0) and s["loss"]["c"] == pytest.approx(0.5)


@pytest.mark.parametrize("loss,gamma,m", [("CE", 0.0, 0.0), ("FL", 2.0, 0.0), ("SMCE", 0.0, 0.4), ("SMFL", 2.0, 0.4)])
def test_saved_config_names_only_the_parameters_the_loss_uses(loss, gamma, m):
    """make_loss ignores m for CE/FL and gamma for CE/SMCE; the resolved (saved) config must say what was trained."""
    cfg = config_for("cpu", loss=loss, gamma=2.0, m=0.4)
    assert (cfg.gamma, cfg.m) == (gamma, m)
