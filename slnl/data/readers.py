"""Reading a raw file as text or JSON, for the format modules: undecodable bytes, an empty file and malformed JSON
are each one ``DataFormatError`` naming the file (and the line, where there is one)."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import DataFormatError


def text_lines(path: str, expected: str) -> list[str]:
    """The lines of the UTF-8 (or ASCII) text file ``path``, trailing blank lines removed; an empty file is an error
    saying what a line should hold (``expected``)."""
    try:
        lines = Path(path).read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataFormatError(path, None, "UTF-8/ASCII text", f"undecodable bytes at offset {e.start}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataFormatError(path, 1, expected, "an empty file")
    return lines


def load_json(path: str) -> object:
    """The JSON document in ``path``."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataFormatError(path, None, "UTF-8 JSON text", f"undecodable bytes at offset {e.start}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataFormatError(path, e.lineno, "valid JSON", f"{e.msg} (column {e.colno})") from None
