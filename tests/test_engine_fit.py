"""fit(): the §4.1 update, run directory contents, evaluation, resumption (in process, after SIGKILL, after SIGTERM),
non-finite losses, protection of finished work. A tiny store written in the documented format keeps it fast."""
import copy
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from slnl.data.store import write_store
from slnl.engine import NonFiniteLossError, TrainConfig, evaluate, fit, resume
from slnl.engine import checkpoint as ckpt
from slnl.engine.metrics import TEST, TEST_TOP1
from slnl.recipes import config_for

REPO = Path(__file__).resolve().parent.parent
TINY_MODEL = dict(channels=(8, 8, 16, 16, 16, 16), T=16, new_joints=4, K=2)


def make_tiny_store(root: Path, N: int = 48, C: int = 3, T: int = 40, V: int = 5, M: int = 2, K: int = 4,
                    seed: int = 0, dataset: str = "tiny-test") -> Path:
    """A store per docs/design.md (x.npy, labels.npy, num_frames.npy, splits.npz, meta.json with its content
    fingerprint): K classes of sinusoids with class-dependent frequency plus noise (drawn from ``seed``); clips of
    10…T valid frames (zero beyond); every third row is test."""
    rng = np.random.default_rng(seed)
    labels = np.arange(N) % K
    nf = rng.integers(10, T + 1, N)
    t = np.linspace(0, 1, T)[None, None, :, None, None]
    x = np.sin(2 * np.pi * (labels + 1)[:, None, None, None, None] * t) + 0.3 * rng.standard_normal((N, C, T, V, M))
    x = x.astype(np.float32)
    for i, n in enumerate(nf):
        x[i, :, n:] = 0.0
    test = np.arange(N) % 3 == 0
    meta = {"dataset": dataset, "class_names": [f"class{k}" for k in range(K)],
            "names": [f"s{i:03d}" for i in range(N)], "splits": ["xsub"], "prepared_at": f"test store, seed {seed}"}
    return write_store(root, x, labels, nf, {"xsub_train": ~test, "xsub_test": test}, meta)


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    return make_tiny_store(tmp_path_factory.mktemp("tiny_store"))


def tiny_config(store, out, **kw) -> TrainConfig:
    """The cpu recipe on the tiny store with a tiny model: two epochs at batch 8, deterministic, quiet."""
    model = dict(TINY_MODEL, **kw.pop("model", {}))
    base = dict(data=str(store), out=str(out), epochs=2, batch_size=8, deterministic=True, progress=False)
    base.update(kw)
    return config_for("cpu", model=model, **base)


def params(path) -> dict:
    return ckpt.load(path)["model"]


def assert_state_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


def strip_times(history):
    drop = {"epoch_time_s", "train_time_s", "eval_time_s", "samples_per_s"}
    return [{k: v for k, v in h.items() if k not in drop} for h in history]


