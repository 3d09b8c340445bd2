"""The hazards a GPU run would meet, checked on the CPU: CUDA graphs with gradient accumulation refused, the data's
precision never changed by the card, the precision a run resolves to in its identity, and an evaluation (with its BN
statistics pass) that does not depend on the number of processes."""
import numpy as np
import pytest
import torch

from slnl import recipes
from slnl.engine import bnstats, fetch
from slnl.engine import distributed as D
from slnl.engine.cli import main as train_main
from slnl.engine.config import config_diff
from slnl.study import planning as study_plan


# --------------------------------------------------------------------------------------------------------------------
# CUDA graphs (compile_mode reduce-overhead) cannot accumulate gradients
# --------------------------------------------------------------------------------------------------------------------
def test_cuda_graphs_with_gradient_accumulation_are_refused_when_the_configuration_is_made(capsys):
    with pytest.raises(ValueError, match="reduce-overhead.*accum_steps=2"):
        recipes.config_for("cpu", compile=True, compile_mode="reduce-overhead", accum_steps=2)
    recipes.config_for("cpu", compile=True, compile_mode="reduce-overhead", accum_steps=1)  # each alone is fine
    recipes.config_for("cpu", compile=True, accum_steps=2)
    # a CPU dry run refuses it too, in one line
    assert train_main(["train", "--preset", "cpu", "--compile", "--compile-mode", "reduce-overhead", "--accum-steps", "2",
                       "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot accumulate gradients" in err[0]


# --------------------------------------------------------------------------------------------------------------------
# The data's precision: float32 unless float16 is asked for; the same choice on every process
# --------------------------------------------------------------------------------------------------------------------
class _Split:
    """A split's shape as fetchers() reads it: 10 clips of (3, 100, 25, 2) float32 = 60 kB each."""

    def __init__(self):
        self.indices = np.arange(10)
        self.num_frames = np.full(10, 100)
        self.x = np.zeros((1, 3, 100, 25, 2), dtype=np.float32)


@pytest.fixture
def fake_cuda(monkeypatch):
    """fetchers() on a pretend CUDA device with ``free`` bytes: records the GPU fetchers' dtype instead of copying."""
    made = []

    class Recorder:
        def __init__(self, ds, device, dtype):
            made.append(dtype)

    monkeypatch.setattr(fetch, "GPUFetcher", Recorder)
    free = {"bytes": 0}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free["bytes"], 2 * free["bytes"]))
    monkeypatch.setattr(fetch, "resident_fits", lambda need, f, info, device: need < 0.4 * f)
    return made, free


def test_auto_keeps_the_data_in_float32_on_the_gpu_or_streams_it_never_float16(fake_cuda):
    made, free = fake_cuda
    need = 2 * 10 * 3 * 100 * 25 * 2 * 4  # train + test, float32
    free["bytes"] = int(need / 0.4) + 1000  # float32 fits
    mode, *_ = fetch.fetchers(_Split(), _Split(), torch.device("cuda"), "auto")
    assert mode == "gpu" and made == [torch.float32, torch.float32]
    made.clear()
    free["bytes"] = int(need / 2 / 0.4) + 1000  # only float16 would fit: the old code stored float16 silently
    mode, train, test = fetch.fetchers(_Split(), _Split(), torch.device("cuda"), "auto")
    assert mode == "cpu" and made == [] and isinstance(train, fetch.CPUFetcher)
    mode, *_ = fetch.fetchers(_Split(), _Split(), torch.device("cuda"), "gpu-fp16")  # asked for: float16
    assert mode == "gpu-fp16" and made == [torch.float16, torch.float16]
    with pytest.raises(ValueError, match="needs a CUDA device"):
        fetch.fetchers(_Split(), _Split(), torch.device("cpu"), "gpu-fp16")


def test_every_process_makes_the_same_choice(monkeypatch):
    # The other process has no room: its flag, all-reduced with MAX, makes this one stream from the host too.
    seen = []

    def other_is_short(t, info):
        seen.append(float(t))
        return t.fill_(1.0)

    monkeypatch.setattr(D, "all_reduce_max", other_is_short)
    assert fetch.resident_fits(10, 1000, D.DistInfo(), torch.device("cpu")) is False and seen == [0.0]
    monkeypatch.undo()
    assert fetch.resident_fits(10, 1000, D.DistInfo(), torch.device("cpu")) is True


def test_float16_data_is_part_of_what_a_run_trains():
    a = recipes.config_for("cpu", data_mode="auto")
    b = a.replace(data_mode="gpu")
    c = a.replace(data_mode="gpu-fp16")
    assert a.identity() == b.identity() and config_diff(a, b) == {}  # float32 either way: a run may move
    assert c.identity()["data_dtype"] == "float16" and config_diff(a, c) == {"data_dtype": ("float32", "float16")}
    assert a.default_out() != c.default_out()
    assert study_plan.trained_as(a) != study_plan.trained_as(c)


# --------------------------------------------------------------------------------------------------------------------
# The study's identity holds the precision as resolved on the run's device
# --------------------------------------------------------------------------------------------------------------------
def test_a_bf16_gpu_run_is_not_the_same_run_as_a_cpu_fp32_one(monkeypatch):
    cfg = recipes.config_for("cpu", table="table6", row="slnl-5", precision="auto", device="auto")
    on_cpu = study_plan.trained_as(cfg)
    assert (on_cpu["precision"], on_cpu["device_type"]) == ("fp32", "cpu")
    assert study_plan.trained_as(cfg.replace(precision="fp32")) == on_cpu  # auto on the CPU is fp32
    monkeypatch.setattr(study_plan, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    on_gpu = study_plan.trained_as(cfg)
    assert (on_gpu["precision"], on_gpu["device_type"]) == ("bf16", "cuda")
    assert study_plan.config_key(on_gpu, cfg.epochs) != study_plan.config_key(on_cpu, cfg.epochs)
    fp32_gpu = study_plan.trained_as(cfg.replace(precision="fp32"))
    assert fp32_gpu["precision"] == "fp32" and fp32_gpu != on_cpu  # other kernels, other rounding


# --------------------------------------------------------------------------------------------------------------------
# The evaluation batch is global: the BN statistics pass sees the same batches whatever the number of processes
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("world,batch,n", [(2, 8, 32), (3, 8, 30), (4, 5, 36), (2, 64, 20)])
def test_statistics_batches_do_not_depend_on_the_number_of_processes(world, batch, n):
    positions = bnstats.stats_positions(n, world)
    one = [b.tolist() for b in bnstats._my_batches(positions, batch, D.DistInfo(), synced=False)]
    dealt = [b.tolist() for r in range(world)
             for b in bnstats._my_batches(positions, batch, D.DistInfo(rank=r, world_size=world), synced=False)]
    assert sorted(dealt) == sorted(one)  # the same batches, each whole on one process
    # SyncBatchNorm: every batch shared out in equal parts, which together are one batch of a single process's pass
    shares = [bnstats._my_batches(positions, batch, D.DistInfo(rank=r, world_size=world), synced=True)
              for r in range(world)]
    assert len({len(s) for s in shares}) == 1  # every process runs the same number of forward passes
    for parts in zip(*shares):
        assert len({len(p) for p in parts}) == 1 and len(parts[0]) > 0
    joined = sorted(np.concatenate([np.concatenate(s) for s in shares]).tolist())
    assert joined == sorted(positions.tolist())
