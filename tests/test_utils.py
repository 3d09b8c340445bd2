import os
import stat

import pytest

from slnl.utils import atomic_write_bytes, atomic_write_json


def test_atomic_write_replaces_whole_file_with_normal_permissions(tmp_path):
    p = tmp_path / "r.json"
    atomic_write_json(p, {"top1": 0.5})
    atomic_write_json(p, {"top1": 0.75})
    assert p.read_text().strip().endswith("}") and '"top1": 0.75' in p.read_text()
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]  # no temporary left behind


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "r.json"
    atomic_write_bytes(p, b"old")
    with pytest.raises(TypeError):  # fails inside the write, after the temporary file exists
        atomic_write_bytes(p, "not bytes")
    assert p.read_bytes() == b"old"
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]
