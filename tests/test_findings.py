"""docs/findings.md and the README's verdict table are generated from the committed tables, never typed: they are
what `python -m slnl.report.findings` writes now, and every number in them is a committed table's (rounded) or a
published result of the dataset's module (or, on a model card line, the committed result file of that model's run)."""
from __future__ import annotations

import csv
import importlib
import json
import re
from pathlib import Path

import pytest

from slnl.report import findings

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results"
FINDINGS = REPO / "docs" / "findings.md"


def test_docs_findings_is_current():
    assert FINDINGS.read_text() == findings.findings_markdown(RESULTS), (
        "docs/findings.md is out of date with the committed tables: python -m slnl.report.findings")


def test_the_readme_verdict_is_the_generated_summary():
    text = (REPO / "README.md").read_text()
    assert findings.README_START in text and findings.README_END in text
    assert findings.readme_block(RESULTS) in text, "README's verdict table is stale: python -m slnl.report.findings"
    assert findings.with_readme_block(text, RESULTS) == text
    assert findings.main(["--check"]) == 0


def _committed_numbers() -> set[float]:
    """Every numeric cell of every committed table (results/*/tables/*.csv), the earlier protocol's final-model
    numbers (results/<study>/earlier-protocol.json), the published anchors, and the test top-1 (%) of each committed
    model's own run (results/<study>/<table>/<run>.json beside results/<study>/models/<table>__<run>.pt)."""
    out: set[float] = set()
    for path in RESULTS.glob("*/tables/*.csv"):
        with path.open(newline="") as f:
            for row in csv.reader(f):
                for cell in row:
                    try:
                        out.add(float(cell))
                    except ValueError:
                        pass
    for path in RESULTS.glob(f"*/{findings.EARLIER}"):  # the earlier protocol's verdicts, read from its tables
        doc = json.loads(path.read_text())
        for e in doc["studies"].values():
            out |= {float(v) for v in e.get("final_xsub", {}).values()}
    for model in RESULTS.glob("*/models/*.pt"):
        table, _, stem = model.stem.partition("__")
        run = model.parent.parent / table / f"{stem}.json"
        out.add(100 * json.loads(run.read_text())["top1"])
    for ds in findings.DATASET_NAMES:
        module = importlib.import_module(f"slnl.data.{ds.rstrip('0123456789') if ds.startswith('ntu') else ds}")
        for refs in getattr(module, "PUBLISHED", {}).values():
            out |= {float(v) for v in refs.values()}
    return out


def test_every_number_is_a_committed_tables():
    """Each number with decimals (accuracies, differences, interval ends) equals a committed table's value rounded
    to the digits printed; whole numbers are counts (seeds, claims, epochs) of the same tables."""
    values = _committed_numbers()
    text = FINDINGS.read_text().replace("−", "-")
    text = re.sub(r"\(\.\./[^)]*\)|`[^`]*`", "", text)  # links and code: paths, not numbers
    numbers = re.findall(r"(?<![\w.§])[+-]?\d+\.\d+(?![\w.])", text)  # not §3.2
    assert len(numbers) > 50
    strays = []
    for n in numbers:
        digits = len(n.split(".")[1])
        x = float(n)
        if not any(abs(round(v, digits) - x) < 1e-9 or abs(round(abs(v), digits) - abs(x)) < 1e-9 and v * x >= 0
                   for v in values):
            strays.append(n)
    assert not strays, f"numbers in docs/findings.md found in no committed table: {strays[:10]}"


# --------------------------------------------------------------------------------------------------- the reader
OLD = ["better", "worse", "column", "paper_diff", "ours_diff", "low", "high", "resolvable", "n_better", "n_worse",
       "verdict", "delta_vs_paper", "note", "claim"]
NEW = ["better", "worse", "column", "kind", "paper_diff", "ours_diff", "low", "high", "p_welch", "p_tost",
       "verdict_uncorrected", "p_holm", "family", "verdict", "detectable_80", "seeds_for_1pp", "n_better", "n_worse",
       "delta_vs_paper", "verdict_other_bn", "note", "claim"]


