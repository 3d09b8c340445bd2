"""Progress everywhere: one log line per epoch with the elapsed time and an estimate for the whole run when output is
not a terminal (a pipe, a file, papermill's --log-output), a tqdm bar only on a terminal, optional TensorBoard scalars
equal to metrics.csv."""
from __future__ import annotations

import csv
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import slnl.data.synthetic
from slnl.engine import cli, fit
from slnl.engine import progress as P
from test_engine_fit import cli_args, make_tiny_store, run_cli, tiny_config

REPO = Path(__file__).resolve().parent.parent
LINE = re.compile(r"epoch (\d+)/(\d+)  loss \S+  train top-1 \S+  test top-1 \S+ top-5 \S+  lr \S+  \S+s  \d+ samples/s"
                  r"  elapsed (\d+:\d\d:\d\d)  ETA (\d+:\d\d:\d\d)$")
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_tiny_store(tmp_path_factory.mktemp("store"))


def epoch_lines(stderr: str) -> list[re.Match]:
    return [m for m in (LINE.search(s) for s in stderr.splitlines()) if m]


def test_fit_without_a_terminal_logs_one_line_per_epoch_with_elapsed_and_eta(store, tmp_path):
    """fit() from a script that configured no logging (as in a notebook kernel under papermill), its output a pipe:
    each epoch is one line with elapsed time and ETA, and no progress bar's carriage returns."""
    script = (f"from test_engine_fit import tiny_config\nfrom slnl.engine import fit\n"
              f"fit(tiny_config({str(store)!r}, {str(tmp_path / 'run')!r}, epochs=3, max_steps_per_epoch=2, "
              f"progress=None))\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    res = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=180)
    assert res.returncode == 0, res.stderr
    found = epoch_lines(res.stderr)
    assert [(m.group(1), m.group(2)) for m in found] == [("1", "3"), ("2", "3"), ("3", "3")], res.stderr
    assert found[-1].group(4) == "0:00:00" and "\r" not in res.stderr
    assert res.stdout == ""


def test_the_command_line_logs_the_same_lines_to_a_pipe(store, tmp_path):
    res = run_cli(cli_args(store, tmp_path / "run", epochs=2))
    assert res.returncode == 0, res.stderr
    assert [m.group(1) for m in epoch_lines(res.stderr)] == ["1", "2"] and "\r" not in res.stderr


def test_eta_is_this_sessions_pace_times_the_epochs_left(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(P.time, "perf_counter", lambda: now[0])
    clock = P.Clock(epochs=10, steps_per_epoch=4)
    now[0] = 110.0  # a run resumed at step 2 of epoch 3 runs its last 2 steps in 10 s: 20 s per epoch
    assert clock.epoch_done(3, 2) == (10.0, 20.0 * 7)
    now[0] = 130.0  # epoch 4 whole in 20 s
    assert clock.epoch_done(4, 4) == (30.0, 20.0 * 6)
    now[0] = 250.0
    assert clock.epoch_done(10, 4 * 6)[1] == 0.0
    assert P.hms(3725.2) == "1:02:05" and P.hms(float("nan")) == "?"


def test_progress_bar_only_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert P.bar(None, 10, 0, "e") is None and P.bar(False, 10, 0, "e") is None
    b = P.bar(True, 10, 0, "e")
    assert b is not None
    b.close()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    b = P.bar(None, 10, 0, "e")
    assert b is not None
    b.close()


def test_tensorboard_missing_is_one_line_before_any_work(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if the package were not installed

    def forbidden(*a, **k):
        raise AssertionError("data generated for a run that cannot start")

    monkeypatch.setattr(slnl.data.synthetic, "ensure_default", forbidden)
    assert cli.main(["train", "--preset", "cpu", "--tensorboard", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'slnl[tensorboard]'" in err[0] and "--tensorboard" in err[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="tensorboard is not installed (pip install 'slnl[tensorboard]')")
def test_tensorboard_scalars_are_the_metrics_of_every_epoch_across_a_resume(store, tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from slnl.engine import TrainingInterrupted

    run = tmp_path / "run"
    monkeypatch.setenv("SLNL_FAULT", "term@6")  # stops in epoch 2 (4 steps per epoch)
    with pytest.raises(TrainingInterrupted):
        fit(tiny_config(store, run, epochs=3, tensorboard=True))
    monkeypatch.delenv("SLNL_FAULT")
    fit(tiny_config(store, run, epochs=3, tensorboard=True, resume=True))
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    expected = {"train/loss": "train_loss", "train/loss_p": "train_loss_p", "train/loss_v": "train_loss_v",
                "train/loss_c": "train_loss_c", "train/top1": "train_top1", "test/top1": "test_top1",
                "test/top5": "test_top5", "test/loss": "test_loss", "lr": "lr"}
    assert set(expected) <= set(events.Tags()["scalars"])
    for tag, column in expected.items():
        points = events.Scalars(tag)
        assert [p.step for p in points] == [1, 2, 3], tag
        assert [p.value for p in points] == pytest.approx([float(r[column]) for r in rows], rel=1e-6), tag
