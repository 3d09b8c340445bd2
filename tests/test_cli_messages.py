"""What the command line says: `slnl train --help` explains every option (its values, where it has a vocabulary)
and ends with examples that parse; errors raised by the library in Python's words (`resume=True`,
`ensure_default()`) are said in the command line's; no doubled prefix, no stray quotes; `slnl eval` prints a
readable summary (`--json`: the raw result)."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slnl import models
from slnl.engine import cli, evaluate, fit
from slnl.engine.config import BN_STATS, LOSS_NAMES, PRECISIONS
from test_engine_fit import make_tiny_store, tiny_config

REPO = Path(__file__).resolve().parent.parent
PYTHON_WORDS = ("resume=True", "overwrite=True", "ensure_default", "tensorboard=True")


def _one_line(capsys, *argv: str) -> str:
    assert cli.main(list(argv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert not any(w in err[0] for w in PYTHON_WORDS), err[0]
    return err[0]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    store = make_tiny_store(root / "store")
    run = root / "run"
    fit(tiny_config(store, run, epochs=1))
    return store, run


# --------------------------------------------------------------------------------------------------------- --help
def test_train_help_explains_every_option_and_lists_each_vocabulary():
    parser = cli.train_parser()
    text = parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help != argparse.SUPPRESS, f"{action.option_strings} has no help text"
    helps = {a.dest: a.help for a in parser._actions}
    for dest, words in (("transform", models.TRANSFORMS), ("attention", models.ATTENTIONS),
                        ("affinity", models.AFFINITIES), ("nonlocal_impl", models.NONLOCAL_IMPLS)):
        assert all(w in helps[dest] for w in words), (dest, helps[dest])
    for flag, words in (("--loss", LOSS_NAMES), ("--precision", PRECISIONS), ("--bn-stats", BN_STATS)):
        assert "{" + ",".join(words) + "}" in text, flag
    assert "0 … the model's depth" in helps["m1"] and "integer" in helps["seed"]
    assert all(s in helps["split"] for s in ("xsub", "xview", "xset", "CS = xsub"))


def test_train_help_ends_with_three_examples_that_parse():
    epilog = cli.train_parser().epilog
    examples = [ln.split("#")[0].split() for ln in epilog.split("examples:", 1)[1].splitlines()
                if ln.strip().startswith("slnl train")]
    assert len(examples) == 3
    for ex in examples:
        cfg, _ = cli._parse(ex[2:])  # parses into a configuration (no data is opened)
        assert cfg.epochs >= 1
    r = subprocess.run([sys.executable, "-m", "slnl", "train", "--help"], cwd=REPO, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert r.returncode == 0 and "examples:" in r.stdout and "--preset msr3d --data data/msr3d" in r.stdout


def test_a_bad_model_value_still_names_the_valid_ones_in_one_line(capsys):
    line = _one_line(capsys, "train", "--transform", "CS-X", "--dry-run")
    assert "expected one of Pos-N, Vel-N" in line


# ------------------------------------------------------------------------------------------------------- messages
def test_a_finished_run_says_resume_and_overwrite_as_flags(capsys, tiny_run):
    store, run = tiny_run
    line = _one_line(capsys, "train", "--preset", "cpu", "--data", str(store), "--out", str(run), "--epochs", "1",
                     "--model", "channels=8,8,16,16,16,16", "--model", "T=16", "--model", "new_joints=4",
                     "--model", "K=2")
    assert line == (f"slnl train: error: {run} holds a finished run (result.json); pass --resume to continue or "
                    "return it, or --overwrite to start again from scratch")


def test_a_missing_store_says_what_to_do_on_the_command_line(capsys, tmp_path, tiny_run):
    gone = tmp_path / "nostore"
    line = _one_line(capsys, "train", "--preset", "cpu", "--data", str(gone), "--out", str(tmp_path / "r"))
    assert line.endswith(f"--out {gone}` or leave out --data to train on the built-in synthetic store"), line
    line = _one_line(capsys, "eval", str(tiny_run[1]), "--data", str(gone))
    assert line.endswith(f"--raw SOURCE --out {gone}`"), line


def test_an_unknown_split_has_no_stray_quotes(capsys, tiny_run):
    store, run = tiny_run
    line = _one_line(capsys, "eval", str(run), "--split", "xview")
    assert line.startswith(f"slnl eval: error: {store.resolve()}: no split 'xview' in this tiny-test store; "), line
    assert '"' not in line


def test_cli_message_words():
    assert cli.cli_message(KeyError("a: no split 'x'")) == "a: no split 'x'"
    stop = ("SIGTERM: stopped at epoch 1, step 3 of 4; checkpoint written to r/last.pt (resume with resume=True)")
    assert cli.cli_message(stop) == ("SIGTERM: stopped at epoch 1, step 3 of 4; checkpoint written to r/last.pt "
                                     "(resume: the same command with --resume)")
    assert cli.cli_message("x; use another out directory or overwrite=True") == (
        "x; use another --out directory or --overwrite")
    assert cli.cli_message("tensorboard=True (--tensorboard) needs it") == "--tensorboard needs it"


def test_a_stopped_run_says_resume_as_a_flag(tmp_path):
    """SIGTERM through the real command line: the log line and the last line both say --resume."""
    store = make_tiny_store(tmp_path / "store")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), SLNL_FAULT="term@2")
    args = ["--preset", "cpu", "--data", str(store), "--out", str(tmp_path / "run"), "--epochs", "2",
            "--batch-size", "8", "--no-progress", "--model", "channels=8,8,16,16,16,16", "--model", "T=16",
            "--model", "new_joints=4", "--model", "K=2"]
    r = subprocess.run([sys.executable, "-m", "slnl", "train", *args], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 128 + signal.SIGTERM, r.stderr[-2000:]
    assert "resume=True" not in r.stderr and r.stderr.count("(resume: the same command with --resume)") == 2
    assert r.stderr.strip().splitlines()[-1].startswith("slnl train: SIGTERM: stopped at epoch 1")


def test_prepare_says_its_prefix_once(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "S001C001P001R001A001.skeleton").write_text("junk\n")
    r = subprocess.run([sys.executable, "-m", "slnl", "prepare", "ntu60", "--raw", str(raw), "--out",
                        str(tmp_path / "store"), "--workers", "1", "--no-progress"], cwd=tmp_path, capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1"), timeout=120)
    assert r.returncode == 1
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("slnl prepare ntu60: nothing could be kept out of 1 record(s)"), line
    assert line.count("prepare ntu60:") == 1


# ----------------------------------------------------------------------------------------------------------- eval
def test_eval_prints_a_summary_and_json_on_request(capsys, tiny_run, tmp_path):
    store, run = tiny_run
    ev = evaluate(run)
    assert cli.main(["eval", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{run / 'last.pt'} (epoch 1) on {store.resolve()}, split xsub, test subset: {ev['n']} clips"
    assert lines[1] == f"top-1 {100 * ev['top1']:.1f} %   top-5 {100 * ev['top5']:.1f} %"
    assert lines[3].split()[:3] == ["class", "clips", "top-1"]
    table = lines[4:]
    assert [ln.split()[0] for ln in table] == ev["class_names"]
    confusion = np.asarray(ev["confusion"])
    for k, ln in enumerate(table):
        n = confusion[k].sum()
        assert ln.split()[1] == str(n) and ln.split()[2] == f"{100 * confusion[k, k] / n:.1f}%"
    assert cli.main(["eval", str(run), "--json"]) == 0
    raw = json.loads(capsys.readouterr().out)
    assert raw["confusion"] == ev["confusion"] and raw["top1"] == ev["top1"]
    assert cli.main(["eval", str(run), "--json", str(tmp_path / "ev.json")]) == 0
    assert capsys.readouterr().out.splitlines()[1] == lines[1]
    assert json.loads((tmp_path / "ev.json").read_text())["per_class_accuracy"] == ev["per_class_accuracy"]


def test_readme_commands_are_commands_of_the_cli():
    """Every `slnl <command>` the README shows is a command slnl has, and `slnl --help` lists predict."""
    from slnl.cli import COMMANDS

    text = (REPO / "README.md").read_text()
    used = {shlex.split(ln.split("#")[0])[1] for ln in text.splitlines() if ln.strip().startswith("slnl ")}
    assert used and used <= set(COMMANDS), used - set(COMMANDS)
    assert "predict" in COMMANDS
