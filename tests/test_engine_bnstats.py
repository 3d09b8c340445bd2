"""BN statistics recomputed for evaluation (slnl.engine.bnstats): the population statistics of each layer's input,
dropout off, no random numbers drawn; in a run, the checkpoint holds them and evaluation uses them."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
import torch
from torch import nn

from slnl import data as sdata
from slnl.engine import bnstats, fit
from slnl.engine.evaluation import load_model
from slnl.engine.fetch import CPUFetcher
from test_engine_fit import tiny_config, tiny_store  # noqa: F401  (the fixture)


class Out(NamedTuple):
    c: torch.Tensor


class Toy(nn.Module):
    """BN on the raw input, then conv, ReLU, dropout, BN again: the block order of the paper's network."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.bn0 = nn.BatchNorm1d(3)
        self.conv = nn.Conv1d(3, 4, 3, padding=1)
        self.drop = nn.Dropout(p) if p else nn.Identity()
        self.bn1 = nn.BatchNorm1d(4)

    def forward(self, x):
        return Out(self.bn1(self.drop(torch.relu(self.conv(self.bn0(x))))).mean(2))


def _data(n: int = 37) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    scale, shift = torch.tensor([1.0, 5.0, 0.1])[:, None], torch.tensor([2.0, -3.0, 0.5])[:, None]
    return torch.randn(n, 3, 10, generator=g) * scale + shift


def _fetch(x):
    return lambda pos: (x[torch.as_tensor(pos)], torch.zeros(len(pos), dtype=torch.int64))


def _run(model, x, batch):
    return bnstats.recompute(model, _fetch(x), np.arange(len(x)), batch, torch.device("cpu"), "fp32")


@pytest.mark.parametrize("batch", [1, 5, 64])
def test_the_first_bn_gets_its_inputs_population_mean_and_variance_whatever_the_batch(batch):
    x = _data()
    torch.manual_seed(1)
    model = Toy()
    assert _run(model, x, batch) == 2
    flat = x.double().transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(model.bn0.running_mean, flat.mean(1).float())
    torch.testing.assert_close(model.bn0.running_var, flat.var(1, unbiased=False).float())


def test_one_batch_pass_makes_evaluation_equal_training_mode_without_dropout():
    """Were the pass one batch, every BN's statistics are exactly what training-mode BN divides by on it."""
    x = _data()
    torch.manual_seed(1)
    model = Toy(p=0.5)
    _run(model, x, batch=len(x))
    with torch.no_grad():
        evaluated = model(x).c
        model.train()
        model.drop.eval()
        trained = model(x).c
    torch.testing.assert_close(evaluated, trained, rtol=1e-5, atol=1e-5)


def test_dropout_is_off_no_random_numbers_are_drawn_and_only_bn_buffers_change():
    x = _data()
    torch.manual_seed(1)
    with_dropout = Toy(p=0.9)
    without = Toy(p=0.0)
    without.load_state_dict(with_dropout.state_dict())
    weights = {k: v.clone() for k, v in with_dropout.state_dict().items() if "running" not in k}
    rng = torch.get_rng_state()
    _run(with_dropout, x, 8)
    assert torch.equal(torch.get_rng_state(), rng)
    _run(without, x, 8)
    torch.testing.assert_close(with_dropout.bn1.running_var, without.bn1.running_var)
    torch.testing.assert_close(with_dropout.bn1.running_mean, without.bn1.running_mean)
    assert not with_dropout.training and not with_dropout.drop.training
    for k, v in with_dropout.state_dict().items():
        if "running" not in k:
            assert torch.equal(v, weights[k]), k  # num_batches_tracked included: the pass is not training


def test_stats_positions_are_evenly_spaced_and_equal_across_processes():
    p = bnstats.stats_positions(284)
    assert p.tolist() == list(range(284))
    big = bnstats.stats_positions(40_091, world_size=3)
    assert len(big) == bnstats.STATS_CLIPS - bnstats.STATS_CLIPS % 3 and len(np.unique(big)) == len(big)
    assert big[0] == 0 and np.all(np.diff(big) > 0) and big[-1] >= 40_000
    assert len(bnstats.stats_positions(10, world_size=4)) == 8
    with pytest.raises(ValueError, match="at least 2"):
        bnstats.stats_positions(1, world_size=2)


def test_a_runs_checkpoint_holds_the_recomputed_statistics(tiny_store, tmp_path):  # noqa: F811
    """The final model evaluated in training is the checkpoint's: its BN buffers are those of the training clips'
    central crops, and training's running averages (``bn_stats="running"``) give other buffers, same weights."""
    fit(tiny_config(tiny_store, tmp_path / "re", epochs=1, max_steps_per_epoch=2, bn_stats="recompute"))
    fit(tiny_config(tiny_store, tmp_path / "ru", epochs=1, max_steps_per_epoch=2, bn_stats="running"))
    re_model, cfg, _, _ = load_model(tmp_path / "re")
    ru_model, *_ = load_model(tmp_path / "ru")
    re_sd, ru_sd = re_model.state_dict(), ru_model.state_dict()
    for k in re_sd:
        if "running" not in k and "num_batches" not in k:
            assert torch.equal(re_sd[k], ru_sd[k]), k  # the estimate of BN statistics does not touch training
    assert any(not torch.allclose(re_sd[k], ru_sd[k]) for k in re_sd if "running_var" in k)
    ds = sdata.load(tiny_store, cfg.split, "train", T=re_model.config.T, train=False, seed=cfg.seed)
    bnstats.recompute(ru_model, CPUFetcher(ds, pin=False), bnstats.stats_positions(len(ds)), cfg.eval_batch_size,
                      torch.device("cpu"), "fp32")
    for k, v in ru_model.state_dict().items():
        torch.testing.assert_close(v, re_sd[k], rtol=1e-5, atol=1e-6, msg=k)


def test_a_running_statistics_run_evaluates_both_and_trains_on_its_running_averages(tiny_store, tmp_path,
                                                                                    monkeypatch):
    """With bn_stats="running" (the paper's evaluation) every evaluation also reports the recomputed statistics, on
    a snapshot put back afterwards: the run trains and checkpoints exactly what it would without that pass, and both
    of its numbers are those of the final model with each kind of statistics."""
    res = fit(tiny_config(tiny_store, tmp_path / "both", epochs=2, eval_every=1, bn_stats="running"))
    monkeypatch.setattr(bnstats, "recompute", lambda *a, **k: 0)  # no pass at all
    fit(tiny_config(tiny_store, tmp_path / "none", epochs=2, eval_every=1, bn_stats="running"))
    a, b = load_model(tmp_path / "both")[0].state_dict(), load_model(tmp_path / "none")[0].state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k  # running averages included: the pass left no trace
    monkeypatch.undo()
    r = res.result
    assert (r["top1"], r["top5"]) == (r["by_bn_stats"]["running"]["top1"], r["by_bn_stats"]["running"]["top5"])
    for h in res.history:  # every evaluation has both
        assert {"test_running", "test_recomputed"} <= set(h) and h["test"]["top1"] == h["test_running"]["top1"]
    rec = fit(tiny_config(tiny_store, tmp_path / "re", epochs=2, eval_every=1, bn_stats="recompute")).result
    assert (rec["top1"], rec["top5"]) == tuple(rec["by_bn_stats"]["recomputed"][k] for k in ("top1", "top5"))
    csv_head = (tmp_path / "both" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"test_top1_running", "test_top1_recomputed", "test_top5_running", "test_top5_recomputed"} <= set(csv_head)
