"""The first screen: the README stays short (the anchors of the field are 4–8k characters), every file it links or
names exists, and so does every file the documents it moved to link; `make lab` runs headless, also as root."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
LIMIT = 12_000
DOCS = ["README.md", "docs/usage.md", "docs/data.md", "docs/scaling.md", "docs/choices.md", "docs/paper-to-code.md",
        "docs/msr3d-notes.md", "docs/findings.md", "docs/benchmarks.md", "results/README.md"]
# Top-level folders and files of the repository: a backticked path starting with one of them must exist.
TRACKED = ("docs/", "results/", "slnl/", "notebooks/", "tests/", "benchmarks/", "LICENSE", "CITATION.cff", "Makefile",
           "pyproject.toml", "requirements.lock", "environment.yml")


def test_readme_is_short():
    n = len(README.read_text())
    assert n <= LIMIT, f"README.md has {n} characters; the first screen keeps it within {LIMIT}: move detail to docs/"


def _targets(path: Path) -> list[str]:
    text = path.read_text()
    links = [t for t in _links(path) if t and not re.match(r"[a-z]+://|mailto:", t)]
    ticks = [t.rstrip("/.,") for t in re.findall(r"`([^`\s]+)`", text)]
    return links + [t for t in ticks if t.startswith(TRACKED) and not re.search(r"[<>*{}$]|N\.|N_", t)]


@pytest.mark.parametrize("doc", DOCS)
def test_every_link_and_named_path_exists(doc):
    path = REPO / doc
    assert path.is_file(), doc
    missing = []
    for t in _targets(path):
        base = REPO if not t.startswith((".", "/")) and (REPO / t).exists() else path.parent
        if not (base / t).exists() and not (REPO / t).exists():
            missing.append(t)
    links = set(_links(path))
    # A backticked path git ignores is where a command writes (a run's store, its run folders): named, not shipped.
    missing = [t for t in missing if t in links or not _ignored(t)]
    assert not missing, f"{doc} names what does not exist: {missing}"


def _links(path: Path) -> list[str]:
    return [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", path.read_text())]


def _ignored(rel: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", "--no-index", rel], cwd=REPO).returncode == 0


def test_readme_keeps_the_first_screen_order_and_the_license():
    text = README.read_text()
    heads = re.findall(r"^## (.+)$", text, re.M)
    assert heads[:4] == ["The verdict on real data", "Try it in two minutes", "One row of the paper",
                         "In your own code"], heads
    assert heads[-1] == "License and citation" and "MIT (`LICENSE`)" in text and "CITATION.cff" in text
    assert "protocol.md" in text and "docs/findings.md" in text
    for study in sorted(p.parent.parent.name for p in REPO.glob("results/*/tables/claims.md")
                        if p.parent.parent.name != "synthetic"):  # the stand-in of make reproduce: not a study
        assert f"results/{study}/figures/claims.png" in text, f"the claims figure of results/{study}"
    for moved in ("docs/choices.md", "docs/data.md", "docs/scaling.md", "docs/benchmarks.md", "docs/findings.md"):
        assert f"]({moved})" in text, moved


def test_moved_sections_live_in_docs():
    assert "| choice | ours | why | where |" in (REPO / "docs/choices.md").read_text()
    assert "## Measured" in (REPO / "docs/benchmarks.md").read_text()
    assert "torchrun --nproc_per_node" in (REPO / "docs/scaling.md").read_text()
    assert "slnl prepare ntu60 --raw" in (REPO / "docs/data.md").read_text()
    assert "#SBATCH --array" in (REPO / "docs/scaling.md").read_text()


def _make_lab(*args: str) -> str:
    r = subprocess.run(["make", "-n", "lab", *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    (line,) = [ln for ln in r.stdout.splitlines() if "jupyter lab" in ln]
    return line


def test_make_lab_is_headless_and_runs_as_root():
    line = _make_lab()
    assert "--no-browser --port 8888" in line and f"--ServerApp.root_dir={REPO}" in line
    assert "--LabApp.default_url=/lab/tree/notebooks" in line
    assert ("--allow-root" in line) == (os.geteuid() == 0)
    assert "--port 9999" in _make_lab("ARGS=--no-browser --port 9999")
    assert "--port 9998" in _make_lab("LAB_ARGS=--no-browser --port 9998")
