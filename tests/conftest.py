"""Test settings: one torch thread per worker (pytest -n 2 on 2 cores), and the shared real-data folder."""
import pytest
import torch

from slnl.utils import shared_data_dir

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data():
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"real sample data not found at {d} (set SLNL_SHARED_DATA to the shared/data folder)")
    return d
