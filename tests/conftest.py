"""Test settings: one torch thread per worker (pytest -n 2 on 2 cores), and the shared real-data folder."""
import pytest
import torch

from slnl.data import synthetic
from slnl.utils import REPO_ROOT, shared_data_dir

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data():
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"real sample data not found at {d} (set SLNL_SHARED_DATA to the shared/data folder)")
    return d


@pytest.fixture(scope="session")
def synthetic_store():
    """The built-in synthetic store (made once, in the repository's git-ignored results/data/synthetic)."""
    return synthetic.ensure_default(REPO_ROOT / "results" / "data" / "synthetic")
