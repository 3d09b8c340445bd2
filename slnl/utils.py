"""Small shared helpers: where slnl reads and writes (``home``, ``resolve_path``, ``portable``), atomic writes (no run
ever loses finished work), a lock file, shared test data, provenance.

Where files go. slnl never writes inside the installed package. Every relative path — the ones you give
(``results_dir``, ``data_root``, ``--results-dir`` …) and slnl's own defaults (``results/<dataset>/``,
``results/runs/``, the built-in synthetic store ``results/data/synthetic/``) — is relative to ``home()``:
``$SLNL_HOME`` when it is set, else the working directory. Unset (the usual case) this is the shell's own rule, the
same in the command line, the Python API and the notebooks (``slnl sweep`` / ``slnl reproduce`` start papermill with
``--cwd`` = ``home()``; an interactive Jupyter kernel starts in the notebook's folder, so set ``SLNL_HOME`` to the
repository there).
"""
from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from slnl import __version__

#: The directory above the package. When slnl runs from a source checkout it is that checkout (tests read the
#: notebooks and the shared sample data from here); installed from a wheel it is site-packages. Never written to.
REPO_ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------------------------------------
# Paths
# ----------------------------------------------------------------------------------------------------------------------
def home() -> Path:
    """The directory relative paths are relative to: ``$SLNL_HOME`` when set (and not empty), else the working
    directory (module docstring)."""
    env = os.environ.get("SLNL_HOME", "").strip()
    return Path(env).expanduser().absolute() if env else Path.cwd()


def resolve_path(path: str | os.PathLike | None) -> Path | None:
    """``path`` as slnl means it: ``~`` expanded, an absolute path unchanged, a relative one under ``home()``;
    ``None`` or ``""`` (an optional path left unset) gives ``None``."""
    if path is None or str(path) == "":
        return None
    p = Path(path).expanduser()
    return p if p.is_absolute() else home() / p


def default_results_dir(dataset: str | None = "synthetic") -> str:
    """Where a dataset's results, tables and figures go unless told otherwise: ``results/<dataset>`` (relative, so
    under ``home()``); ``results/synthetic`` for the built-in synthetic stand-in. The notebooks, ``slnl sweep``,
    ``slnl reproduce`` and ``make reproduce`` share it."""
    return f"results/{dataset or 'synthetic'}"


def portable(path: str | os.PathLike) -> str:
    """``path`` relative to ``home()`` when it lies inside it, else absolute: what result files record, so that a
    results folder copied together with its run directories stays valid (read back with ``resolve_path``)."""
    p = Path(resolve_path(path)).resolve()
    try:
        return str(p.relative_to(home().resolve()))
    except ValueError:
        return str(p)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, on_wait: Callable[[], Any] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing, removed on release) for the ``with`` block;
    ``on_wait()`` is called once if another process holds it (then this one waits).

    ``flock`` locks belong to the process: the operating system releases them when it exits, however it exits, so a
    killed holder never blocks the others. The file is removed while still held; a process that opened it before the
    removal and then got the lock sees that its file is no longer the one at ``path`` and starts again, so two
    holders never coexist."""
    import fcntl  # POSIX only: imported here so that this module imports on any system

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                    on_wait = None
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # removed by the previous holder while we waited: lock the new file instead
    try:
        yield
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(fd)


# ----------------------------------------------------------------------------------------------------------------------
# Atomic writes
# ----------------------------------------------------------------------------------------------------------------------
def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees either the old file or the new one, never half of it.

    A temporary file in the same directory is written, flushed, fsync'ed and renamed over the target
    (``os.replace`` is atomic on POSIX within one file system).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; results are meant to be shared like any file
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through a temporary file + rename (a SIGKILL mid-write leaves the old checkpoint intact)."""
    import torch  # here, not at the top: data preparation imports this module and never needs torch (1.4 s)

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ----------------------------------------------------------------------------------------------------------------------
# Shared data and provenance
# ----------------------------------------------------------------------------------------------------------------------
def shared_data_dir() -> Path:
    """Where the real sample data lives: ``$SLNL_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("SLNL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def source_checkout() -> Path | None:
    """``REPO_ROOT`` when slnl is imported from a git checkout of its sources (``.git`` is a directory, or a file in a
    worktree), else ``None`` (an installed copy)."""
    return REPO_ROOT if (REPO_ROOT / ".git").exists() else None


def git_commit() -> str | None:
    """The commit of the code that runs: ``HEAD`` of the source checkout slnl is imported from when it is one, else of
    the git repository holding the working directory; ``None`` when neither is (or git is missing). Never raises.

    Each place's first answer is kept for the life of the process: a process imports slnl once, so a long one (a
    notebook training five folds while commits are made beside it) records the commit of the code it runs, not the
    one checked out when it finished."""
    checkout = source_checkout()
    places = [checkout] if checkout is not None else []
    try:
        places.append(Path.cwd())
    except OSError:  # the working directory was removed
        pass
    for where in places:
        head = _head(str(where))
        if head:
            return head
    return None


@functools.lru_cache(maxsize=None)
def _head(where: str) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=where, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def file_commit(path: str | os.PathLike) -> str | None:
    """The last commit that changed ``path`` (a committed file: a study's protocol), or None when it is not
    committed (or git is missing). Never raises."""
    p = Path(path).resolve()
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%H", "--", p.name], cwd=p.parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def software_versions() -> dict[str, str]:
    import torch  # here, not at the top: data preparation imports this module and never needs torch (1.4 s)

    return {
        "slnl": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cuda": torch.version.cuda or "none",
    }
