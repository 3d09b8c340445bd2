"""The table "Choices the paper leaves open" (docs/choices.md, linked from the README) names every place where we
read, complete or depart from the paper, with what we did, why, and a module that exists."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _choices() -> list[dict[str, str]]:
    text = (REPO / "docs" / "choices.md").read_text()
    section = text.split("# Choices the paper leaves open", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in re.split(r"(?<!\\)\|", lines[0])[1:-1]]
    assert header == ["choice", "ours", "why", "where"]
    rows = []
    for ln in lines[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]]
        assert len(cells) == 4, ln
        rows.append(dict(zip(header, cells)))
    return rows


def test_every_row_is_complete_and_points_at_a_module():
    rows = _choices()
    assert len(rows) >= 10
    for r in rows:
        assert all(r.values()), r
        for where in re.findall(r"`([^`]+\.py)`", r["where"]):
            assert (REPO / "slnl" / where).is_file() or (REPO / "slnl" / "models" / where).is_file(), where


# (a word of the choice column, what the "ours" column must say)
@pytest.mark.parametrize("choice,ours", [
    ("aFA", ["amplitude spectrum", "zero phase"]),
    ("arithmetic of the frequency attention", ["fp32", "autocast"]),
    ("training precision", ["bf16", "fp32", "frequency attention"]),
    ("Eq. 11", ["no bias"]),
    ("local block", ["no non-linearity"]),
    ("two streams", ["own transform network", "own frequency attention"]),
    ("transformer initialisation", ["C_1 = I", "W_s"]),
    ("PA-LSTM", ["70.3", "62.9"]),
    ("BN statistics", ["population mean and variance", "dropout off", "--bn-stats running"]),
    ("adopted", ["m = 0.4, M1 = 5 on CS", "m = 0.6, M1 = 3 on CV", "slnl train"]),
])
def test_the_departures_and_readings_are_listed(choice, ours):
    hits = [r for r in _choices() if choice in r["choice"]]
    assert len(hits) == 1, f"no single choices row for {choice!r} in docs/choices.md"
    for needle in ours:
        assert needle in hits[0]["ours"], (choice, needle)
