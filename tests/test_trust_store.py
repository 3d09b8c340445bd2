"""A run records the content fingerprint of the store it trains on, and `slnl eval`, `--resume` and the report refuse
the run once that store holds other data — here: a store prepared (`slnl prepare npz`) from one .npz, then prepared
again with `--force` from another into the same directory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slnl.data.errors import StoreChangedError, StoreError
from slnl.engine import TrainConfig, evaluate, fit
from test_engine_fit import make_tiny_store, tiny_config

REPO = Path(__file__).resolve().parent.parent
TINY = ["--model", "channels=8,8,16,16,16,16", "--model", "T=16", "--model", "new_joints=4", "--model", "K=2"]


def slnl(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("SLNL_FAULT", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "slnl", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


def write_npz(path: Path, seed: int, N: int = 36, T: int = 24, V: int = 5, K: int = 3) -> Path:
    """slnl's documented .npz layout (slnl.data.npz): random clips with 12…T valid frames, one split."""
    rng = np.random.default_rng(seed)
    nf = rng.integers(12, T + 1, N)
    x = rng.uniform(-1, 1, (N, 3, T, V, 2)).astype(np.float32)
    for i, n in enumerate(nf):
        x[i, :, n:] = 0.0
    test = np.arange(N) % 3 == 0
    np.savez(path, x=x, labels=np.arange(N) % K, num_frames=nf, names=np.array([f"s{i:03d}" for i in range(N)]),
             class_names=np.array([f"c{k}" for k in range(K)]), xsub_train=~test, xsub_test=test)
    return path


def one_line(res: subprocess.CompletedProcess) -> str:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    return lines[-1]


def test_eval_resume_and_report_refuse_a_run_whose_store_was_prepared_again_with_other_data(tmp_path):
    store, run = tmp_path / "store", tmp_path / "run"
    a, b = write_npz(tmp_path / "a.npz", seed=1), write_npz(tmp_path / "b.npz", seed=2)
    assert slnl("prepare", "npz", "--raw", str(a), "--out", str(store), "--no-progress").returncode == 0
    fp_a = json.loads((store / "meta.json").read_text())["fingerprint"]
    done = slnl("train", "--preset", "cpu", "--data", str(store), "--out", str(run), "--epochs", "1", "--batch-size",
                "8", "--max-steps-per-epoch", "2", "--no-progress", *TINY)
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "result.json").read_text())["store_fingerprint"] == fp_a
    assert TrainConfig.load(run / "config.yaml").store_fingerprint == fp_a
    assert slnl("eval", str(run)).returncode == 0

    # the same data prepared again: the same fingerprint, the run is still usable
    assert slnl("prepare", "npz", "--raw", str(a), "--out", str(store), "--force", "--no-progress").returncode == 0
    assert slnl("eval", str(run / "last.pt")).returncode == 0

    # other data in the same directory
    assert slnl("prepare", "npz", "--raw", str(b), "--out", str(store), "--force", "--no-progress").returncode == 0
    fp_b = json.loads((store / "meta.json").read_text())["fingerprint"]
    assert fp_b != fp_a
    for args in (("eval", str(run)), ("eval", str(run / "last.pt")), ("train", "--out", str(run), "--resume")):
        line = one_line(slnl(*args))
        assert f"{store}: not the store run {run}" in line and fp_a[:12] in line and fp_b[:12] in line, (args, line)
    # an unfinished run too (its checkpoint is what --resume reads)
    (run / "result.json").unlink()
    line = one_line(slnl("train", "--out", str(run), "--resume"))
    assert "not the store run" in line

    from slnl import report

    with pytest.raises(StoreChangedError, match="not the store run"):
        report.load_run(run)
    with pytest.raises(StoreChangedError):
        report.frequency_gates(run, max_samples=4)


def test_python_resume_checks_the_saved_fingerprint_and_a_given_one_must_match(tmp_path):
    """fit(resume=True) with a config that names no fingerprint is checked against the run's saved one; a config
    that names one (a run's config.yaml) trains only on that data."""
    store = make_tiny_store(tmp_path / "store", seed=0)
    run = tmp_path / "run"
    cfg = tiny_config(store, run, epochs=1, max_steps_per_epoch=1)
    fit(cfg)
    make_tiny_store(store, seed=1)  # other data, same directory
    with pytest.raises(StoreChangedError, match=f"not the store run {run} used"):
        fit(cfg.replace(resume=True))
    with pytest.raises(StoreChangedError, match="not the store run"):
        evaluate(run)
    saved = TrainConfig.load(run / "config.yaml")
    with pytest.raises(StoreChangedError, match="this configuration"):
        fit(saved.replace(out=str(tmp_path / "other"), overwrite=True))
    assert not (tmp_path / "other").exists()


def test_a_store_without_a_fingerprint_is_refused_before_anything_is_written(tmp_path):
    store = make_tiny_store(tmp_path / "store")
    meta = json.loads((store / "meta.json").read_text())
    del meta["fingerprint"]
    (store / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="no content fingerprint.*slnl prepare"):
        fit(tiny_config(store, tmp_path / "run", epochs=1, max_steps_per_epoch=1))
    assert not (tmp_path / "run").exists()
