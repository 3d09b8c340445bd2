"""Where slnl writes: under the working directory or $SLNL_HOME, never inside the installed package — checked on a
wheel built from this checkout and installed apart from it; relative paths follow one rule; git_commit() never fails.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slnl import utils
from slnl.data import synthetic
from slnl.engine import cli, evaluate
from slnl.recipes import config_for
from slnl.utils import REPO_ROOT


def test_relative_paths_follow_the_working_directory_or_slnl_home(tmp_path, monkeypatch):
    monkeypatch.delenv("SLNL_HOME", raising=False)
    monkeypatch.delenv("SLNL_RUNS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert utils.home() == tmp_path
    assert utils.resolve_path("results") == tmp_path / "results" and utils.resolve_path(None) is None
    assert utils.resolve_path("/abs/x") == Path("/abs/x") and utils.resolve_path("~/x") == Path.home() / "x"
    assert synthetic.default_root() == tmp_path / "results" / "data" / "synthetic"
    out = config_for("cpu", "xsub", loss="CE").default_out()
    assert out.parent == tmp_path / "results" / "runs"
    assert utils.portable(tmp_path / "results" / "runs" / "a") == "results/runs/a"
    assert utils.portable("/elsewhere/b") == "/elsewhere/b"

    home = tmp_path / "home"
    monkeypatch.setenv("SLNL_HOME", str(home))
    assert utils.home() == home and utils.resolve_path("results") == home / "results"
    assert synthetic.default_root() == home / "results" / "data" / "synthetic"
    assert config_for("cpu", "xsub", loss="CE").default_out().parent == home / "results/runs"
    assert utils.portable(home / "results" / "x.json") == "results/x.json"
    monkeypatch.setenv("SLNL_RUNS_DIR", "scratch/runs")  # relative: to the same place
    assert config_for("cpu", "xsub", loss="CE").default_out().parent == home / "scratch/runs"


def test_command_line_paths_follow_the_same_rule(tmp_path, monkeypatch):
    """`slnl train --data/--out/--config` and `slnl eval RUN --data` are read as every other relative path is."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "c.yaml").write_text("epochs: 3\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLNL_HOME", str(home))
    cfg = cli.config_from_args(["--preset", "cpu", "--config", "c.yaml", "--data", "store", "--out", "run1"])
    assert (cfg.data, cfg.out, cfg.epochs) == (str(home / "store"), str(home / "run1"), 3)
    assert cli.config_from_args(["--data", "/abs/store"]).data == "/abs/store"
    with pytest.raises(FileNotFoundError, match=f"^{home / 'run1'}: no such file or directory"):
        evaluate("run1")


def test_file_lock_is_exclusive_and_leaves_nothing(tmp_path):
    lock = tmp_path / "locks" / "k.lock"
    code = ("import sys, time\nfrom slnl.utils import file_lock\n"
            "with file_lock(sys.argv[1], on_wait=lambda: print('waited', flush=True)):\n"
            "    print('in', flush=True); time.sleep(float(sys.argv[2]))\n")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    a = subprocess.Popen([sys.executable, "-c", code, str(lock), "1.5"], env=env, stdout=subprocess.PIPE, text=True)
    assert a.stdout.readline() == "in\n"
    b = subprocess.run([sys.executable, "-c", code, str(lock), "0"], env=env, capture_output=True, text=True,
                       timeout=60)
    a.communicate(timeout=60)
    assert b.stdout == "waited\nin\n" and a.returncode == b.returncode == 0
    assert list(lock.parent.iterdir()) == []


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """slnl built into a wheel from a copy of this checkout's sources and installed into a folder of its own."""
    if shutil.which("git") is None:
        pytest.skip("git not found")
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, src / name)
    shutil.copytree(REPO_ROOT / "slnl", src / "slnl", ignore=shutil.ignore_patterns("__pycache__"))
    target = base / "site"
    if importlib.util.find_spec("setuptools") is None:
        # No build backend in this environment and no network for an isolated build: a pure-Python wheel installs
        # exactly its package directory, so copy that (the property under test is where slnl writes, not pip).
        shutil.copytree(src / "slnl", target / "slnl")
        return target
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(base / "dist"), str(src)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (base / "dist").glob("slnl-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--no-compile", "--target", str(target), str(wheel)], check=True,
                   capture_output=True, timeout=300)
    return target


