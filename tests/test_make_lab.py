"""`make lab` serves the repository headless, also as root: the notebooks and the results are both browsable."""
import json
import os
import secrets
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_serves_the_notebooks_and_results(tmp_path):
    if not (REPO / ".venv" / ".installed").is_file():
        pytest.skip("no .venv built by make (make venv): `make lab` would build it first")
    port, token = _free_port(), secrets.token_hex(8)
    args = f"--no-browser --port {port} --ServerApp.token={token} --ServerApp.ip=127.0.0.1"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    proc = subprocess.Popen(["make", "-s", "-C", str(REPO), "lab", f"ARGS={args}"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        listing = None
        for _ in range(120):
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/contents/notebooks",
                                             headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(req, timeout=2) as r:
                    listing = json.loads(r.read())
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.5)
        assert listing is not None, "the server did not answer in 60 s"
        names = {c["name"] for c in listing["content"]}
        assert {"table1.ipynb", "table6.ipynb", "report.ipynb"} <= names
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/contents/results",
                                     headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert json.loads(r.read())["type"] == "directory"
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
