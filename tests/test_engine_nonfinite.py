"""A non-finite gradient behind a finite loss is a non-finite step: never applied, counted as a non-finite loss is,
with sync_every = 1 and > 1 alike; and weights holding a NaN or ±inf are never written to last.pt."""
import copy
import itertools
import math

import pytest
import torch

from slnl.engine import NonFiniteLossError, fit
from slnl.engine import checkpoint as ckpt
from slnl.engine import step as step_mod
from slnl.engine.config import as_config
from slnl.engine.step import TrainStep, build
from test_engine_fit import tiny_config, tiny_store  # noqa: F401  (the fixture)

NAN = float("nan")
SHAPES = dict(num_classes=4, num_joints=5, in_channels=3, num_persons=2, dropout=0.0)


def tiny_step(store, out, sync_every):
    cfg = as_config(tiny_config(store, out, sync_every=sync_every, model=SHAPES)).resolve()
    t = build(cfg, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 16, 5, 2, generator=g)
    y = torch.arange(8) % 4
    return t, TrainStep(t, cfg.accum_steps, cfg.sync_every), x, y


def snapshot(t):
    return ([p.detach().clone() for p in t.model.parameters()], copy.deepcopy(t.opt.state_dict()["state"]))


def assert_same(a, b):
    assert all(torch.equal(p, q) for p, q in zip(a[0], b[0])), "a parameter changed"
    assert a[1].keys() == b[1].keys()
    for k in a[1]:
        assert all(torch.equal(a[1][k][s], b[1][k][s]) for s in a[1][k]), f"Adam state {k} changed"


@pytest.mark.parametrize("sync_every", [1, 2])
def test_a_nonfinite_gradient_with_a_finite_loss_is_not_applied(tiny_store, tmp_path, sync_every):
    """Step 2 back-propagates NaN into one parameter from a finite loss: parameters and Adam's state stay as step 1
    left them, the step is reported (sync_every = 1: at once; > 1: by check(), with zero sums), and step 3 trains."""
    t, step, x, y = tiny_step(tiny_store, tmp_path, sync_every)
    step(x, y, global_step=1)
    before = snapshot(t)
    hook = next(t.model.parameters()).register_hook(lambda g: torch.full_like(g, NAN))
    res = step(x, y, global_step=2)
    hook.remove()
    assert_same(snapshot(t), before)
    if sync_every == 1:
        assert math.isfinite(float(res.sums[0])), "the loss itself was finite"
        assert res.nonfinite is not None and math.isnan(float(res.nonfinite))
    else:
        assert res.nonfinite is None and not res.sums.any()  # skipped on the device: adds nothing to the epoch
    res = step(x, y, global_step=3)  # training goes on from the unpoisoned weights
    assert res.nonfinite is None and math.isfinite(float(res.loss))
    after = snapshot(t)[0]
    assert all(torch.isfinite(p).all() for p in after)
    assert not all(torch.equal(p, q) for p, q in zip(after, before[0])), "step 3 was not taken"
    if sync_every > 1:
        bad_step, bad_loss, stop = step.check(False)
        assert bad_step == 2 and math.isnan(float(bad_loss)) and not stop


def nan_gradient_at(monkeypatch, n):
    """Models built by the engine get NaN as their first parameter's gradient in backward number ``n`` (global
    step n), behind a finite loss."""
    real = step_mod.build_model

    def build_model(cfg):
        model = real(cfg)
        calls = itertools.count(1)
        next(model.parameters()).register_hook(lambda g: torch.full_like(g, NAN) if next(calls) == n else g)
        return model

    monkeypatch.setattr(step_mod, "build_model", build_model)


def test_fit_stops_at_a_nonfinite_gradient_as_at_a_nonfinite_loss(tiny_store, tmp_path, monkeypatch):
    nan_gradient_at(monkeypatch, 7)  # epoch 2, step 3 (as SLNL_FAULT=nan@7 in test_engine_fit)
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 3 \(global step 7\)"):
        fit(tiny_config(tiny_store, run, checkpoint_every_steps=1))
    state = ckpt.load(run / "last.pt")
    assert (state["epoch"], state["step"], state["global_step"]) == (1, 2, 6)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_sync_every_skips_and_reports_a_nonfinite_gradient(tiny_store, tmp_path, monkeypatch):
    nan_gradient_at(monkeypatch, 7)  # checked at the epoch's last step (4)
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 3 \(global step 7\).*reported at step 4.*the 1 after"):
        fit(tiny_config(tiny_store, run, sync_every=8))
    state = ckpt.load(run / "last.pt")
    assert (state["epoch"], state["step"], state["global_step"]) == (1, 0, 4)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


@pytest.mark.parametrize("kind", ["parameter", "buffer"])
def test_nonfinite_weights_are_never_checkpointed(tiny_store, tmp_path, monkeypatch, kind):
    """Weights poisoned after step 3 (however: a kernel fault, a bad update): the checkpoint due after it is refused,
    naming the tensor, and last.pt keeps step 2's finite state."""
    real = TrainStep.__call__
    poisoned = {}

    def call(self, x, y, global_step, **kw):
        res = real(self, x, y, global_step, **kw)
        if global_step == 3:
            named = self.t.model.named_parameters() if kind == "parameter" else (
                (n, b) for n, b in self.t.model.named_buffers() if b.is_floating_point())
            name, v = next(iter(named))
            with torch.no_grad():
                v.view(-1)[0] = NAN
            poisoned["name"] = name
        return res

    monkeypatch.setattr(TrainStep, "__call__", call)
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"last\.pt not written: .* is NaN or ±inf after global step 3") as e:
        fit(tiny_config(tiny_store, run, checkpoint_every_steps=1))
    assert f"the model's {poisoned['name']} is NaN" in str(e.value)
    state = ckpt.load(run / "last.pt")
    assert state["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
