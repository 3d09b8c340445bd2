"""Loading a checkpoint runs no code from it: every load in the package goes through slnl.engine.checkpoint.load
(torch's weights-only unpickler); a file with a pickled os.system payload is refused by `slnl eval`, `--resume` and
the report before the payload can run. Weights of another model version are one line, not a traceback."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from slnl.engine import checkpoint as ckpt
from slnl.engine import fit
from test_engine_fit import make_tiny_store, tiny_config

REPO = Path(__file__).resolve().parent.parent


class Payload:
    """Unpickling this calls os.system, which creates ``marker``: what a tampered checkpoint could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def slnl(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "slnl", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=180)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_tiny_store(tmp_path_factory.mktemp("store"))


@pytest.fixture
def run(store, tmp_path):
    """A finished one-epoch run and its checkpoint's state."""
    run = tmp_path / "run"
    fit(tiny_config(store, run, epochs=1, max_steps_per_epoch=2))
    return run


def test_the_payload_is_real(tmp_path):
    """The test's payload does run under an unrestricted load — so its absence below means it was refused."""
    import pickle

    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


def test_a_pickled_payload_in_last_pt_never_runs(run, tmp_path):
    marker = tmp_path / "payload-ran"
    state = ckpt.load(run / "last.pt")
    state["history"].append({"note": Payload(marker)})
    torch.save(state, run / "last.pt")  # what a tampered file looks like (ckpt.save would refuse to write it)

    res = slnl("eval", str(run))
    assert res.returncode != 0 and not marker.exists()
    line = one_line(res.stderr)
    assert str(run / "last.pt") in line and "refused" in line and "posix.system" in line

    # forcing torch's default back to unrestricted unpickling changes nothing: the load asks for weights_only
    res = slnl("eval", str(run / "last.pt"), env_extra={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    assert res.returncode != 0 and not marker.exists()

    (run / "result.json").unlink()  # an unfinished run: --resume has to read the checkpoint
    res = slnl("train", "--out", str(run), "--resume")
    assert res.returncode == 2 and not marker.exists()
    assert "refused" in res.stderr.strip().splitlines()[-1] and "Traceback" not in res.stderr

    from slnl import report

    with pytest.raises(ckpt.CheckpointError, match="refused"):
        report.load_run(run)
    assert not marker.exists()


def test_a_checkpoint_of_another_model_version_is_one_line(run, store, tmp_path):
    state = ckpt.load(run / "last.pt")
    weights = state["model"]
    first = next(iter(weights))
    variants = {
        "missing": {k: v for k, v in weights.items() if k != first},
        "unexpected": {**weights, "position.extra.weight": torch.zeros(3)},
        "shape": {**weights, first: torch.zeros(*weights[first].shape, 2)},
    }
    for kind, changed in variants.items():
        ckpt.save({**{k: v for k, v in state.items() if k != "format"}, "model": changed}, run / "last.pt")
        res = slnl("eval", str(run / "last.pt"))
        line = one_line(res.stderr)
        assert res.returncode == 2 and str(run / "last.pt") in line, kind
        assert "incompatible version of the model" in line and "train the run again" in line, line
        assert kind.replace("shape", "other shapes") in line and first.split(".")[0] in line
    # resuming reads the same weights: the same refusal
    (run / "result.json").unlink()
    with pytest.raises(ckpt.CheckpointError, match="incompatible version of the model"):
        fit(tiny_config(store, run, epochs=2, max_steps_per_epoch=2, resume=True))


def test_a_checkpoint_of_the_earlier_format_is_refused_by_name(run):
    """Format 1 stored NumPy's RNG state as an ndarray (unpickled by global): it is not loaded, and says why."""
    import numpy as np

    state = ckpt.load(run / "last.pt")
    state["format"] = 1
    state["per_rank"][0]["rng"]["numpy"] = np.random.get_state()
    torch.save(state, run / "old.pt")
    with pytest.raises(ckpt.CheckpointError, match=r"old\.pt: refused: .*numpy.*earlier slnl"):
        ckpt.load(run / "old.pt")


def test_every_checkpoint_load_goes_through_checkpoint_load():
    """torch.load is called once in the package and the benchmarks: in slnl.engine.checkpoint.load, weights-only."""
    calls = []
    for root in ("slnl", "benchmarks"):
        for path in sorted((REPO / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and ast.unparse(node.func) in ("torch.load", "torch.serialization.load"):
                    kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
                    calls.append((path.relative_to(REPO).as_posix(), kw.get("weights_only")))
    assert calls == [("slnl/engine/checkpoint.py", "True")], calls
