"""Test settings: one torch thread per worker (pytest -n 2 on 2 cores), and the shared real-data folder."""
import pytest
import torch

from slnl.data import synthetic
from slnl.data.prepare import prepare_dataset
from slnl.utils import REPO_ROOT, shared_data_dir

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data():
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"real sample data not found at {d} (set SLNL_SHARED_DATA to the shared/data folder)")
    return d


def prepare_shared(shared_data, tmp_path_factory, fmt: str, folder: str):
    """``(raw folder, store, summary)``: the shared dataset in ``folder`` prepared as ``fmt`` into a temporary store
    (one worker, quiet); the test is skipped when the folder is absent."""
    raw = shared_data / folder
    if not raw.is_dir():
        pytest.skip(f"{raw} absent")
    out = tmp_path_factory.mktemp(fmt) / "store"
    return raw, out, prepare_dataset(fmt, raw, out, workers=1, progress=False, quiet=True)


@pytest.fixture(scope="session")
def synthetic_store():
    """The built-in synthetic store (made once, in the repository's git-ignored results/data/synthetic)."""
    return synthetic.ensure_default(REPO_ROOT / "results" / "data" / "synthetic")
