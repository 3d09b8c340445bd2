"""The notebooks' guard against a misspelled parameter name.

papermill only *warns* about a parameter the notebook does not declare ("Passed unknown parameter: m1"), injects it
anyway and runs on with the defaults — for a table notebook that is every row of the table, weeks of GPU time at the
paper's scale. Every notebook in ``notebooks/`` therefore stops within seconds instead, with one line naming the
parameters it knows.

How it tells an injected name apart from everything else (exactly, without reading the notebook file):

1. the cell *above* the parameters cell takes a snapshot of the names defined so far (``set(globals())``);
2. the parameters cell assigns the notebook's parameters (its names are ``known``, written into the notebook by
   ``notebooks/_make.py`` from the same text, see ``parameter_names``);
3. papermill inserts its ``injected-parameters`` cell right after the parameters cell;
4. the cell after that calls ``check_parameters``: a name defined since the snapshot that is not a parameter can only
   have come from the injected cell.

Names starting with ``_`` are left out: IPython defines them between cells (``_``, ``_i3``, ``_3`` …). Re-running the
notebook in a live kernel needs no special case: whatever earlier runs defined is already in the snapshot.
"""
from __future__ import annotations

import ast
import difflib
import json
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence


class UnknownParameterError(ValueError):
    """A name was injected into a notebook that its parameters cell does not declare.

    In a notebook its traceback is this one line: IPython shows what ``_render_traceback_`` returns instead of the
    frames, so the message is not buried under the check's own code (papermill repeats the traceback it is given, and
    a Jupyter front end shows it as the cell's output)."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


# The errors a user's input causes (a missing store, an unknown split or row, a malformed file): the library says each
# in one line naming what to change, so a notebook shows that line, not the frames that led to it.
USER_ERRORS: tuple[type[BaseException], ...] = (FileNotFoundError, ValueError, KeyError)


def short_user_errors(shell: object | None = None) -> None:
    """In an IPython kernel (``shell``, default the running one), show a ``USER_ERRORS`` exception as its one line
    and a hint that ``%tb`` prints the frames; the cell still fails (papermill stops there). Elsewhere, nothing."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return
        shell = get_ipython()
    if shell is None:
        return

    def one_line(self, etype, value, tb, tb_offset=None):  # noqa: ANN001 - IPython's handler signature
        if hasattr(value, "_render_traceback_"):  # an error that renders itself (UnknownParameterError) says it all
            stb = value._render_traceback_()
        else:
            text = str(value.args[0]) if isinstance(value, KeyError) and value.args else str(value)
            stb = [f"{etype.__name__}: {text}", "(the full traceback: %tb)"]
        self._showtraceback(etype, value, stb)
        return stb

    shell.set_custom_exc(USER_ERRORS, one_line)


def parameter_names(source: str) -> list[str]:
    """The names a parameters cell assigns at top level, in order (``a = 1``, ``a: int = 1``)."""
    names: list[str] = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        for t in targets:
            if isinstance(t, ast.Name) and t.id not in names:
                names.append(t.id)
    return names


def notebook_parameters(path: str | os.PathLike) -> list[str]:
    """The parameters a notebook file declares: the names its cell tagged ``parameters`` (papermill's tag) assigns.

    Read as JSON, nothing executed. ``ValueError`` (one line naming the file) for a file that is not a notebook or
    has no parameters cell. Whoever passes parameters to a notebook (``slnl sweep``) checks them against this, so
    the notebook is the one place its parameters are named.
    """
    path = Path(path)
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a readable Jupyter notebook ({type(e).__name__}: {e})") from None
    for cell in cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source = cell.get("source", "")
            return parameter_names("".join(source) if isinstance(source, list) else source)
    raise ValueError(f"{path}: no cell tagged 'parameters'; expected papermill's parameters cell")


def unknown_names(namespace: Iterable[str], before: Iterable[str], known: Iterable[str]) -> list[str]:
    """Names in ``namespace`` that are neither in the snapshot ``before`` nor ``known``, nor start with ``_``."""
    seen, ok = set(before), set(known)
    return sorted(k for k in namespace if k not in seen and k not in ok and not k.startswith("_"))


def suggestion(name: str, known: Sequence[str]) -> str | None:
    """The known parameter ``name`` was most likely meant to be: same letters in another case first, else the
    closest spelling (difflib, ratio >= 0.6), else None."""
    same = [k for k in known if k.lower() == name.lower()]
    if same:
        return same[0]
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def check_parameters(namespace: Mapping[str, object], before: Iterable[str], known: Sequence[str],
                     notebook: str = "this notebook") -> None:
    """Raise ``UnknownParameterError`` (one line: the unknown names, a likely meant name for each, the known
    parameters) if a name was defined after the snapshot ``before`` that is not one of ``known``."""
    unknown = unknown_names(namespace, before, known)
    if not unknown:
        return
    parts = []
    for name in unknown:
        guess = suggestion(name, known)
        parts.append(f"{name!r}" + (f" (did you mean {guess!r}?)" if guess else ""))
    raise UnknownParameterError(
        f"{notebook}: unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(parts)}; nothing was run. "
        f"Its parameters are: {', '.join(known)}")
