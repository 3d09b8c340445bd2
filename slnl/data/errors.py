"""The data package's exceptions: a malformed input (which file, where, what was expected, what was found) and a
store that is not the one a caller expects (already there, changed, or without an identity)."""
from __future__ import annotations

import os


class DataFormatError(ValueError):
    """A raw file does not follow its format.

    ``where`` is a 1-based line number for text formats (``int``) or a location such as a JSON path
    (``data[3].skeleton[1].pose``) or an array element (``x_train[12], frame 4``) (``str``); ``None`` when the
    problem concerns the whole file (e.g. "no body in any frame"). In bulk preparation the same four fields become one
    row of the store's ``rejects.tsv``.
    """

    def __init__(self, file: str | os.PathLike, where: int | str | None, expected: str, found: str):
        self.file = str(file)
        self.where = where
        self.expected = expected
        self.found = found
        super().__init__(self._message())

    def _message(self) -> str:
        if isinstance(self.where, int):
            loc = f"{self.file}, line {self.where}"
        elif self.where:
            loc = f"{self.file}, at {self.where}"
        else:
            loc = self.file
        return f"{loc}: expected {self.expected}, found {self.found}"

    def __reduce__(self):  # picklable across worker processes with its fields intact
        return (type(self), (self.file, self.where, self.expected, self.found))


class StoreError(ValueError):
    """A prepared store is not what the caller needs; the message is one line saying what to do.

    A ``ValueError``: the store directory passed in is an unacceptable argument, so every command line that reports
    bad arguments as one line (``slnl prepare``, ``slnl train/eval``) reports this one too.
    """


class StoreExistsError(StoreError):
    """``prepare`` was pointed at a directory that already holds a complete store, without ``force``."""


class StoreChangedError(StoreError):
    """A store's content fingerprint differs from the one a run (or a result) recorded: it is other data."""


def short(text: str, n: int = 60) -> str:
    """A found value quoted for an error message, cut to ``n`` characters."""
    text = repr(text)
    return text if len(text) <= n else text[: n - 3] + "..."
