"""slnl.report: Student-t / Welch statistics, tables shaped like the paper's, claims verdicts, Fig. 4's formulas,
and the checkpoint analyses (frequency gates, non-local affinity) on a real one-step training run."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from slnl import experiments as ex
from slnl import report as rp

PNG = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------------------------
def test_betainc_identities():
    for x in (0.1, 0.37, 0.9):
        assert rp.betainc(1, 1, x) == pytest.approx(x, abs=1e-12)
        assert rp.betainc(3.5, 1, x) == pytest.approx(x ** 3.5, abs=1e-12)
        assert rp.betainc(1, 2.5, x) == pytest.approx(1 - (1 - x) ** 2.5, abs=1e-12)
        assert rp.betainc(2.3, 4.1, x) == pytest.approx(1 - rp.betainc(4.1, 2.3, 1 - x), abs=1e-12)


def test_student_t_quantiles_match_tables():
    # Two-sided 95% critical values of Student's t (any statistics table).
    for df, t in ((1, 12.7062047), (2, 4.30265273), (5, 2.57058184), (10, 2.22813885), (30, 2.04227246)):
        assert rp.t_ppf(0.975, df) == pytest.approx(t, abs=1e-6)
    assert rp.t_ppf(0.975, 1e7) == pytest.approx(1.959964, abs=1e-5)  # -> the normal quantile
    assert rp.t_ppf(0.025, 3) == pytest.approx(-rp.t_ppf(0.975, 3))
    assert rp.t_ppf(0.975, 1) > rp.t_ppf(0.975, 1.5) > rp.t_ppf(0.975, 2)  # real df (Welch) in between
    for q in (0.6, 0.9, 0.99):
        assert rp.t_cdf(rp.t_ppf(q, 1.7), 1.7) == pytest.approx(q, abs=1e-9)


def test_welch_interval():
    w = rp.welch_interval([1.0, 2.0, 3.0], [4.0, 6.0])
    # var(a)/n = 1/3, var(b)/n = 1; Welch–Satterthwaite df = (4/3)^2 / ((1/3)^2/2 + 1) = 32/19
    assert w["diff"] == pytest.approx(-3.0) and w["df"] == pytest.approx(32 / 19)
    half = rp.t_ppf(0.975, 32 / 19) * math.sqrt(4 / 3)
    assert (w["low"], w["high"]) == pytest.approx((-3.0 - half, -3.0 + half))
    one = rp.welch_interval([80.0, 82.0, 84.0], 79.0)  # against a published constant: one-sample t
    assert one["df"] == pytest.approx(2) and one["low"] == pytest.approx(3.0 - 4.30265273 * 2 / math.sqrt(3))
    assert math.isnan(rp.welch_interval([1.0], [2.0, 3.0])["low"])  # one seed: no spread to compare with
    same = rp.welch_interval([5.0, 5.0], [4.0, 4.0])
    assert (same["low"], same["high"]) == (1.0, 1.0)


# --------------------------------------------------------------------------------------------------------------------
# Tables from result files
# --------------------------------------------------------------------------------------------------------------------
def _write(results, table, row, split, seed, top1, top5=None, dataset="synthetic", scale="cpu"):
    rec = {"table": table, "row": row, "split": split, "seed": seed, "top1": top1,
           "top5": top1 if top5 is None else top5, "dataset": dataset, "scale": scale, "epochs": 1, "run_dir": None}
    p = ex.result_path(results, table, row, split, seed)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(rec))
    return p


def test_paper_table_and_claims(tmp_path):
    for seed, v in enumerate((0.80, 0.82, 0.84)):
        _write(tmp_path, "table3", "pos-n", "CS", seed, v)
    for seed, v in enumerate((0.90, 0.91, 0.92)):
        _write(tmp_path, "table3", "cs-t", "CS", seed, v)
    for seed, v in enumerate((0.70, 0.71, 0.72)):
        _write(tmp_path, "table3", "posvel-n", "CS", seed, v)
        _write(tmp_path, "table3", "s-t", "CS", seed, v - 0.05)  # below PosVel-N: contradicts the paper
        _write(tmp_path, "table3", "cnn-v", "CS", seed, 0.905 + (seed - 1) * 0.05)  # overlaps CS-T: inconclusive
    _write(tmp_path, "table3", "cs-t", "CV", 0, 0.95)
    _write(tmp_path, "table3", "posvel-n", "CV", 0, 0.93)
    frame = rp.paper_table("table3", tmp_path)
    assert list(frame.index) == [r.label for r in ex.TABLE3.rows]
    assert frame.loc["Pos-N", ("CS", "paper")] == 83.1 and frame.loc["Pos-N", ("CV", "paper")] == 89.2
    assert frame.loc["Pos-N", ("CS", "ours")] == pytest.approx(82.0)
    assert frame.loc["Pos-N", ("CS", "std")] == pytest.approx(2.0)
    assert frame.loc["Pos-N", ("CS", "n")] == 3 and frame.loc["Pos-N", ("CV", "n")] == 0
    assert frame.loc["Pos-N", ("CS", "diff")] == pytest.approx(82.0 - 83.1)
    assert math.isnan(frame.loc["CS-T", ("CV", "std")]) and frame.loc["CS-T", ("CV", "ours")] == pytest.approx(95.0)
    assert "STAND-IN" in frame.attrs["warnings"][0] and frame.attrs["dataset"] == "synthetic"

    claims = rp.claims_table("table3", tmp_path).set_index(["better", "worse", "column"])
    v = claims["verdict"]
    assert v[("CS-T", "PosVel-N", "CS")] == "supported"
    assert v[("CS-T", "PosVel-N", "CV")] == "n/a (1 seed)"
    assert v[("S-T", "PosVel-N", "CS")] == "contradicted"
    assert v[("CS-T", "CNN-V", "CS")] == "inconclusive"
    assert v[("C-T", "PosVel-N", "CS")] == "not run"
    assert claims.loc[("CS-T", "PosVel-N", "CS"), "ours_diff"] == pytest.approx(20.0)
    assert claims.loc[("CS-T", "PosVel-N", "CS"), "paper_diff"] == pytest.approx(1.0)

    paths = rp.write_table("table3", tmp_path)
    csv = pd.read_csv(paths["csv"], index_col=0)
    assert csv.loc["Pos-N", "CS_ours"] == pytest.approx(82.0) and csv.loc["CS-T", "CV_paper"] == 91.3
    md = paths["md"].read_text()
    assert "| Pos-N | 83.1 | 82.0 ± 2.0 (3 seeds) | -1.1 |" in md and "contradicted" in md and "STAND-IN" in md


def test_kinetics_table_and_published_rows(tmp_path):
    _write(tmp_path, "table2", "slnl-rfa", "CS", 0, 0.30, 0.55)  # synthetic stand-in on CS
    frame = rp.paper_table("table2", tmp_path)
    assert list(frame.columns.get_level_values(0).unique()) == ["top1", "top5"]
    assert frame.loc["SLnL-rFA (Ours)", ("top5", "ours")] == pytest.approx(55.0)
    assert frame.loc["ST-GCN (Yan, Xiong, and Lin 2018)", ("top1", "n")] == 0
    assert any("STAND-IN" in n and "Kinetics" in n for n in frame.attrs["warnings"])
    claims = rp.claims_table("table2", tmp_path)
    assert set(claims["verdict"]) == {"n/a (published number, other dataset)"}
    # On Kinetics itself, against the published number: a one-sample interval over our seeds.
    k = tmp_path / "k"
    for seed, (a, b) in enumerate(((0.36, 0.59), (0.37, 0.60), (0.38, 0.58))):
        _write(k, "table2", "slnl-rfa", "default", seed, a, b, dataset="kinetics", scale="paper")
    c = rp.claims_table("table2", k).set_index("column")
    assert c.loc["top1", "verdict"] == "supported" and c.loc["top1", "ours_diff"] == pytest.approx(37.0 - 30.7)
    _write(tmp_path, "table2", "slnl-rfa", "CV", 0, 0.20, 0.50)  # a second split: refused, not silently dropped
    with pytest.raises(ValueError, match="several splits"):
        rp.paper_table("table2", tmp_path)


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


def test_markdown_escapes_pipes():
    md = rp.to_markdown(pd.DataFrame({"a": ["x|y"], "b": [1.234]}), index=False)
    assert md.splitlines()[2] == "| x\\|y | 1.23 |"


# --------------------------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------------------------
def test_fig4_curves_follow_the_paper_equations(tmp_path):
    fig, curves = rp.fig4("2,0.4;0,0.6", path=tmp_path / "fig4.png")
    assert (tmp_path / "fig4.png").read_bytes()[:8] == PNG
    assert len(pd.read_csv(tmp_path / "fig4.csv")) == len(curves)
    for (g, m), pair in (((2.0, 0.4), "(γ=2, m=0.4)"), ((0.0, 0.6), "(γ=0, m=0.6)")):
        d = curves[curves["pair"] == pair]
        for p in (0.1, 0.5, 0.9, 1.0):
            at = d[np.isclose(d["p_t"], p, atol=0.0026)].groupby("loss")["value"].first()
            pt = float(d[np.isclose(d["p_t"], p, atol=0.0026)]["p_t"].iloc[0])
            sm = math.log(math.exp(m) + (1 - math.exp(m)) * pt)  # Eq. 13
            assert at["SM"] == pytest.approx(sm, abs=1e-9)
            assert at["CE"] == pytest.approx(-math.log(pt), abs=1e-9)
            assert at["FL"] == pytest.approx(-((1 - pt) ** g) * math.log(pt), abs=1e-9)  # Eq. 18
            assert at["SMCE"] == pytest.approx(sm - math.log(pt), abs=1e-9)  # Eq. 14
            assert at["SMFL"] == pytest.approx(sm - ((1 - pt) ** g) * math.log(pt), abs=1e-9)  # Eq. 19
        assert d[(d["loss"] == "SM")]["value"].between(0, m + 1e-12).all()  # L_SM in [0, m]
    with pytest.raises(ValueError, match="gamma,m"):
        rp.parse_pairs("2;0.4")


def test_confusion_figure_normalises_rows(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "result.json").write_text(json.dumps({"top1": 0.5, "confusion": [[3, 1], [2, 2]],
                                                 "class_names": ["a", "b"]}))
    fig, mat = rp.confusion_figure(run, path=tmp_path / "c.png")
    assert mat.loc["a", "a"] == pytest.approx(0.75) and mat.loc["b", "a"] == pytest.approx(0.5)
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG
    (run / "result.json").write_text(json.dumps({"top1": 0.5, "confusion": [[3, 1]], "class_names": ["a", "b"]}))
    with pytest.raises(ValueError, match="confusion is"):
        rp.confusion_figure(run)


def test_map_affinity():
    rng = np.random.default_rng(0)
    a = rng.random((4, 4))
    a /= a.sum(1, keepdims=True)
    perm = np.eye(4)[[2, 0, 3, 1]]  # new joint i' = original joint perm[i']
    mapped = rp.map_affinity(a, perm)
    assert np.allclose(mapped, perm.T @ a @ perm)  # a permutation relabels joints
    w = rng.normal(size=(6, 4))  # N' = 6 mixtures of N = 4 joints (signs do not matter)
    b = rng.random((6, 6))
    b /= b.sum(1, keepdims=True)
    assert np.allclose(rp.map_affinity(b, w).sum(1), 1.0)
    w[:, 2] = 0.0  # original joint 3 is in no new joint: its row is undefined, the others still sum to 1
    m = rp.map_affinity(b, w)
    assert np.isnan(m[2]).all() and np.allclose(np.delete(m, 2, axis=0).sum(1), 1.0)
    with pytest.raises(ValueError, match="does not match W_s"):
        rp.map_affinity(a, w)


# --------------------------------------------------------------------------------------------------------------------
# Checkpoint analyses on a real run (Table 6's SLnL M1=1: rFA + a spatial non-local block), one optimiser step
# --------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_results(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    (rec,) = ex.run_table("table6", "slnl-1", split="CS", epochs=1, max_steps_per_epoch=1, results_dir=results,
                          log=lambda *_: None)
    return results, ex.repo_path(rec["run_dir"])


def test_attention_gates_are_the_ones_the_model_applies(run_results):
    from slnl.models.frequency import idft2_real

    _, run = run_results
    model, _ = rp.load_run(run)
    fa = model.position.frequency
    seen = {}
    fa.register_forward_hook(lambda mod, inp, out: seen.update(x=inp[0], y=out))
    torch.manual_seed(0)
    with torch.no_grad():
        model(torch.randn(3, 3, model.config.T, 25, 2))
        m_cos, m_sin = rp.attention_gates(fa, seen["x"])
        from slnl.models.frequency import dft2

        mats = tuple(b.to(seen["x"].dtype) for b in (fa.ct, fa.st, fa.cn, fa.sn))
        f_cos, f_sin = dft2(seen["x"], *mats)
        rebuilt = seen["x"] + idft2_real(f_cos * m_cos, f_sin * m_sin, *mats)  # Eq. 3-5 (rFA)
    assert torch.allclose(rebuilt, seen["y"], atol=1e-5)
    assert ((m_cos > 0) & (m_cos < 1)).all() and m_cos.shape == (6, 1, model.config.T, fa.N)


def test_frequency_gates_and_affinity_of_a_run(run_results, tmp_path):
    _, run = run_results
    g = rp.frequency_gates(run, max_samples=48)
    assert g["attention"] == "rFA" and g["count"].sum() == 48 and len(g["class_names"]) == 12
    for comp in ("cos", "sin"):
        arr = g["gates"]["position"][comp]
        seen = g["count"] > 0
        assert arr.shape[0] == 12 and (arr[seen] > 0).all() and (arr[seen] < 1).all()
        assert (arr[~seen] == 0).all()
    aff = rp.nonlocal_affinity(run, max_samples=24)
    n_new = rp.load_run(run)[0].config.new_joints  # N' of the skeleton transformer (cpu preset)
    assert aff["new"].shape == (n_new, n_new) and aff["mapped"].shape == (25, 25) and aff["block"] == 0
    seen = ~np.isnan(aff["mapped"]).all(axis=1)  # joints no new joint carries have no row (see map_affinity)
    assert np.allclose(aff["new"].sum(1), 1.0) and np.allclose(aff["mapped"][seen].sum(1), 1.0)
    assert seen.sum() >= min(25, n_new)
    for fn, name in ((rp.frequency_figure, "f.png"), (rp.skeleton_figure, "s.png")):
        fn(run, path=tmp_path / name, max_samples=24)
        assert (tmp_path / name).read_bytes()[:8] == PNG


def test_build_report(run_results):
    results, _ = run_results
    built = rp.build_report(results, max_samples=24)
    assert set(built["tables"]) == {f"table{i}" for i in range(1, 7)} and not built["skipped"]
    for t in built["tables"].values():
        assert t["paths"]["md"].is_file() and t["paths"]["csv"].is_file()
    md = (results / "tables" / "table1.md").read_text()
    assert "| SLnL-rFA (Ours) | 89.1 |" in md and "| HCN (Li et al. 2018) | 86.5 |" in md  # paper numbers, no runs
    t6 = built["tables"]["table6"]["frame"]
    assert t6.loc["SLnL (M1=1, M2=5)", ("CS", "n")] == 1
    for key in ("table6_curves", "confusion", "frequency_attention", "nonlocal_affinity", "fig4"):
        assert built["figures"][key].read_bytes()[:8] == PNG, key
