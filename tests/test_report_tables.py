"""slnl.report tables: ours beside the paper's, Δ only on the paper's dataset, the paper's claims tested as orderings
on constructed result files, the seeds' resolution, markdown and the files a table writes."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from slnl import experiments as ex
from slnl import report as rp
from slnl import study
from slnl.report import stats as st


def _write(results, table, row, split, seed, top1, top5=None, dataset="synthetic", scale="cpu"):
    rec = {"table": table, "row": row, "split": split, "seed": seed, "top1": top1,
           "top5": top1 if top5 is None else top5, "dataset": dataset, "scale": scale, "epochs": 1, "run_dir": None}
    p = study.result_path(results, table, row, split, seed)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(rec))
    return p


def _table3(results, dataset):
    """Constructed Table 3 runs: CS-T clearly above PosVel-N (holds), S-T clearly below it (reversed), CNN-V
    overlapping CS-T (not resolved), Pos-N with three seeds, CV with one seed per row, C-T not run."""
    for seed, v in enumerate((0.80, 0.82, 0.84)):
        _write(results, "table3", "pos-n", "CS", seed, v, dataset=dataset)
    for seed, v in enumerate((0.90, 0.91, 0.92)):
        _write(results, "table3", "cs-t", "CS", seed, v, dataset=dataset)
    for seed, v in enumerate((0.70, 0.71, 0.72)):
        _write(results, "table3", "posvel-n", "CS", seed, v, dataset=dataset)
        _write(results, "table3", "s-t", "CS", seed, v - 0.05, dataset=dataset)
        _write(results, "table3", "cnn-v", "CS", seed, 0.905 + (seed - 1) * 0.05, dataset=dataset)
    _write(results, "table3", "cs-t", "CV", 0, 0.95, dataset=dataset)
    _write(results, "table3", "posvel-n", "CV", 0, 0.93, dataset=dataset)


def test_table_on_the_papers_dataset_has_delta(tmp_path):
    _table3(tmp_path, "ntu60")
    frame = rp.paper_table("table3", tmp_path)
    assert list(frame.index) == [r.label for r in ex.TABLE3.rows]
    assert frame.loc["Pos-N", ("CS", "paper")] == 83.1 and frame.loc["Pos-N", ("CV", "paper")] == 89.2
    assert frame.loc["Pos-N", ("CS", "ours")] == pytest.approx(82.0)
    assert frame.loc["Pos-N", ("CS", "std")] == pytest.approx(2.0)
    assert frame.loc["Pos-N", ("CS", "n")] == 3 and frame.loc["Pos-N", ("CV", "n")] == 0
    assert frame.loc["Pos-N", ("CS", "diff")] == pytest.approx(82.0 - 83.1)
    assert math.isnan(frame.loc["CS-T", ("CV", "std")]) and frame.loc["CS-T", ("CV", "ours")] == pytest.approx(95.0)
    assert not any("STAND-IN" in w for w in frame.attrs["warnings"]) and frame.attrs["delta_note"] == ""

    claims = rp.claims_table("table3", tmp_path).set_index(["better", "worse", "column"])
    v, raw = claims["verdict"], claims["verdict_uncorrected"]
    assert v[("CS-T", "PosVel-N", "CS")] == "holds" and raw[("CS-T", "PosVel-N", "CS")] == "interval above 0"
    assert v[("CS-T", "PosVel-N", "CV")] == "not resolved at 1+1 seeds (no spread)"  # no p-value: not in the family
    assert v[("S-T", "PosVel-N", "CS")] == "reversed" and raw[("S-T", "PosVel-N", "CS")] == "interval below 0"
    assert v[("CS-T", "CNN-V", "CS")] == "not resolved after Holm over 5 claims"
    assert raw[("CS-T", "CNN-V", "CS")] == "not resolved at 3+3 seeds"
    assert v[("C-T", "PosVel-N", "CS")] == "not run" and "C-T" in claims.loc[("C-T", "PosVel-N", "CS"), "note"]
    row = claims.loc[("CS-T", "PosVel-N", "CS")]
    w = st.welch_test([90.0, 91.0, 92.0], [70.0, 71.0, 72.0])
    assert row["ours_diff"] == pytest.approx(20.0) and row["paper_diff"] == pytest.approx(1.0)
    assert (row["low"], row["high"], row["p_welch"]) == pytest.approx((w["low"], w["high"], w["p_two_sided"]))
    cs = claims.xs("CS", level="column")
    tested = cs[cs["p_holm"].notna()]  # Holm over the family of CS: the p-values of its tested claims
    p = np.where(tested["kind"] == "equivalence", tested["p_tost"], tested["p_welch"])
    assert tested["p_holm"].to_numpy() == pytest.approx(st.holm(p).adjusted) and (tested["family"] == 5).all()
    assert row["delta_vs_paper"] == pytest.approx(20.0 - 1.0) and row["note"] == ""
    assert (row["n_better"], row["n_worse"]) == (3, 3)


@pytest.mark.parametrize("dataset", ["synthetic", "msr3d"])
def test_other_data_has_orderings_and_no_delta(tmp_path, dataset):
    _table3(tmp_path, dataset)
    frame = rp.paper_table("table3", tmp_path)
    assert frame[[(c, "diff") for c in ("CS", "CV")]].isna().all().all()  # Δ blank everywhere...
    assert dataset in frame.attrs["delta_note"] and "ntu60" in frame.attrs["delta_note"]  # ...with the reason
    assert frame.loc["Pos-N", ("CS", "ours")] == pytest.approx(82.0)  # ours is still shown
    claims = rp.claims_table("table3", tmp_path).set_index(["better", "worse", "column"])
    assert claims.attrs["delta_note"] == frame.attrs["delta_note"]
    assert claims["delta_vs_paper"].isna().all()
    # The orderings between our own rows are tested exactly as on the paper's data.
    assert claims.loc[("CS-T", "PosVel-N", "CS"), "verdict"] == "holds"
    assert claims.loc[("S-T", "PosVel-N", "CS"), "verdict"] == "reversed"
    assert claims.loc[("CS-T", "PosVel-N", "CS"), "ours_diff"] == pytest.approx(20.0)
    assert claims.loc[("CS-T", "PosVel-N", "CS"), "note"].startswith("ordering only")
    md = rp.table_markdown(frame, rp.claims_table("table3", tmp_path), rp.seed_resolution("table3", tmp_path))
    assert "| Pos-N | 83.1 | 82.0 ± 2.0 (3 seeds) |  |" in md and frame.attrs["delta_note"] in md


def test_a_split_the_dataset_does_not_define_is_no_such_split_not_not_run(tmp_path):
    """MSR Action3D defines cross-subject only: its CV claims cannot be tested and say so; on a dataset that does
    define CV (NTU RGB+D 60), a missing CV run is still "not run"."""
    for dataset, expected in (("msr3d", "no such split"), ("ntu60", "not run")):
        results = tmp_path / dataset
        for seed, v in enumerate((0.90, 0.91, 0.92)):
            _write(results, "table5", "rfa", "CS", seed, v, dataset=dataset)
            _write(results, "table5", "none", "CS", seed, v - 0.1, dataset=dataset)
        claims = rp.claims_table("table5", results).set_index(["better", "worse", "column"])
        cv = claims.loc[("Residual FA (rFA)", "No Frequency Attention", "CV")]
        assert cv["verdict"] == expected and math.isnan(cv["ours_diff"])
        assert claims.loc[("Residual FA (rFA)", "No Frequency Attention", "CS"), "verdict"] == "holds"
    assert cv["note"] == "no result for Residual FA (rFA) and No Frequency Attention on CV"
    msr = rp.claims_table("table5", tmp_path / "msr3d")
    assert set(msr.loc[msr["column"] == "CV", "note"]) == {"msr3d defines no CV split (its splits: CS)"}


def test_claims_summary_is_one_line_per_tested_claim(tmp_path):
    """claims.md: each claim with its verdict and interval on one line, exactly as the table's claims say; the
    claims on a split the dataset lacks are counted in one line."""
    for seed, v in enumerate((0.90, 0.91, 0.92)):
        _write(tmp_path, "table5", "rfa", "CS", seed, v - 0.1, dataset="msr3d")
        _write(tmp_path, "table5", "none", "CS", seed, v, dataset="msr3d")
    frame = rp.claims_table("table5", tmp_path)
    lines = rp.claims_summary([frame]).splitlines()
    cs = frame[frame["column"] == "CS"]
    assert len(lines) == len(cs) + 3
    first = cs.iloc[0]
    assert lines[0] == (f"- Table 5 (CS): Residual FA (rFA) > No Frequency Attention — paper +0.8; ours "
                        f"{first['ours_diff']:+.2f} [{first['low']:+.2f}, {first['high']:+.2f}] (3+3 seeds), p <0.001 "
                        "(Welch), Holm p <0.001 (m=1): **reversed** (uncorrected: interval below 0)")
    assert first["p_welch"] < 0.001 and first["p_holm"] == first["p_welch"]  # rFA and none only: a family of one
    assert lines[-3] == (f"- {len(frame) - len(cs)} claim(s) of Table 5: **no such split** — msr3d defines no CV "
                         "split (its splits: CS)")
    assert lines[-2:] == ["", "Sensitivity to the BN evaluation: not recorded (runs under the earlier protocol)"]
    assert sum("**not run**" in ln for ln in lines) == len(cs) - 1  # only rFA and none ran
    built = rp.build_report(tmp_path, tables="table5")
    assert built["claims"]["claims"].read_text().endswith("\n".join(lines) + "\n")


def test_kinetics_table_against_published_numbers(tmp_path):
    _write(tmp_path, "table2", "slnl-rfa", "CS", 0, 0.459, 0.995)  # synthetic stand-in on CS
    frame = rp.paper_table("table2", tmp_path)
    assert list(frame.columns.get_level_values(0).unique()) == ["top1", "top5"]
    assert frame.loc["SLnL-rFA (Ours)", ("top5", "ours")] == pytest.approx(99.5)
    assert math.isnan(frame.loc["SLnL-rFA (Ours)", ("top5", "diff")])  # not "+40.4": 12 classes vs 400
    assert frame.loc["ST-GCN (Yan, Xiong, and Lin 2018)", ("top1", "n")] == 0
    assert any("STAND-IN" in n and "Kinetics" in n for n in frame.attrs["warnings"])
    claims = rp.claims_table("table2", tmp_path)
    assert (claims["verdict"] == "").all() and claims["ours_diff"].isna().all() and claims["low"].isna().all()
    assert all("published number on kinetics" in n and "synthetic" in n for n in claims["note"])
    # On Kinetics itself, against the published number: a one-sample interval over our seeds.
    k = tmp_path / "k"
    top1 = [36.0, 37.0, 38.0]
    for seed, (a, b) in enumerate(((0.36, 0.59), (0.37, 0.60), (0.38, 0.58))):
        _write(k, "table2", "slnl-rfa", "default", seed, a, b, dataset="kinetics", scale="paper")
    c = rp.claims_table("table2", k).set_index("column")
    w = st.welch_interval(top1, 30.7)
    assert c.loc["top1", "verdict"] == "holds" and c.loc["top1", "ours_diff"] == pytest.approx(37.0 - 30.7)
    assert c.loc["top1", "low"] == pytest.approx(w["low"]) and c.loc["top1", "n_worse"] == 0
    assert c.loc["top1", "delta_vs_paper"] == pytest.approx((37.0 - 30.7) - 5.9)
    assert rp.paper_table("table2", k).loc["SLnL-rFA (Ours)", ("top1", "diff")] == pytest.approx(37.0 - 36.6)
    _write(tmp_path, "table2", "slnl-rfa", "CV", 0, 0.20, 0.50)  # a second split: refused, not silently dropped
    with pytest.raises(ValueError, match="several splits"):
        rp.paper_table("table2", tmp_path)


def test_seed_resolution(tmp_path):
    _table3(tmp_path, "ntu60")
    res = rp.seed_resolution("table3", tmp_path)
    groups = [[80.0, 82.0, 84.0], [90.0, 91.0, 92.0], [70.0, 71.0, 72.0], [65.0, 66.0, 67.0],
              [85.5, 90.5, 95.5]]  # CS: Pos-N, CS-T, PosVel-N, S-T, CNN-V
    sd, df = st.pooled_sd(groups)
    cs = res.loc["CS"]
    assert cs["pooled_sd"] == pytest.approx(sd) and cs["df"] == df == 10 and cs["rows"] == 5 and cs["seeds"] == 3
    assert cs["against"] == "another row" and cs["resolvable"] == pytest.approx(st.resolvable_difference(sd, 10, 3, 3))
    cv = res.loc["CV"]  # one seed per row: no spread, nothing resolvable
    assert cv["df"] == 0 and math.isnan(cv["resolvable"]) and cv["seeds"] == 1
    k = tmp_path / "k"
    for seed, a in enumerate((0.36, 0.37, 0.38)):
        _write(k, "table2", "slnl-rfa", "default", seed, a, a, dataset="kinetics", scale="paper")
    r2 = rp.seed_resolution("table2", k).loc["top1"]
    assert r2["against"] == "published number"
    assert r2["resolvable"] == pytest.approx(st.welch_interval([36.0, 37.0, 38.0], 30.7)["half"])


def test_write_table(tmp_path):
    _table3(tmp_path, "synthetic")
    written = rp.write_table("table3", tmp_path)
    paths = written["paths"]
    csv = pd.read_csv(paths["csv"], index_col=0)
    assert csv.loc["Pos-N", "CS_ours"] == pytest.approx(82.0) and csv.loc["CS-T", "CV_paper"] == 91.3
    assert csv["CS_diff"].isna().all()
    claims = pd.read_csv(paths["claims"], keep_default_na=False)
    assert list(claims.columns) == rp.claims.CLAIM_COLUMNS and "reversed" in set(claims["verdict"])
    md = paths["md"].read_text()
    assert "| Pos-N | 83.1 | 82.0 ± 2.0 (3 seeds) |  |" in md and "reversed" in md and "STAND-IN" in md
    assert "## Resolution of our seeds" in md and "Δ against the paper is left blank" in md
    assert written["frame"].equals(rp.paper_table("table3", tmp_path))
    with pytest.raises(ValueError, match="out_dir is required"):
        rp.write_table("table3", rp.collect(tmp_path))


def test_bad_result_files_are_named(tmp_path):
    p = _write(tmp_path, "table3", "cs-t", "CS", 0, 0.5)
    p.write_text('{"table": "table3", "row": "cs-t"}')
    with pytest.raises(ValueError, match=r"cs-t__CS__seed0.json: missing field\(s\) \['split'"):
        rp.collect(tmp_path)
    p.write_text(json.dumps({"table": "table3", "row": "cs-t", "split": "CS", "seed": 0, "top1": 85.5, "top5": 1}))
    with pytest.raises(ValueError, match="'top1' must be an accuracy fraction"):
        rp.collect(tmp_path)
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        rp.collect(tmp_path)


def test_mixed_datasets_must_be_chosen(tmp_path):
    _write(tmp_path, "table3", "cs-t", "CS", 0, 0.5, dataset="synthetic")
    _write(tmp_path / "x", "table3", "cs-t", "CS", 0, 0.6, dataset="ntu60", scale="paper")
    for f in (tmp_path / "x" / "table3").iterdir():
        f.rename(tmp_path / "table3" / f.name.replace("seed0", "seed1"))
    with pytest.raises(ValueError, match="several \\(dataset, scale\\)"):
        rp.paper_table("table3", tmp_path)
    frame = rp.paper_table("table3", tmp_path, dataset="ntu60")
    assert frame.loc["CS-T", ("CS", "ours")] == pytest.approx(60.0) and frame.attrs["warnings"] == []
    assert frame.loc["CS-T", ("CS", "diff")] == pytest.approx(60.0 - 85.5)


@pytest.mark.parametrize("field, a, b", [("store_fingerprint", "4acb3d02", "d1d8b5c3"), ("epochs", 60, 100),
                                          ("batch_size", 8, 16), ("max_steps_per_epoch", 1, 2)])
def test_runs_not_trained_alike_are_refused(tmp_path, field, a, b):
    """One table's rows are compared only when they saw the same data and schedule: two stores under one dataset
    name, or a row re-run with other epochs into the same results_dir, is one line naming both files. A file that
    does not record the field (older results) is not held against the others."""
    paths = [_write(tmp_path, "table3", row, "CS", 0, 0.5) for row in ("cs-t", "posvel-n", "pos-n")]
    for p, v in zip(paths, (a, b, None)):
        rec = json.loads(p.read_text())
        rec[field] = v
        p.write_text(json.dumps(rec))
    with pytest.raises(ValueError) as err:
        rp.paper_table("table3", tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"table3: its runs were not trained alike: {field} ") and "\n" not in msg
    assert f"{field} {a!r} in {paths[0]} but {b!r} in {paths[1]};" in msg
    paths[1].unlink()  # the same value, or no value at all: the table is built
    assert rp.paper_table("table3", tmp_path).loc["CS-T", ("CS", "ours")] == pytest.approx(50.0)


def test_runs_with_bn_statistics_estimated_otherwise_are_refused(tmp_path):
    """A result file without bn_stats was written before evaluation recomputed BN statistics: it is a "running" run,
    never compared with a "recompute" one."""
    paths = [_write(tmp_path, "table3", row, "CS", 0, 0.5) for row in ("cs-t", "posvel-n")]
    for p, v in zip(paths, ("recompute", None)):
        rec = json.loads(p.read_text())
        rec.pop("bn_stats", None)
        if v:
            rec["bn_stats"] = v
        p.write_text(json.dumps(rec))
    with pytest.raises(ValueError, match="not trained alike: bn_stats 'recompute' in .* but 'running' in "):
        rp.paper_table("table3", tmp_path)
    rec = json.loads(paths[1].read_text())
    paths[1].write_text(json.dumps({**rec, "bn_stats": "recompute"}))
    assert rp.paper_table("table3", tmp_path).loc["CS-T", ("CS", "ours")] == pytest.approx(50.0)


def test_final_model_is_tested_against_published_results_on_its_own_dataset(tmp_path):
    """On MSR Action3D, Table 1's claim (our model ahead of published methods) cannot use the paper's NTU numbers;
    it is tested against the published result on MSR Action3D itself, which is a mean over the ten subject splits
    lie1 ... lie10: our runs on those splits are one column whose replicates are the splits — mean − published with
    the one-sample t interval over splits, verdict by its sign; and in claims.md's one-line form. Runs on xsub are
    their own column, with no published number. Not on the paper's own dataset."""
    from scipy import stats as sps

    from slnl.data import msr3d

    (ref_label, ref), = msr3d.PUBLISHED[msr3d.MEAN_OVER_LIE].items()
    vals = [0.90, 0.84, 0.78, 0.77, 0.79]
    for k, v in enumerate(vals):
        _write(tmp_path / "msr", "table1", "slnl-rfa", f"lie{k + 1}", 0, v, dataset="msr3d", scale="small")
        _write(tmp_path / "msr", "table1", "slnl-rfa", "CS", k, v - 0.1, dataset="msr3d", scale="small")
    claims = rp.claims_table("table1", tmp_path / "msr")
    assert set(claims[claims["worse"] == ref_label]["column"]) == {"lie1-lie10"}
    table = rp.paper_table("table1", tmp_path / "msr")
    assert table.loc["SLnL-rFA (Ours)", ("lie1-lie10", "n")] == 5
    assert table.loc["SLnL-rFA (Ours)", ("lie1-lie10", "ours")] == pytest.approx(100 * sum(vals) / 5)
    assert table.loc["SLnL-rFA (Ours)", ("CS", "ours")] == pytest.approx(100 * sum(vals) / 5 - 10)
    row = claims[claims["worse"] == ref_label].iloc[0]
    pct = [100 * v for v in vals]
    mean, se = sum(pct) / 5, sps.sem(pct)
    half = sps.t.ppf(0.975, 4) * se
    assert math.isnan(row["paper_diff"]) and row["n_better"] == 5 and row["n_worse"] == 0
    assert row["ours_diff"] == pytest.approx(mean - ref) and row["low"] == pytest.approx(mean - ref - half)
    assert row["high"] == pytest.approx(mean - ref + half) and row["verdict"] == st.REVERSED  # 81.6 ± 6.5 < 89.48
    p = sps.ttest_1samp(pct, ref).pvalue
    assert row["p_welch"] == pytest.approx(p) and row["p_holm"] == pytest.approx(p) and row["family"] == 1
    line = [ln for ln in rp.claims_summary([claims]).splitlines() if ref_label in ln]
    assert line == [f"- Table 1 (lie1-lie10): SLnL-rFA (Ours) > {ref_label} — paper —; ours {mean - ref:+.2f} "
                    f"[{mean - ref - half:+.2f}, {mean - ref + half:+.2f}] (5 runs), p {p:.3f} (one-sample t), "
                    f"Holm p {p:.3f} (m=1): **reversed** (uncorrected: interval below 0) ({ref_label} is a "
                    "published number on msr3d, the mean over its splits lie1-lie10: ours over the same splits, n "
                    "counts splits)"]
    # the published results of a dataset are not the paper's: none on the paper's own data, and none for Tables 3-6
    for seed, v in enumerate(vals):
        _write(tmp_path / "ntu", "table1", "slnl-rfa", "CS", seed, v, dataset="ntu60", scale="small")
    assert ref_label not in set(rp.claims_table("table1", tmp_path / "ntu")["worse"])
    _write(tmp_path / "msr", "table3", "cs-t", "CS", 0, 0.5, dataset="msr3d", scale="small")
    assert ref_label not in set(rp.claims_table("table3", tmp_path / "msr")["worse"])


def test_result_without_dataset_gets_no_delta(tmp_path):
    p = _write(tmp_path, "table3", "cs-t", "CS", 0, 0.5)
    rec = json.loads(p.read_text())
    del rec["dataset"]
    p.write_text(json.dumps(rec))
    frame = rp.paper_table("table3", tmp_path)
    assert math.isnan(frame.loc["CS-T", ("CS", "diff")]) and "do not name their dataset" in frame.attrs["delta_note"]


def test_markdown_escapes_pipes():
    md = rp.to_markdown(pd.DataFrame({"a": ["x|y"], "b": [1.234]}), index=False)
    assert md.splitlines()[2] == "| x\\|y | 1.23 |"
