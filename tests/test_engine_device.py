"""What ``precision`` means on a GPU: float32 is IEEE float32 (no TF32 in CUDA matmuls or cuDNN convolutions) for
every run. The flags are process-global and settable on a CPU build, so this is checked here, without a GPU."""
import pytest
import torch

from slnl.engine import fit
from slnl.engine.device import resolve_precision, strict_fp32
from test_engine_fit import tiny_config, tiny_store  # noqa: F401  (the fixture)

B = torch.backends


@pytest.fixture
def tf32_on():
    """TF32 allowed for CUDA matmuls and cuDNN, as a process may have left it; every flag restored after."""
    saved = (B.cuda.matmul.allow_tf32, B.cudnn.allow_tf32, B.cuda.matmul.fp32_precision, B.cudnn.conv.fp32_precision,
             B.cudnn.rnn.fp32_precision)
    B.cuda.matmul.allow_tf32 = B.cudnn.allow_tf32 = True
    assert B.cuda.matmul.fp32_precision == B.cudnn.conv.fp32_precision == B.cudnn.rnn.fp32_precision == "tf32"
    yield
    B.cuda.matmul.allow_tf32, B.cudnn.allow_tf32 = saved[:2]  # the legacy switches first: they reset the others
    B.cuda.matmul.fp32_precision, B.cudnn.conv.fp32_precision, B.cudnn.rnn.fp32_precision = saved[2:]


def assert_ieee_fp32():
    assert B.cuda.matmul.fp32_precision == "ieee"
    assert B.cudnn.conv.fp32_precision == "ieee" and B.cudnn.rnn.fp32_precision == "ieee"
    # the legacy view agrees (and reading it does not raise on a mix of the two APIs: the benchmark reads it)
    assert B.cuda.matmul.allow_tf32 is False and B.cudnn.allow_tf32 is False
    assert torch.get_float32_matmul_precision() == "highest"


def test_strict_fp32_turns_tf32_off_for_cuda_matmuls_and_cudnn(tf32_on):
    strict_fp32()
    assert_ieee_fp32()


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16", "auto"])
def test_resolving_any_precision_makes_fp32_ieee(tf32_on, precision):
    """bf16 / fp16 autocast keeps float32 islands (the heads, the loss, the optimiser): TF32 is off for them too."""
    resolve_precision(precision, torch.device("cpu"))
    assert_ieee_fp32()


def test_fit_runs_with_tf32_off(tf32_on, tiny_store, tmp_path):
    fit(tiny_config(tiny_store, tmp_path / "run", epochs=1, max_steps_per_epoch=1))
    assert_ieee_fp32()