def _write(path: Path, header: list[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in header})


def _study(root: Path, name: str, header: list[str], verdicts: list[str]) -> None:
    d = root / name
    (d / "table1").mkdir(parents=True)
    (d / "table1" / "slnl-rfa__CS__seed0.json").write_text('{"dataset": "msr3d", "scale": "small", "epochs": 7}')
    (d / "protocol.md").write_text("# Protocol of this study\n\nTrained on a test machine; nothing else.\nMore.\n")
    _write(d / "tables" / "table1.csv", ["Table 1", "CS_paper", "CS_ours", "CS_std", "CS_n", "CS_diff"],
           [{"Table 1": "HCN (Li et al. 2018)", "CS_paper": "86.5", "CS_n": "0"},
            {"Table 1": "SLnL-rFA (Ours)", "CS_paper": "89.1", "CS_ours": "88.123", "CS_std": "1.26", "CS_n": "3"}])
    _write(d / "tables" / "table1_claims.csv", header, [
        {"better": "SLnL-rFA (Ours)", "worse": "HCN (Li et al. 2018)", "column": "CS", "paper_diff": "2.6",
         "n_better": "3", "n_worse": "0", "verdict": "", "note": "HCN is a published number on ntu60; no comparison"},
        {"better": "SLnL-rFA (Ours)", "worse": "Lie group (Vemulapalli, Arrate and Chellappa 2014)", "column": "CS",
         "ours_diff": "-1.357", "low": "-4.5", "high": "1.8", "n_better": "3", "n_worse": "0",
         "verdict": verdicts[0], "note": "a published number on msr3d"}])
    _write(d / "tables" / "table3_claims.csv", header, [
        {"better": "CS-T", "worse": "PosVel-N", "column": "CS", "paper_diff": "1.0", "ours_diff": "2.5", "low": "0.5",
         "high": "4.5", "n_better": "3", "n_worse": "3", "verdict": verdicts[1], "kind": "ordering"},
        {"better": "CS-T", "worse": "CNN-V", "column": "CS", "paper_diff": "0.8", "ours_diff": "-2.5", "low": "-4.5",
         "high": "-0.5", "n_better": "3", "n_worse": "3", "verdict": verdicts[2]},
        {"better": "CS-T", "worse": "PosVel-N", "column": "CV", "paper_diff": "0.7", "n_better": "0", "n_worse": "0",
         "verdict": "no such split", "note": "msr3d defines no CV split"}])


@pytest.mark.parametrize("header,verdicts", [
    (OLD, ["not resolved at 3 seeds", "holds", "reversed"]),
    (NEW, ["not resolved after Holm over 1 claim", "holds", "reversed"]),  # the claims tables' newer columns
])
def test_the_reader_takes_either_claims_layout(tmp_path, header, verdicts):
    _study(tmp_path, "msr3d", header, verdicts)
    md = findings.findings_markdown(tmp_path)
    summary = findings.summary_markdown(tmp_path)
    assert "| MSR Action3D, `small` scale, 7 epochs (`results/msr3d`) | CS | 88.1 ± 1.3 % (3 seeds) | " \
           "Lie group (Vemulapalli, Arrate and Chellappa 2014) 89.48 % | -1.36 [-4.50, +1.80]: not resolved |" in summary
    assert "| Table 3: transform networks (§3.1) | 1 / 1 / 0 (1) |" in summary
    assert "| **all** | 1 / 1 / 1 (2) |" in summary
    assert "| NW-UCLA | — | pending |" in summary and "## SBU Kinect Interaction — pending" in md
    assert "**Protocol** ([`protocol.md`](../results/msr3d/protocol.md)): Protocol of this study. Trained on a test " \
           "machine." in md
    assert "| 3 | CS-T > CNN-V | CS | +0.8 | -2.50 [-4.50, -0.50] | 3+3 | reversed |" in md
    assert "Not tested here: 2 claim(s)" in md


def test_no_study_is_all_pending(tmp_path):
    md = findings.findings_markdown(tmp_path / "nothing")
    assert "No study is committed yet." in md and md.count("— pending") == len(findings.EXPECTED)


