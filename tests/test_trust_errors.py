"""User errors of `slnl train` / `slnl eval`: one line on stderr, no traceback, a non-zero exit, checked before any
work starts — no run directory made, no synthetic store generated just to fail."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import slnl.data.synthetic
from slnl.engine import cli, fit
from slnl.models import ModelConfig
from test_engine_fit import make_tiny_store, tiny_config

REPO = Path(__file__).resolve().parent.parent


def fail(capsys, *argv: str) -> str:
    """Run the command line in process; it must return 2 with exactly one line on stderr. Returns the line."""
    assert cli.main(list(argv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture
def no_data(monkeypatch):
    """Generating the built-in synthetic store is forbidden: every refusal must come before it."""
    def forbidden(*a, **k):
        raise AssertionError("the synthetic store was generated for a command that fails")

    monkeypatch.setattr(slnl.data.synthetic, "ensure_default", forbidden)


@pytest.mark.parametrize("args,needle", [
    (["--model", "chanels=8,8"], "unknown ModelConfig field(s) 'chanels'; the fields are K, T, affinity"),
    (["--transform", "CS-X"], "ModelConfig.transform='CS-X' is not valid; expected one of Pos-N"),
    (["--attention", "xFA"], "ModelConfig.attention='xFA' is not valid; expected one of none, aFA"),
    (["--affinity", "Global"], "ModelConfig.affinity='Global' is not valid; expected one of Local"),
    (["--model", "K=two"], "ModelConfig.K must be an integer >= 1, got 'two'"),
    (["--model", "dropout=high"], "model: "),  # a TypeError inside the model's checks: one line all the same
    (["--device", "tpu"], "device"),
])
def test_bad_model_or_device_is_one_line_and_leaves_nothing(capsys, tmp_path, no_data, args, needle):
    out = tmp_path / "run"
    line = fail(capsys, "train", "--preset", "cpu", "--out", str(out), *args)
    assert line.startswith("slnl train: error: ") and needle in line, line
    assert not out.exists() and list(tmp_path.iterdir()) == []
    if "chanels" in args[-1]:  # every valid field is listed
        assert all(f in line for f in ModelConfig.__dataclass_fields__)


def test_a_bad_model_is_refused_by_the_dry_run_too(capsys, no_data):
    assert "unknown ModelConfig field(s) 'chanels'" in fail(capsys, "train", "--model", "chanels=8", "--dry-run")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without CUDA")
def test_device_cuda_on_a_cpu_build_is_one_line_before_any_work(tmp_path):
    """Through the real command line: stderr is one line, nothing is created."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-m", "slnl", "train", "--preset", "cpu", "--device", "cuda", "--out",
                          str(tmp_path / "run")], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        f"slnl train: error: device='cuda' but CUDA is not available in this torch build ({torch.__version__})"]
    assert list(tmp_path.iterdir()) == []


def test_eval_takes_a_run_or_a_checkpoint_and_names_a_missing_file(capsys, tmp_path):
    store = make_tiny_store(tmp_path / "store")
    run = tmp_path / "run"
    fit(tiny_config(store, run, epochs=1, max_steps_per_epoch=1))
    capsys.readouterr()
    assert cli.main(["eval", str(run)]) == 0 and cli.main(["eval", str(run / "last.pt")]) == 0
    line = fail(capsys, "eval", str(run / "best.pt"))
    assert f"{run / 'best.pt'}: no such file" in line and "a run keeps one checkpoint, last.pt" in line
    assert str(tmp_path / "nowhere") in fail(capsys, "eval", str(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"{empty}: no last.pt here" in fail(capsys, "eval", str(empty))
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "last.pt", "metrics.csv", "metrics.jsonl",
                                                     "result.json"]


def test_eval_has_no_checkpoint_choice():
    """Runs keep only the final model (nothing is selected on the test split): there is nothing to choose."""
    assert "--checkpoint" not in cli.eval_parser().format_help() and "best" not in cli.eval_parser().format_help()
    with pytest.raises(SystemExit):
        cli.eval_parser().parse_args(["run", "--checkpoint", "best"])


def test_a_run_that_fails_while_starting_leaves_no_directory(tmp_path, monkeypatch):
    """Past the checks, a fresh run's directory is made only once the model is built."""
    import slnl.engine.trainer as trainer

    def broken(*a, **k):
        raise RuntimeError("out of memory while building")

    store = make_tiny_store(tmp_path / "store")
    monkeypatch.setattr(trainer, "build", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        fit(tiny_config(store, tmp_path / "run"))
    assert not (tmp_path / "run").exists()
