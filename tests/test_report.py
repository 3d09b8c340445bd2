"""slnl.report's analyses of a trained model on real one-step training runs (Table 6's SLnL M1=1, seeds 0 and 1: rFA
and a spatial non-local block): the gates the frequency attention applies, per-class gates, non-local affinities, the
final checkpoint as the one analysed, the figures over both seeds, and the whole report built from the runs' files."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from slnl import report as rp
from slnl import study
from slnl.engine import checkpoint as ckpt
from slnl.models.frequency import FrequencyAttention, dft2, idft2_real
from slnl.utils import resolve_path

PNG = b"\x89PNG\r\n\x1a\n"


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
# Checkpoint analyses on real runs (Table 6's SLnL M1=1: rFA + a spatial non-local block), one optimiser step each
# --------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_results(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    recs = study.run_table("table6", "slnl-1", split="CS", seeds="0,1", epochs=1, max_steps_per_epoch=1,
                           results_dir=results, log=lambda *_: None)
    assert [r["seed"] for r in recs] == [0, 1]
    return results, resolve_path(recs[0]["run_dir"])


def test_load_run_loads_the_final_checkpoint(run_results):
    _, run = run_results
    model, cfg = rp.load_run(run)
    state = ckpt.load(run / rp.FINAL_CHECKPOINT)["model"]
    assert rp.FINAL_CHECKPOINT == "last.pt" and not model.training and cfg.preset == "cpu"
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_attention_gates_are_the_ones_the_model_applies(run_results):
    _, run = run_results
    model, _ = rp.load_run(run)
    fa = model.position.frequency
    seen = {}
    fa.register_forward_hook(lambda mod, inp, out: seen.update(x=inp[0], y=out))
    torch.manual_seed(0)
    with torch.no_grad():
        model(torch.randn(3, 3, model.config.T, 25, 2))
        gates = rp.attention_gates(fa, seen["x"])
        assert list(gates) == ["cos", "sin"]
        m_cos, m_sin = gates["cos"], gates["sin"]
        mats = tuple(b.to(seen["x"].dtype) for b in (fa.ct, fa.st, fa.cn, fa.sn))
        f_cos, f_sin = dft2(seen["x"], *mats)
        rebuilt = seen["x"] + idft2_real(f_cos * m_cos, f_sin * m_sin, *mats)  # Eq. 3-5 (rFA)
    assert torch.allclose(rebuilt, seen["y"], atol=1e-5)
    assert ((m_cos > 0) & (m_cos < 1)).all() and m_cos.shape == (6, 1, model.config.T, fa.N)


def test_afa_gate_is_the_one_aFA_applies_to_the_amplitude():
    """aFA gates the amplitude spectrum alone (§4.3): the analysis reports that one gate, and it rebuilds the output."""
    torch.manual_seed(0)
    fa = FrequencyAttention(8, 6, attention="aFA").double().eval()
    x = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    with torch.no_grad():
        gates = rp.attention_gates(fa, x)
        assert list(gates) == ["amp"] and gates["amp"].shape == (2, 1, 8, 6)
        mats = tuple(b.to(x.dtype) for b in (fa.ct, fa.st, fa.cn, fa.sn))
        (f_a,) = fa.spectrum(x)
        rebuilt = idft2_real(f_a * gates["amp"], None, *mats)
        assert torch.allclose(rebuilt, fa(x), atol=1e-12)


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
    assert aff["joint_names"] is None or len(aff["joint_names"]) == 25  # the synthetic store's, where it names them
    fig, g = rp.frequency_figure(run, path=tmp_path / "f.png", max_samples=24)
    assert (tmp_path / "f.png").read_bytes()[:8] == PNG and g["run"] == run.name
    fig, aff = rp.skeleton_figure(run, path=tmp_path / "s.png", max_samples=24)
    assert (tmp_path / "s.png").read_bytes()[:8] == PNG and aff["class_index"] is None


def test_figures_over_both_seeds(run_results, tmp_path):
    """Gates and affinities averaged over the two seeds (each seed's own analysis, weighted by its samples)."""
    results, run = run_results
    runs = [run, run.parent / run.name.replace("seed0", "seed1")]
    per_seed = [rp.frequency_gates(r, max_samples=24) for r in runs]
    _, g = rp.frequency_figure(runs[::-1], path=tmp_path / "f.png", max_samples=24)
    assert g["runs"] == 2 and g["run"] == "slnl-1__CS, seeds 0, 1" and (g["count"] == 2 * per_seed[0]["count"]).all()
    seen = g["count"] > 0
    want = (per_seed[0]["gates"]["position"]["cos"] + per_seed[1]["gates"]["position"]["cos"]) / 2
    assert np.allclose(g["gates"]["position"]["cos"][seen], want[seen])
    affs = [rp.nonlocal_affinity(r, max_samples=24) for r in runs]
    _, aff = rp.skeleton_figure(runs, path=tmp_path / "s.png", max_samples=24)
    assert aff["runs"] == 2 and aff["n"] == 48
    both = ~np.isnan(affs[0]["mapped"]) & ~np.isnan(affs[1]["mapped"])
    assert np.allclose(aff["mapped"][both], ((affs[0]["mapped"] + affs[1]["mapped"]) / 2)[both])
    fig, mat = rp.confusion_figure(runs, normalize=False)
    each = [np.asarray(json.loads((r / "result.json").read_text())["confusion"]) for r in runs]
    assert np.array_equal(mat.to_numpy(), each[0] + each[1]) and "summed over 2 seeds (seeds 0, 1)" in \
        fig.axes[0].get_title()


def test_build_report(run_results):
    results, _ = run_results
    built = rp.build_report(results, max_samples=24)
    assert set(built["tables"]) == {f"table{i}" for i in range(1, 7)}
    # One row of Table 6 only: no claim has both of its rows, so the claims figure says "none tested yet"
    assert built["skipped"] == {} and built["figures"]["claims"].read_bytes()[:8] == PNG
    fig, tested = rp.claims_figure(rp.collect(results), tables=list(built["tables"]))
    assert len(tested) == 0 and "none tested yet" in fig.axes[0].texts[0].get_text()
    index = (results / "figures" / "index.md").read_text()
    assert "- `claims.png`" in index and "- `confusion.png`" in index
    for t in built["tables"].values():
        assert t["paths"]["md"].is_file() and t["paths"]["csv"].is_file()
    md = (results / "tables" / "table1.md").read_text()
    assert "| SLnL-rFA (Ours) | 89.1 |" in md and "| HCN (Li et al. 2018) | 86.5 |" in md  # paper numbers, no runs
    t6 = built["tables"]["table6"]["frame"]
    assert t6.loc["SLnL (M1=1, M2=5)", ("CS", "n")] == 2
    for key in ("table6_curves", "confusion", "frequency_attention", "nonlocal_affinity", "fig4"):
        assert built["figures"][key].read_bytes()[:8] == PNG, key
    md = (results / "tables" / "table6.md").read_text()  # synthetic data: no Δ against NTU's numbers, and why
    assert "| SLnL (M1=1, M2=5) | 88.3 |" in md and "Δ against the paper is left blank" in md
    assert built["tables"]["table6"]["frame"][("CS", "diff")].isna().all()
