"""Packaging: pyproject.toml states compatible ranges, requirements.lock the exact tested set that satisfies them
(and that `make test`/`make reproduce` install); one version, printed by `slnl --version`; LICENSE and CITATION.cff."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

import slnl
from slnl.utils import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
LOCK_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;#]+)$")


def _requirements() -> list[Requirement]:
    """Every requirement of slnl: the dependencies and every extra's."""
    reqs = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in PROJECT["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    return reqs


def _lock() -> dict[str, Version]:
    """requirements.lock as {canonical name: version}; every line a comment, blank, or exactly name==version."""
    pins: dict[str, Version] = {}
    for n, line in enumerate((REPO_ROOT / "requirements.lock").read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = LOCK_LINE.match(line)
        assert m, f"requirements.lock line {n}: {line!r} is not name==version"
        name = canonicalize_name(m["name"])
        assert name not in pins, f"requirements.lock line {n}: {name} pinned twice"
        pins[name] = Version(m["version"])  # raises on a version that is not PEP 440
    return pins


# ----------------------------------------------------------------------------------------------------------------------
def test_pyproject_states_ranges_with_lower_bounds_not_pins():
    for req in _requirements() + [Requirement(r) for r in PYPROJECT["build-system"]["requires"] if r != "wheel"]:
        ops = {s.operator for s in req.specifier}
        assert not ops & {"==", "==="}, f"pyproject.toml: {req} is a pin; pins belong in requirements.lock"
        assert ">=" in ops, f"pyproject.toml: {req} has no lower bound"
    assert "version" not in PROJECT and PROJECT["dynamic"] == ["version"]


def test_lock_pins_every_package_exactly_and_cpu_torch_only():
    pins = _lock()
    assert len(pins) > 50  # transitive packages too, not only slnl's direct dependencies
    cuda = sorted(n for n in pins if n.startswith("nvidia-") or n == "triton")
    assert not cuda, f"requirements.lock holds CUDA packages {cuda}: CI must never install a CUDA build of torch"
    assert pins["torch"].local == "cpu", f"torch=={pins['torch']} must be the CPU build (+cpu)"
    assert "pip" not in pins  # the installer is not part of the environment
    assert "slnl" not in pins  # slnl itself is installed from the checkout (pip install --no-deps -e .)


def test_lock_satisfies_every_requirement_of_pyproject():
    """With the lock installed, `pip install --no-deps -e .` leaves no requirement of slnl (or of its extras
    dev, lab, tensorboard) unmet; a local version (+cpu) satisfies a range as PEP 440 says."""
    pins = _lock()
    env = default_environment()
    for req in _requirements():
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"requirements.lock lacks {req.name} (pyproject.toml: {req})"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject.toml's {req}")
    # the lock's interpreter (CPython 3.11, its torch wheel) is one that requires-python allows
    assert SpecifierSet(PROJECT["requires-python"]).contains("3.11")


def test_environment_yml_installs_the_lock():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert "-r requirements.lock" in pip and "-e ." in pip
    assert not [p for p in pip if "==" in p], "environment.yml restates pins; they live in requirements.lock"


@pytest.mark.parametrize("target", ["test", "reproduce"])
def test_make_bootstraps_from_the_lock_without_a_named_kernel(target, tmp_path):
    """`make -n -B TARGET` lists every recipe TARGET runs from scratch: the venv from requirements.lock, slnl
    without dependency resolution, and no kernel registration."""
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    for name in ("Makefile", "requirements.lock", "pyproject.toml"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    (tmp_path / "slnl").mkdir()
    shutil.copy(REPO_ROOT / "slnl" / "__init__.py", tmp_path / "slnl" / "__init__.py")
    out = subprocess.run(["make", "-n", "-B", target], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert "pip install -q -r requirements.lock" in out
    assert "pip install -q --no-deps -e ." in out
    assert "ipykernel install" not in out and "--kernel" not in out
    assert out.index("-r requirements.lock") < out.index("--no-deps -e .")


def test_version_has_one_source_and_slnl_version_prints_it():
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "slnl.__version__"}
    Version(slnl.__version__)  # PEP 440
    for cmd in ([sys.executable, "-m", "slnl", "--version"], [sys.executable, "-m", "slnl", "-V"]):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
        assert out == f"slnl {slnl.__version__}\n"
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("slnl")
    except PackageNotFoundError:
        return  # run from a checkout on PYTHONPATH without installing
    assert installed == slnl.__version__, "the installed metadata is stale: pip install --no-deps -e . again"


def test_license_and_citation():
    text = (REPO_ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Copyright (c) 2026 the slnl authors" in text
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]

    cff = yaml.safe_load((REPO_ROOT / "CITATION.cff").read_text())
    for key in ("cff-version", "message", "title", "authors"):  # required by the Citation File Format 1.2.0
        assert cff.get(key), f"CITATION.cff: {key} missing"
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert str(cff["version"]) == slnl.__version__ and cff["license"] == PROJECT["license"]
    assert all("name" in a or "family-names" in a for a in cff["authors"])
    refs = cff["references"]
    assert refs, "CITATION.cff: the reproduced paper belongs under references"
    for ref in refs:
        for key in ("type", "title", "authors"):  # required for a reference
            assert ref.get(key), f"CITATION.cff reference: {key} missing"
        assert all(a.get("family-names") and a.get("given-names") for a in ref["authors"])
    assert "Frequency Attention" in refs[0]["title"] and "Synchronous Local and Non-local" in refs[0]["title"]
    assert refs[0]["year"] == 2019 and "AAAI" in refs[0]["conference"]["name"]  # the venue, not only the preprint
