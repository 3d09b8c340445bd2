"""Executing one notebook with papermill in a subprocess: the Jupyter kernel it runs in and its parameters.

The notebooks run in the Jupyter kernel ``python3`` (``kernel_name`` picks another), which runs the interpreter that
runs papermill — the one running ``slnl`` — so whatever environment slnl is installed in executes them. Parameters go
to papermill as YAML (``-y``), so ``None``/numbers/booleans arrive typed, as papermill's own ``-p`` would give them.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from jupyter_client.kernelspec import KernelSpecManager

from slnl.utils import home

DEFAULT_KERNEL = "python3"  # ipykernel's own: papermill's default, and the notebooks' kernelspec


def resolve_value(text: str) -> Any:
    """papermill's ``-p`` typing: ``None``, ``True``/``False``, int, float, otherwise the string."""
    if text in ("None", "none", "null"):
        return None
    if text in ("True", "true"):
        return True
    if text in ("False", "false"):
        return False
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def kernel_interpreter(name: str) -> str | None:
    """The Python interpreter the Jupyter kernel ``name`` starts when papermill runs in this interpreter, or None if
    its command is not a Python (``jupyter_client`` replaces a bare ``python``/``python3`` by ``sys.executable``)."""
    argv = KernelSpecManager().get_kernel_spec(name).argv
    if not argv:
        return None
    if argv[0] in ("python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]):
        return sys.executable
    return argv[0] if "ipykernel" in " ".join(argv) else None


def kernel_name(requested: str | None = None) -> str:
    """The Jupyter kernel the notebooks run in: ``requested`` (default ``python3``), which must be installed.

    ``python3`` normally runs this very interpreter (``sys.executable``), so any environment with slnl and ipykernel
    installed runs the notebooks. A ``python3`` kernelspec of another interpreter can shadow it (a user-level one,
    ``jupyter kernelspec list`` shows which wins); that is said in one line, since slnl may be missing there."""
    have = KernelSpecManager().find_kernel_specs()
    want = requested or DEFAULT_KERNEL
    if want not in have:
        raise SystemExit(f"slnl: Jupyter kernel {want!r} is not installed (installed: {', '.join(sorted(have))}); "
                         f"--kernel {DEFAULT_KERNEL} runs this interpreter")
    if want == DEFAULT_KERNEL:
        exe = kernel_interpreter(want)
        if exe is not None and os.path.abspath(exe) != os.path.abspath(sys.executable):
            print(f"slnl: Jupyter kernel {want!r} ({have[want]}) runs {exe}, not this interpreter ({sys.executable})",
                  file=sys.stderr)
    return want


def run_notebook(src: Path, dst: Path, params: dict[str, Any], kernel: str, env: dict[str, str] | None = None,
                 log_path: Path | None = None, timeout: float | None = None) -> tuple[int, str]:
    """Execute ``src`` with papermill into ``dst`` in a subprocess, with ``slnl.utils.home()`` as its working
    directory; returns (exit code, tail of its output)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    cwd = home()
    cwd.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "papermill", str(src), str(dst), "-k", kernel, "--cwd", str(cwd),
           "--no-progress-bar", "-y", yaml.safe_dump(params, default_flow_style=True).strip()]
    log_path = log_path or dst.with_suffix(".log")
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        try:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = 124
    text = log_path.read_text(errors="replace")
    return code, text[-4000:]
