"""benchmarks/gpu_train_check.py runs end to end (its --tiny CPU path; the CUDA sections are exercised on a GPU)."""
import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_train_check.py"


def test_gpu_train_check_tiny_cpu_path(capsys):
    spec = importlib.util.spec_from_file_location("gpu_train_check", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--tiny", "--device", "cpu", "--engine", "plain", "sync_every=16", "+channels_last"]) == 0
    out = capsys.readouterr().out
    assert "samples/s" in out and "fit(): PASS" in out and "ALL PASS" in out
    for variant in ("plain", "sync_every=16", "+channels_last"):  # each engine variant trained and was timed
        assert f"engine {variant}" in out and "FAILED" not in out