def _run(installed: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLNL_") or k == "SLNL_SHARED_DATA"}
    clean.update(PYTHONPATH=str(installed), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", **env)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=600)


def test_installed_wheel_writes_under_the_working_directory_only(installed, tmp_path):
    """`slnl train` from an empty directory with slnl installed from a wheel: the built-in synthetic store and the
    run directory land in that directory; the installed package is left as installed. With SLNL_HOME set they land
    there instead. `slnl sweep` away from the repository says in one line where it looked for the notebooks."""
    package = installed / "slnl"
    before = sorted(p.relative_to(installed) for p in installed.rglob("*"))
    work = tmp_path / "work"
    work.mkdir()
    where = _run(installed, work, "-c", "import slnl, slnl.utils as u; print(slnl.__file__); print(u.git_commit())")
    assert where.returncode == 0, where.stderr
    assert where.stdout.splitlines() == [str(package / "__init__.py"), "None"]  # the installed copy; no checkout

    train = _run(installed, work, "-m", "slnl", "train", "--preset", "cpu", "--epochs", "1",
                 "--max-steps-per-epoch", "2")
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-3000:]
    assert (work / "results" / "data" / "synthetic" / "meta.json").is_file()
    (run,) = (work / "results" / "runs").iterdir()
    assert (run / "result.json").is_file() and run.name.startswith("cpu-xsub-SMFL-seed0-")
    assert sorted(p.name for p in work.iterdir()) == ["results"]

    home = tmp_path / "home"
    probe = ("from slnl.data import synthetic\nfrom slnl.recipes import config_for\n"
             "print(synthetic.default_root()); print(config_for('cpu').default_out().parent)")
    moved = _run(installed, work, "-c", probe, SLNL_HOME=str(home))
    assert moved.stdout.splitlines() == [str(home / "results/data/synthetic"), str(home / "results/runs")], moved.stderr

    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    sweep = _run(installed, nowhere, "-m", "slnl", "sweep", "table3")
    assert sweep.returncode == 2 and sweep.stderr.splitlines() == [
        f"slnl sweep: no table3.ipynb in {nowhere / 'notebooks'} (run from the slnl repository, or pass --notebooks "
        "DIR)"]
    assert list(nowhere.iterdir()) == []
    assert sorted(p.relative_to(installed) for p in installed.rglob("*")) == before  # nothing written in the package


def test_git_commit_is_the_working_directorys_repository_for_an_installed_copy(installed, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git("init", "-q", cwd=repo)
    (repo / "f").write_text("x")
    _git("add", "f", cwd=repo)
    _git("commit", "-q", "-m", "one", cwd=repo)
    head = _git("rev-parse", "HEAD", cwd=repo)
    got = _run(installed, repo, "-c", "from slnl.utils import git_commit; print(git_commit())")
    assert got.stdout.strip() == head, got.stderr
    # From this checkout, the checkout's own commit, wherever the working directory is.
    mine = _git("rev-parse", "HEAD", cwd=REPO_ROOT)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    got = subprocess.run([sys.executable, "-c", "from slnl.utils import git_commit; print(git_commit())"], cwd=repo,
                         env=env, capture_output=True, text=True, timeout=60)
    assert got.stdout.strip() == mine, got.stderr


def test_git_commit_is_the_commit_a_process_started_with(tmp_path):
    """A long process (a notebook training five folds) records the code it imported: a commit made while it runs does
    not change what git_commit() says in it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git("init", "-q", cwd=repo)
    for text in ("one", "two"):
        (repo / "f").write_text(text)
        _git("add", "f", cwd=repo)
        _git("commit", "-q", "-m", text, cwd=repo)
        if text == "one":
            first = _git("rev-parse", "HEAD", cwd=repo)
            assert utils._head(str(repo)) == first
    assert _git("rev-parse", "HEAD", cwd=repo) != first and utils._head(str(repo)) == first
    utils._head.cache_clear()  # a new process would see the new commit
    assert utils._head(str(repo)) == _git("rev-parse", "HEAD", cwd=repo)


def test_committed_results_name_no_machines_directories():
    """Every committed JSON under results/ records paths relative to home() (``slnl.utils.portable``), never a
    machine's directories."""
    out = subprocess.run(["git", "ls-files", "results"], cwd=REPO_ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    files = [REPO_ROOT / f for f in out.stdout.split() if f.endswith(".json")]
    assert files
    absolute = re.compile(r'"(/(?:work|home|tmp|root|Users|mnt|scratch)/[^"]*)"')
    offenders = [(f.relative_to(REPO_ROOT), m.group(1)) for f in files for m in [absolute.search(f.read_text())] if m]
    assert not offenders, offenders[:5]