def run_cli(args, env_extra=None, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("SLNL_FAULT", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "slnl", "train", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def cli_args(store, out, **kw):
    args = ["--preset", "cpu", "--data", str(store), "--out", str(out), "--epochs", str(kw.pop("epochs", 2)),
            "--batch-size", "8", "--deterministic", "--no-progress", "--model", "channels=8,8,16,16,16,16",
            "--model", "T=16", "--model", "new_joints=4", "--model", "K=2"]
    for k, v in kw.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args


# ------------------------------------------------------------------------------------------------------------------
def test_one_step_is_adam_on_the_multitask_smfl_loss(tiny_store, tmp_path):
    """The engine's first optimiser step equals Adam(lr, wd) on L = L_p + L_v + L_c (Eq. 21) of the first global
    batch of epoch_order(seed, epoch 0), from the weights build() gives under manual_seed(seed)."""
    from slnl import data as sdata
    from slnl.losses import MultiTaskLoss, make_loss
    from slnl.models import build

    seed = 5
    # bn_stats="running": the BN buffers compared below are the step's own running averages (not recomputed)
    fit(tiny_config(tiny_store, tmp_path / "run", epochs=1, max_steps_per_epoch=1, seed=seed, lr=3e-3,
                    model=dict(dropout=0.0), bn_stats="running"))
    got = params(tmp_path / "run" / "last.pt")

    random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)
    model = build("cpu", **TINY_MODEL, dropout=0.0, num_classes=4, num_joints=5, in_channels=3, num_persons=2)
    ds = sdata.load(tiny_store, "xsub", "train", T=16, seed=seed)
    ds.set_epoch(0)
    order = sdata.epoch_order(len(ds), seed, 0)[:8]
    x = torch.stack([ds[int(i)][0] for i in order])
    y = torch.tensor([ds[int(i)][1] for i in order])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=5e-4)
    total, parts = MultiTaskLoss(make_loss("SMFL", gamma=2.0, m=0.4))(model(x), y)
    assert torch.allclose(total, parts["p"] + parts["v"] + parts["c"])
    total.backward()
    opt.step()
    assert_state_equal(got, model.state_dict())


