"""torchrun + DDP on CPU (Gloo, 2 processes, 1 thread each): trains, stops on SIGTERM with a checkpoint, resumes, and
matches a 1-process run of the same global batch (accum_steps=2: micro-batches of the per-process size, so BatchNorm
normalises over the same samples) within float tolerance."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from slnl.engine import checkpoint as ckpt
from slnl.engine import fit
from slnl.engine.distributed import DistInfo
from slnl.engine.fetch import rank_positions
from slnl.engine.metrics import TEST
from test_engine_fit import make_tiny_store, tiny_config

REPO = Path(__file__).resolve().parent.parent


def test_rank_positions_partition_the_global_batch():
    import numpy as np

    order = np.random.default_rng(0).permutation(40)
    for step in range(5):
        shares = [rank_positions(order, step, 8, DistInfo(rank=r, world_size=4)) for r in range(4)]
        assert np.array_equal(np.concatenate(shares), order[step * 8 : (step + 1) * 8])
        assert np.array_equal(rank_positions(order, step, 8, DistInfo()), order[step * 8 : (step + 1) * 8])


def torchrun(args, env_extra=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("SLNL_FAULT", None)
    env.update(env_extra or {})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
           "-m", "slnl", "train", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)


def test_two_process_ddp_resumes_and_matches_one_process(tmp_path):
    store = make_tiny_store(tmp_path / "store")
    ref = tmp_path / "ref"
    fit(tiny_config(store, ref, accum_steps=2, model=dict(dropout=0.0)))  # 1 process, 2 micro-batches of 4

    run = tmp_path / "ddp"
    args = ["--preset", "cpu", "--data", str(store), "--out", str(run), "--epochs", "2", "--batch-size", "8",
            "--deterministic", "--no-progress", "--model", "channels=8,8,16,16,16,16", "--model", "T=16",
            "--model", "new_joints=4", "--model", "K=2", "--dropout", "0"]
    stopped = torchrun(args, {"SLNL_FAULT": "term@5"})  # SIGTERM to both processes after global step 5
    assert stopped.returncode != 0, stopped.stdout + stopped.stderr
    state = ckpt.load(run / "last.pt")
    assert (state["epoch"], state["step"], state["global_step"], state["world_size"]) == (1, 2, 6, 2)
    assert len(state["per_rank"]) == 2 and len(state["history"]) == 1
    done = torchrun(["--out", str(run), "--resume"])
    assert done.returncode == 0, done.stdout + done.stderr

    a, b = ckpt.load(ref / "last.pt")["model"], ckpt.load(run / "last.pt")["model"]
    from slnl.models import build

    names = [n for n, _ in build("cpu", **ckpt.load(ref / "last.pt")["config"]["model"]).named_parameters()]
    for n in names:  # parameters: same gradients (mean over the global batch), same Adam updates
        assert torch.allclose(a[n], b[n], rtol=1e-4, atol=1e-5), n
    # BN running statistics legitimately differ (per-device statistics; DDP keeps rank 0's), so not compared.
    r1 = json.loads((ref / "result.json").read_text())
    r2 = json.loads((run / "result.json").read_text())
    for h1, h2 in zip(r1["metrics"], r2["metrics"], strict=True):
        assert h2["train"]["samples"] == h1["train"]["samples"] == 32  # all-reduced over both processes
        assert h2["train"]["loss"]["total"] == pytest.approx(h1["train"]["loss"]["total"], rel=1e-4)
        assert h2[TEST]["n"] == 16  # every test sample evaluated exactly once across the two processes
        # The evaluation batch is global and the BN statistics pass runs the same batches on one process or two, so
        # the test loss after it agrees as closely as the weights do (~1e-8 here; each process batching its own
        # share of the clips moved it by 2e-4 to 6e-4).
        # (the recomputed evaluation: training's running averages are per process, DDP evaluates rank 0's)
        rec1, rec2 = h1["test_recomputed"]["loss"]["total"], h2["test_recomputed"]["loss"]["total"]
        assert rec2 == pytest.approx(rec1, rel=1e-5)
    assert r2["device"]["world_size"] == 2 and sum(map(sum, r2["confusion"])) == 16


def test_two_process_ddp_with_sync_every_reports_the_nonfinite_step(tmp_path):
    """sync_every > 1 under DDP: a NaN on one process only — the processes agree on skipping the step (an
    all-reduced flag, no host sync) and both stop at the next synchronisation point naming it; the last good
    checkpoint is kept."""
    store = make_tiny_store(tmp_path / "store")
    run = tmp_path / "ddp"
    args = ["--preset", "cpu", "--data", str(store), "--out", str(run), "--epochs", "2", "--batch-size", "8",
            "--deterministic", "--no-progress", "--model", "channels=8,8,16,16,16,16", "--model", "T=16",
            "--model", "new_joints=4", "--model", "K=2", "--sync-every", "8"]
    r = torchrun(args, {"SLNL_FAULT": "nan@6:1"})  # rank 1 only; epoch 2, step 2; checked at step 4
    assert r.returncode != 0
    assert r.stderr.count("epoch 2, step 2 (global step 6)") >= 2 and "reported at step 4" in r.stderr, r.stderr[-3000:]
    state = ckpt.load(run / "last.pt")
    assert (state["epoch"], state["step"], state["global_step"], state["world_size"]) == (1, 0, 4, 2)