@pytest.mark.parametrize("verdict,kind", [("holds", "holds"), ("reversed", "reversed"),
                                          ("not resolved at 5+5 seeds", "not resolved"),
                                          ("not resolved after Holm over 6 claims", "not resolved"),
                                          ("no such split", "untestable"), ("not run", "untestable"),
                                          ("", "untestable")])
def test_verdict_classes(verdict, kind):
    assert findings.verdict_class(verdict) == kind


def test_write_findings_writes_the_file_and_the_readme_block(tmp_path):
    _study(tmp_path / "results", "msr3d", OLD, ["holds", "holds", "holds"])
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{findings.README_START}\nold\n{findings.README_END}\n\nrest\n")
    out = findings.write_findings(tmp_path / "docs" / "findings.md", tmp_path / "results", readme)
    assert out.read_text() == findings.findings_markdown(tmp_path / "results")
    text = readme.read_text()
    assert "\nold\n" not in text and text.endswith("\n\nrest\n") and "| **all** | 3 / 0 / 0 (2) |" in text


def test_rows_outside_the_plan_are_one_reason_naming_each_row_once():
    """Every claim whose rows a study's declared plan leaves out is counted under one reason, and each such row is
    named there exactly once — read back from the claims tables' notes, which name the rows per claim."""
    from slnl.report.claims import OUTSIDE_PLAN
    text = " ".join(FINDINGS.read_text().split())
    studies = [RESULTS / ds for ds in findings.EXPECTED if (RESULTS / ds / "tables").is_dir()]
    grouped = 0
    for study in studies:
        ds = study.name
        notes = []
        for path in sorted(study.glob("tables/table*_claims.csv")):
            with path.open(newline="") as f:
                notes += [r.get("note", "") for r in csv.DictReader(f)]
        suffix = OUTSIDE_PLAN.format(ds=ds)
        rows = {r for n in notes if n.endswith(suffix) for r in n[: -len(suffix)].split(" and ")}
        section = text.split(f"— `results/{ds}`", 1)[1].split(" ## ", 1)[0]
        assert suffix.strip(": ") not in section  # not one reason per claim
        if not rows:
            continue
        reason = re.search(r"outside the study's declared plan \(results/" + ds + r"/protocol\.md\) \((\d+); rows not "
                           r"run: (.*?)\);", section)
        assert reason, f"{ds}: the claims outside the plan are not grouped"
        assert int(reason[1]) == sum(n.endswith(suffix) for n in notes)
        named = reason[2]  # labels hold commas ("SLnL (M1=1, M2=5)"): each once, nothing else
        assert len(named) == len(", ".join(rows))
        for r in rows:
            assert re.search(r"(?:^|, )" + re.escape(r) + r"(?:, |$)", named), f"{ds}: {r} is not named"
        grouped += 1
    assert grouped  # the committed studies do leave rows out


def test_each_study_states_what_the_other_bn_evaluation_changes(tmp_path):
    """The sensitivity line names exactly the tested claims whose verdict differs under the other BN evaluation."""
    tested = [{"better": "A", "worse": "B", "column": "CS", "kind": "ordering", "verdict": "holds", "other_bn": v}
              for v in ("holds", "not resolved after Holm over 2 claims")]
    line = findings._bn_sensitivity(tested)
    assert line == "1 of 2 verdict(s) change: A > B (CS): holds → not resolved after Holm over 2 claims."
    assert findings._bn_sensitivity(tested[:1]) == "no verdict changes (1 claim(s))."
    assert findings._bn_sensitivity([dict(tested[0], other_bn="")]) == "not recorded by these runs."
    text = " ".join(FINDINGS.read_text().split())
    for s in findings.studies(RESULTS):
        tested = [c for c in s.get("claims", []) if c["class"] != "untestable"]
        if tested:
            assert ("**Sensitivity to the BN evaluation** (the same models with BN statistics recomputed from the "
                    "training clips, the verdicts tested again): " + findings._bn_sensitivity(tested)) in text