def test_run_directory_and_result(tiny_store, tmp_path):
    run = tmp_path / "run"
    res = fit(tiny_config(tiny_store, run, epochs=3, lr=2e-3, lr_decay=0.5))
    for f in ("config.yaml", "metrics.jsonl", "metrics.csv", "result.json", "last.pt"):
        assert (run / f).is_file(), f
    # Nothing is selected on the test split: no best-epoch checkpoint, no best-epoch numbers.
    assert not (run / "best.pt").exists()
    r = json.loads((run / "result.json").read_text())
    assert r == res.result and res.run_dir == run
    conf = np.array(r["confusion"])
    assert conf.shape == (4, 4) and conf.sum() == r["n_test"] == 16
    assert r["top1"] == pytest.approx(np.trace(conf) / conf.sum()) and 0 <= r["top1"] <= r["top5"] <= 1
    assert r["per_class_accuracy"] == pytest.approx(list(np.diag(conf) / conf.sum(1)))
    assert r["last_epoch"] == 3 and r["n_train"] == 32 and r["dataset"] == "tiny-test"
    for key in ("software", "git_commit", "device", "timings", "config", "model_config", "metrics"):
        assert key in r
    assert "best" not in r and r["schema"] == 4
    # both BN evaluations of the final model; the headline is the one the run's bn_stats names
    head = {"running": "running", "recompute": "recomputed"}[r["bn_stats"]]
    assert (r["top1"], r["top5"]) == tuple(r["by_bn_stats"][head][k] for k in ("top1", "top5"))
    assert set(r["by_bn_stats"]) == {"running", "recomputed"}
    # the store's identity: recorded in the result, the saved configuration and the checkpoint alike
    fp = json.loads((tiny_store / "meta.json").read_text())["fingerprint"]
    assert r["store_fingerprint"] == r["config"]["store_fingerprint"] == fp
    assert ckpt.load(run / "last.pt")["config"]["store_fingerprint"] == fp
    assert r["software"]["torch"] == torch.__version__ and r["device"]["type"] == "cpu"
    assert r["device"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()  # float results repeat on the same
    # Exponential decay per epoch, as in §4.1.
    assert [h["lr"] for h in r["metrics"]] == pytest.approx([2e-3, 1e-3, 5e-4])
    # metrics.jsonl == history; metrics.csv has one row per epoch with the same numbers.
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines == r["metrics"] == res.history
    import csv

    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [float(x[TEST_TOP1]) for x in rows] == [h[TEST]["top1"] for h in lines]
    assert TEST_TOP1 == "test_top1" and "val" not in lines[0] and not any(c.startswith("val") for c in rows[0])
    assert [float(x["train_loss_c"]) for x in rows] == [h["train"]["loss"]["c"] for h in lines]
    # Train loss is the sum of the three heads (Eq. 21), averaged per sample.
    for h in lines:
        tl = h["train"]["loss"]
        assert tl["total"] == pytest.approx(tl["p"] + tl["v"] + tl["c"])
    # The reported numbers are the final epoch's (as the paper reports), not the best epoch's on the test split.
    assert (r["top1"], r["top5"]) == (lines[-1][TEST]["top1"], lines[-1][TEST]["top5"])
    # The saved configuration is the resolved one and trains the same run.
    saved = TrainConfig.load(run / "config.yaml")
    assert saved.lr == 2e-3 and saved.precision == "fp32" and saved.model["num_classes"] == 4


def test_evaluate_recomputes_the_final_numbers_independently(tiny_store, tmp_path, capsys):
    from slnl import data as sdata
    from slnl.models import build

    run = tmp_path / "run"
    res = fit(tiny_config(tiny_store, run, epochs=1))
    ev = evaluate(run)
    assert ev["top1"] == res.top1 and ev["top5"] == res.top5 and ev["confusion"] == res.result["confusion"]
    # By hand: central crops of the test subset through the saved weights, prediction from p_c.
    model = build("cpu", **TINY_MODEL, num_classes=4, num_joints=5, in_channels=3, num_persons=2)
    model.load_state_dict(params(run / "last.pt"))
    model.eval()
    ds = sdata.load(tiny_store, "xsub", "test", T=16, train=False)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor([ds[i][1] for i in range(len(ds))])
    with torch.no_grad():
        c = model(x).c
    assert ev["top1"] == pytest.approx(float((c.argmax(1) == y).float().mean()))
    top5 = c.topk(min(5, c.shape[1]), 1).indices.eq(y[:, None]).any(1).float().mean()
    assert ev["top5"] == pytest.approx(float(top5))
    # `slnl eval RUN_DIR --json` prints the same numbers (the summary otherwise) and can write the full result.
    from slnl.engine.cli import main

    assert main(["eval", str(run), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["top1"], printed["top5"], printed["n"]) == (ev["top1"], ev["top5"], 16)
    assert main(["eval", str(run), "--json", str(tmp_path / "ev.json")]) == 0
    assert f"top-1 {100 * ev['top1']:.1f} %" in capsys.readouterr().out
    assert json.loads((tmp_path / "ev.json").read_text())["confusion"] == ev["confusion"]
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    # A checkpoint file is as good as its run directory: the same numbers.
    assert evaluate(run / "last.pt")["confusion"] == ev["confusion"]


def test_a_fresh_run_removes_a_stale_best_checkpoint(tiny_store, tmp_path):
    """A directory written when runs also kept best.pt: overwriting it leaves no stale best.pt beside the new run
    (nothing would tell which of the two the final model is)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"stale")
    fit(tiny_config(tiny_store, run, epochs=1, max_steps_per_epoch=1, overwrite=True))
    assert not (run / "best.pt").exists() and (run / "last.pt").is_file()


def test_finished_runs_are_protected_and_returned(tiny_store, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config(tiny_store, run, epochs=1)
    first = fit(cfg)
    mtime = (run / "last.pt").stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="finished run"):
        fit(cfg)
    again = fit(cfg.replace(resume=True))  # returns the stored result, trains nothing
    assert again.result == first.result and (run / "last.pt").stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="lr: saved 0.001, now 0.5"):
        fit(cfg.replace(resume=True, lr=0.5))
    third = fit(cfg.replace(overwrite=True, seed=1))
    assert third.result["config"]["seed"] == 1 and (run / "last.pt").stat().st_mtime_ns != mtime


def test_resume_to_more_epochs_equals_one_longer_run(tiny_store, tmp_path):
    full = fit(tiny_config(tiny_store, tmp_path / "full", epochs=3, checkpoint_every_steps=3))
    fit(tiny_config(tiny_store, tmp_path / "part", epochs=2, checkpoint_every_steps=3))
    part = resume(tmp_path / "part", epochs=3)
    assert_state_equal(params(tmp_path / "full" / "last.pt"), params(tmp_path / "part" / "last.pt"))
    assert strip_times(part.history) == strip_times(full.history)
    assert part.top1 == full.top1 and part.result["confusion"] == full.result["confusion"]


def test_data_loader_workers_give_the_same_run(tiny_store, tmp_path):
    fit(tiny_config(tiny_store, tmp_path / "w0", epochs=1, max_steps_per_epoch=2))
    fit(tiny_config(tiny_store, tmp_path / "w1", epochs=1, max_steps_per_epoch=2, num_workers=1))
    assert_state_equal(params(tmp_path / "w0" / "last.pt"), params(tmp_path / "w1" / "last.pt"))


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tiny_store, tmp_path):
    """SIGKILL after optimiser step 3 (checkpoint every 2 steps: the last one is at epoch 1, step 2 of 4); the resumed
    run redoes step 3 and must end with exactly the weights and metrics of an uninterrupted run."""
    fit(tiny_config(tiny_store, tmp_path / "ref"))  # uninterrupted, in process (same arithmetic as the CLI)
    killed = run_cli(cli_args(tiny_store, tmp_path / "run", checkpoint_every_steps=2), {"SLNL_FAULT": "kill@3"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    state = ckpt.load(tmp_path / "run" / "last.pt")
    assert (state["epoch"], state["step"], state["global_step"]) == (0, 2, 2)
    assert not (tmp_path / "run" / "result.json").exists()
    done = run_cli(["--out", str(tmp_path / "run"), "--resume"])  # everything else from the saved config.yaml
    assert done.returncode == 0, done.stderr
    assert_state_equal(params(tmp_path / "ref" / "last.pt"), params(tmp_path / "run" / "last.pt"))
    r_ref = json.loads((tmp_path / "ref" / "result.json").read_text())
    r_run = json.loads((tmp_path / "run" / "result.json").read_text())
    assert strip_times(r_ref["metrics"]) == strip_times(r_run["metrics"])
    assert (r_ref["top1"], r_ref["top5"], r_ref["confusion"]) == (r_run["top1"], r_run["top5"], r_run["confusion"])


def test_sigterm_writes_a_checkpoint_and_resumes_exactly(tiny_store, tmp_path):
    fit(tiny_config(tiny_store, tmp_path / "ref"))
    # SIGTERM lands after step 3; the step in flight (4, the epoch's last) finishes, is checkpointed, the run exits.
    stopped = run_cli(cli_args(tiny_store, tmp_path / "run"), {"SLNL_FAULT": "term@3"})
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert "SIGTERM" in stopped.stderr and "checkpoint" in stopped.stderr
    state = ckpt.load(tmp_path / "run" / "last.pt")
    assert (state["epoch"], state["step"], state["global_step"]) == (0, 4, 4)
    assert state["history"] == [] and not (tmp_path / "run" / "result.json").exists()
    with pytest.raises(FileExistsError, match="unfinished run"):
        fit(tiny_config(tiny_store, tmp_path / "run"))
    res = fit(tiny_config(tiny_store, tmp_path / "run", resume=True))
    assert_state_equal(params(tmp_path / "ref" / "last.pt"), params(tmp_path / "run" / "last.pt"))
    assert len(res.history) == 2


def test_sigint_handler_is_restored_after_fit(tiny_store, tmp_path):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    fit(tiny_config(tiny_store, tmp_path / "run", epochs=1, max_steps_per_epoch=1))
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_nonfinite_loss_stops_with_epoch_and_step_and_keeps_the_last_good_checkpoint(tiny_store, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setenv("SLNL_FAULT", "nan@7")  # epoch 2, step 3
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 3"):
        fit(tiny_config(tiny_store, run, checkpoint_every_steps=1))
    state = ckpt.load(run / "last.pt")
    assert (state["epoch"], state["step"], state["global_step"]) == (1, 2, 6)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (run / "result.json").exists()
    # The kept checkpoint is good: resuming (without the fault) finishes the run.
    monkeypatch.delenv("SLNL_FAULT")
    assert len(fit(tiny_config(tiny_store, run, checkpoint_every_steps=1, resume=True)).history) == 2


def test_huge_learning_rate_is_caught(tiny_store, tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"non-finite training step .* at epoch \d+, step \d+"):
        fit(tiny_config(tiny_store, tmp_path / "run", lr=1e30, epochs=3))


def test_bf16_autocast_trains_on_cpu(tiny_store, tmp_path):
    res = fit(tiny_config(tiny_store, tmp_path / "run", epochs=1, max_steps_per_epoch=2, precision="bf16"))
    assert res.result["device"]["precision"] == "bf16"
    assert np.isfinite(res.history[0]["train"]["loss"]["total"])


def test_store_mismatch_and_bad_batch_are_clear_errors(tiny_store, tmp_path):
    with pytest.raises(ValueError, match="num_classes=60 does not match"):
        fit(tiny_config(tiny_store, tmp_path / "a", model=dict(num_classes=60)))
    with pytest.raises(ValueError, match="fewer than one batch"):
        fit(tiny_config(tiny_store, tmp_path / "b", batch_size=64))
    with pytest.raises(ValueError, match="divisible"):
        fit(tiny_config(tiny_store, tmp_path / "c", accum_steps=3))


def test_gpu_fetcher_equals_cpu_fetcher(tiny_store):
    """The GPU-resident path (exercised here on the CPU device) gives the same batches as the dataset."""
    from slnl import data as sdata
    from slnl.engine.fetch import CPUFetcher, GPUFetcher

    for subset in ("train", "test"):
        ds = sdata.load(tiny_store, "xsub", subset, T=16, seed=3)
        ds.set_epoch(2)
        pos = np.array([5, 0, 3, 3, len(ds) - 1])
        xc, yc = CPUFetcher(ds, pin=False)(pos)
        xg, yg = GPUFetcher(ds, torch.device("cpu"), torch.float32)(pos)
        assert torch.equal(xc, xg) and torch.equal(yc, yg)


def test_progress_bar_only_when_asked(tiny_store, tmp_path, capsys):
    fit(tiny_config(tiny_store, tmp_path / "quiet", epochs=1, max_steps_per_epoch=2))
    assert "sample/s" not in capsys.readouterr().err
    fit(tiny_config(tiny_store, tmp_path / "bar", epochs=1, max_steps_per_epoch=2, progress=True))
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "sample/s" in err  # tqdm: throughput and ETA in samples


def test_single_stream_row_reports_only_its_head(tiny_store, tmp_path):
    res = fit(tiny_config(tiny_store, tmp_path / "run", epochs=1, max_steps_per_epoch=2, model=dict(transform="Pos-N")))
    tl, vl = res.history[0]["train"]["loss"], res.history[0][TEST]["loss"]
    assert tl["p"] is None and tl["v"] is None and tl["total"] == pytest.approx(tl["c"])
    assert vl["p"] is None and vl["v"] is None and vl["total"] == pytest.approx(vl["c"])
    ev = evaluate(tmp_path / "run")  # slnl eval reports no loss for the absent heads either (not a fabricated 0)
    assert ev["loss"]["p"] is None and ev["loss"]["v"] is None and ev["loss"]["total"] == pytest.approx(ev["loss"]["c"])


def test_split_aliases_are_canonical_in_the_saved_config(tiny_store, tmp_path):
    res = fit(tiny_config(tiny_store, tmp_path / "run", epochs=1, max_steps_per_epoch=1, split="CS"))
    assert res.result["split"] == "xsub" and TrainConfig.load(tmp_path / "run" / "config.yaml").split == "xsub"


def test_rng_state_round_trip_and_checkpoint_errors(tmp_path):
    random.gauss(0, 1), np.random.standard_normal()  # both cache a second normal deviate: part of the state
    ckpt.save({"rng": ckpt.rng_state()}, tmp_path / "rng.pt")  # through the file, as a resumed run reads it
    draw = lambda: (random.random(), random.gauss(0, 1), np.random.rand(), np.random.standard_normal(),  # noqa: E731
                    torch.rand(3))
    a = draw()
    ckpt.set_rng_state(ckpt.load(tmp_path / "rng.pt")["rng"])
    b = draw()
    assert a[:4] == b[:4] and torch.equal(a[4], b[4])
    ckpt.save({"x": torch.arange(3)}, tmp_path / "c.pt")
    assert torch.equal(ckpt.load(tmp_path / "c.pt")["x"], torch.arange(3))
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match=r"half\.pt: cannot read checkpoint"):
        ckpt.load(tmp_path / "half.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ckpt.CheckpointError, match=r"foreign\.pt: not an slnl checkpoint"):
        ckpt.load(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        ckpt.load(tmp_path / "missing.pt")
    # what weights_only could not load again is refused when written, not when needed
    with pytest.raises(TypeError, match=r"state\['x'\]\[1\]: numpy.ndarray is not a tensor"):
        ckpt.save({"x": [1, np.zeros(2)]}, tmp_path / "np.pt")
    assert not (tmp_path / "np.pt").exists()


# ---------------------------------------------------------------------------------------------------- sync_every
def test_fused_adam_found_inf_leaves_parameters_and_state_untouched():
    """The protocol sync_every > 1 relies on (torch.amp.GradScaler's): fused Adam with found_inf = 1 changes
    nothing — parameters, moments, step count — even with NaN gradients; with found_inf = 0 it is the plain step."""
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5))
    opt = torch.optim.Adam([w], lr=0.1, weight_decay=5e-4, fused=True)
    w.grad = torch.randn(5)
    opt.step()
    before = (w.detach().clone(), {k: v.clone() for k, v in opt.state[w].items()})
    w.grad = torch.full((5,), float("nan"))
    opt.found_inf = torch.ones(())
    opt.step()
    assert torch.equal(w.detach(), before[0])
    assert all(torch.equal(opt.state[w][k], v) for k, v in before[1].items())
    ref = torch.nn.Parameter(w.detach().clone())
    ref_opt = torch.optim.Adam([ref], lr=0.1, weight_decay=5e-4, fused=True)
    ref_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # (a state dict shares its tensors)
    g = torch.randn(5)
    w.grad, ref.grad = g.clone(), g.clone()
    opt.found_inf = torch.zeros(())
    opt.step()
    ref_opt.step()
    assert torch.equal(w.detach(), ref.detach())


def test_sync_every_trains_exactly_like_a_check_every_step(tiny_store, tmp_path):
    """Fewer host-device synchronisations change nothing that is trained: same weights, same metrics, bit for bit
    (against the same fused Adam checked every step)."""
    fit(tiny_config(tiny_store, tmp_path / "ref", fused_adam=True))
    res = fit(tiny_config(tiny_store, tmp_path / "run", sync_every=3))
    assert_state_equal(params(tmp_path / "ref" / "last.pt"), params(tmp_path / "run" / "last.pt"))
    ref = json.loads((tmp_path / "ref" / "result.json").read_text())
    assert strip_times(ref["metrics"]) == strip_times(res.history)
    assert res.result["config"]["sync_every"] == 3


def test_sync_every_still_skips_and_reports_the_nonfinite_step(tiny_store, tmp_path, monkeypatch):
    monkeypatch.setenv("SLNL_FAULT", "nan@7")  # epoch 2, step 3; checked at the epoch's last step (4)
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 3 \(global step 7\).*reported at step 4.*the 1 after"):
        fit(tiny_config(tiny_store, run, sync_every=8))
    state = ckpt.load(run / "last.pt")
    assert (state["epoch"], state["step"], state["global_step"]) == (1, 0, 4)  # epoch 1's: nothing after it
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_sync_every_acts_on_a_stop_signal_at_the_next_step(tiny_store, tmp_path, monkeypatch):
    from slnl.engine import TrainingInterrupted

    monkeypatch.setenv("SLNL_FAULT", "term@2")
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match="SIGTERM"):
        fit(tiny_config(tiny_store, run, sync_every=8))
    state = ckpt.load(run / "last.pt")
    assert (state["epoch"], state["step"], state["global_step"]) == (0, 3, 3)
    monkeypatch.delenv("SLNL_FAULT")
    fit(tiny_config(tiny_store, tmp_path / "ref", fused_adam=True))
    fit(tiny_config(tiny_store, run, sync_every=8, resume=True))
    assert_state_equal(params(tmp_path / "ref" / "last.pt"), params(run / "last.pt"))


def test_sync_every_and_compile_mode_are_validated():
    with pytest.raises(ValueError, match="sync_every"):
        config_for("cpu").replace(sync_every=0).validate()
    with pytest.raises(ValueError, match="fp16"):
        config_for("cpu").replace(sync_every=4, precision="fp16").validate()
    with pytest.raises(ValueError, match="needs compile=True"):
        config_for("cpu").replace(compile_mode="reduce-overhead").validate()
    with pytest.raises(ValueError, match="compile_mode"):
        config_for("cpu").replace(compile=True, compile_mode="fastest").validate()


@pytest.mark.parametrize("first,then", [(dict(), dict(sync_every=4)), (dict(sync_every=8), dict())])
def test_resume_may_change_sync_every_and_the_optimizer_implementation(tiny_store, tmp_path, monkeypatch, first, then):
    """sync_every / fused_adam say how a run executes, not what it trains: a run may resume with others (the
    checkpoint's fused/foreach flags must not override the session's, or fused Adam's found_inf would meet a
    foreach optimizer)."""
    from slnl.engine import TrainingInterrupted

    run = tmp_path / "run"
    monkeypatch.setenv("SLNL_FAULT", "term@2")
    with pytest.raises(TrainingInterrupted):
        fit(tiny_config(tiny_store, run, **first))
    monkeypatch.delenv("SLNL_FAULT")
    res = fit(tiny_config(tiny_store, run, resume=True, **then))
    assert len(res.history) == 2 and np.isfinite(res.history[-1]["train"]["loss"]["total"])
    assert res.result["config"]["fused_adam"] is bool(then.get("sync_every", 1) > 1)


def test_sync_every_resolves_to_fused_adam_in_the_saved_config():
    assert config_for("cpu", sync_every=4).fused_adam is True
    assert config_for("cpu").fused_adam is False


def test_compiled_training_with_cuda_graph_mode_and_deferred_sync_runs_end_to_end(tiny_store, tmp_path):
    """torch.compile(mode="reduce-overhead") through fit(): the step marks, compiled train and eval graphs and the
    deferred checks work together (on the CPU, Inductor compiles and CUDA graphs do not apply; ~1 min). Compiled
    dropout draws other masks than eager, so the comparison with eager is loose: same data, a finite loss near it."""
    eager = fit(tiny_config(tiny_store, tmp_path / "eager", epochs=1))
    res = fit(tiny_config(tiny_store, tmp_path / "compiled", epochs=1, compile=True, compile_mode="reduce-overhead",
                          sync_every=2))
    h, e = res.history[0], eager.history[0]
    assert res.result["config"]["compile_mode"] == "reduce-overhead" and res.result["config"]["fused_adam"] is True
    assert h["train"]["samples"] == e["train"]["samples"] and h[TEST]["n"] == e[TEST]["n"]
    assert np.isfinite(h["train"]["loss"]["total"])
    assert h["train"]["loss"]["total"] == pytest.approx(e["train"]["loss"]["total"], rel=0.2)
    assert (tmp_path / "compiled" / "result.json").is_file()
