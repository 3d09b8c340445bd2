"""`slnl bench gpu-train` runs end to end (its --tiny CPU path; the CUDA sections are exercised on a GPU)."""
import torch

from slnl.bench.cli import main as bench_main
from slnl.bench.gpu_train import randomise_nonlocal
from slnl.models import build


def test_gpu_train_check_tiny_cpu_path(capsys):
    assert bench_main(["gpu-train", "--tiny", "--device", "cpu", "--engine", "plain", "sync_every=16",
                       "+channels_last"]) == 0
    out = capsys.readouterr().out
    assert "samples/s" in out and "fit(): PASS" in out and "ALL PASS" in out
    # the device comparison sees the non-local branches (random W_w) and checks an accumulated and a deferred step
    assert "non-local modules with random W_w" in out and "the non-local branches are seen" in out
    assert "train step accum_steps=2" in out and "train step sync_every=2" in out
    for variant in ("plain", "sync_every=16", "+channels_last"):  # each engine variant trained and was timed
        assert f"engine {variant}" in out and "FAILED" not in out


def test_a_nonlocal_module_at_initialisation_contributes_nothing_and_randomised_it_does():
    torch.manual_seed(0)
    kw = dict(channels=(8, 8, 16, 16, 16, 16), T=16, new_joints=8, K=2, num_classes=10)
    model, plain = build("cpu", **kw).eval(), build("cpu", **dict(kw, affinity="Local")).eval()
    plain.load_state_dict(model.state_dict(), strict=False)  # the same weights without non-local modules
    x = torch.randn(2, 3, 16, 25, 2)
    with torch.no_grad():
        assert torch.equal(model(x).c, plain(x).c)  # W_w = 0: the check at initialisation could not see them
        assert randomise_nonlocal(model) > 0
        assert not torch.allclose(model(x).c, plain(x).c)
