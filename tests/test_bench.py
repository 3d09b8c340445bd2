"""`slnl bench`: the CLI writes what it measured, FLOP counts match analytic counts, MFU and time-to-reproduce
arithmetic, the CPU peak-memory method sees a known allocation."""
from __future__ import annotations

import json
import math
import re

import pytest
import torch
import torch.nn.functional as F

from slnl import bench


@pytest.fixture(scope="module")
def tiny_json(tmp_path_factory):
    """One real `slnl bench` run (through the top-level CLI) of the cpu preset, batch 2, train + inference."""
    from slnl.cli import main

    out = tmp_path_factory.mktemp("bench") / "tiny.json"
    rc = main(["bench", "--preset", "cpu", "--batch-size", "2", "--steps", "2", "--warmup", "1", "--mode", "both",
               "--device", "cpu", "--threads", "1", "--data", "none", "--json", str(out)])
    assert rc == 0
    return out


def test_cli_json_top_level(tiny_json):
    doc = json.loads(tiny_json.read_text())
    assert "error" not in doc, doc.get("traceback")
    # Top level: what the lead's tools read.
    assert doc["train_samples_per_s"] > 0 and doc["infer_samples_per_s"] > 0
    assert doc["peak_memory_bytes"] == doc["train"]["peak_memory_bytes"] > 0
    assert doc["config"]["preset"] == "cpu" and doc["config"]["batch_size"] == 2 and doc["config"]["mode"] == "both"
    assert doc["device"]["type"] == "cpu" and doc["device_name"] == doc["device"]["name"] != ""
    assert doc["torch"] == torch.__version__
    assert "commit" in doc and doc["model"]["input_shape"][0] == 2
    # Internal consistency: samples/s is batch / median step time of exactly `steps` timed steps.
    tr = doc["train"]
    assert len(tr["step_times_s"]) == len(tr["step_cpu_times_s"]) == 2
    assert 0 < tr["step_cpu_time_s_median"] <= 2 * tr["step_time_s_median"]  # one thread (+ slack for kernels)
    assert math.isclose(tr["samples_per_s"], 2 / tr["step_time_s_median"], rel_tol=1e-12)
    # The peak holds at least the weights, gradients, Adam's two moments and the batch: 4 x params x 4 bytes.
    assert tr["resident_tensor_bytes"] >= 4 * 4 * doc["model"]["params"]
    assert tr["peak_memory_bytes"] == tr["resident_tensor_bytes"] + tr["step_peak_memory_bytes"]
    # A training step (forward + backward) costs about three forwards (backward = 2 x forward for every
    # convolution and product except the first layer's input gradient, which is not needed).
    ratio = tr["flops_per_sample"] / doc["infer"]["flops_per_sample"]
    assert 2.5 < ratio <= 3.0
    assert tr["loss_finite"] and tr["mfu"] is None  # CPU: no peak given


def test_markdown_lists_rows_with_device(tiny_json):
    md = bench.render_markdown(tiny_json.parent)
    doc = json.loads(tiny_json.read_text())
    row = [line for line in md.splitlines() if line.startswith("| tiny.json")]
    assert len(row) == 1 and doc["device"]["name"] in row[0] and f"{doc['train_samples_per_s']:.3g}" in row[0]


def test_linear_flops_are_analytic():
    torch.manual_seed(0)
    lin = torch.nn.Linear(7, 5)
    x = torch.randn(3, 7, requires_grad=True)
    fwd = 2 * 3 * 7 * 5  # (3 x 7) @ (7 x 5), 2 FLOPs per multiply-add
    assert bench.count_flops(lambda: lin(x)) == fwd
    # backward: grad_input (3x5 @ 5x7) and grad_weight (5x3 @ 3x7), each as many FLOPs as the forward
    assert bench.count_flops(lambda: lin(x).sum().backward()) == 3 * fwd


@pytest.mark.parametrize("L,d", [(48, 8), (33, 16)])
def test_fused_attention_counts_the_model_flops_of_the_reference(L, d):
    """SDPA on CPU dispatches to a flash kernel PyTorch's counter does not know; ours counts it, forward 2 products
    (4 L^2 d) and backward 4 products (8 L^2 d, the flash recomputation of QK^T excluded), equal to einsum's."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 1, L, d, requires_grad=True) for _ in range(3))

    def fused():
        F.scaled_dot_product_attention(q, k, v, scale=1.0).sum().backward()

    def reference():
        a = torch.softmax(torch.einsum("bhid,bhjd->bhij", q, k), dim=-1)
        torch.einsum("bhij,bhjd->bhid", a, v).sum().backward()

    with torch.no_grad():
        assert bench.count_flops(lambda: F.scaled_dot_product_attention(q, k, v)) == 2 * 4 * L * L * d
    assert bench.count_flops(fused) == bench.count_flops(reference) == 2 * 12 * L * L * d


def test_mfu_and_peaks():
    assert bench.mfu(2e9, 250.0, 1.0) == pytest.approx(0.5)  # 2 GFLOP x 250/s = 0.5 TFLOP/s of 1
    assert bench.mfu(2e9, 250.0, None) is None and bench.mfu(None, 250.0, 989.4) is None
    assert bench.peak_tflops_for("NVIDIA H100 80GB HBM3", "bf16", tf32=True) == (989.4, "bf16")
    assert bench.peak_tflops_for("NVIDIA H100 PCIe", "bf16", tf32=True) == (756.0, "bf16")
    assert bench.peak_tflops_for("NVIDIA H200", "fp32", tf32=True) == (494.7, "tf32")
    assert bench.peak_tflops_for("NVIDIA H200", "fp32", tf32=False) == (66.9, "fp32")
    assert bench.peak_tflops_for("Tesla T4", "bf16", tf32=True) == (None, None)


def test_cpu_memory_probe_sees_a_known_allocation():
    """A step that touches 64 MiB (above glibc's largest dynamic mmap threshold, so it is mmap'ed and unmapped)
    raises the measured step peak by about 64 MiB; with a resettable high-water mark, by not much more."""
    probe = bench._MemoryProbe(torch.device("cpu"))
    probe.start(lambda: 123)
    t = torch.ones(64 * 2**20 // 4)  # 64 MiB, every page written
    del t
    res = probe.stop()
    # (a few pages of the resident set may be given back meanwhile: allow 2 MiB)
    assert res["step_peak_memory_bytes"] >= 62 * 2**20
    assert res["peak_memory_bytes"] == 123 + res["step_peak_memory_bytes"]
    if probe.hwm_reset:
        assert res["step_peak_memory_bytes"] < 96 * 2**20


def test_cpu_goal_verdict_arithmetic():
    def row(impl, peak, step, cpu=None):
        return {"config": {"nonlocal_impl": impl}, "train": {"peak_memory_bytes": peak, "step_time_s_median": step,
                                                             "step_cpu_time_s_median": step if cpu is None else cpu}}

    g = bench._cpu_goal([row("fused", 100, 1.0), row("reference", 400, 1.5)])
    assert g["memory_ratio_fused_over_reference"] == 0.25 and g["memory_ok"] and g["speed_ok"] and g["passed"]
    g = bench._cpu_goal([row("fused", 101, 1.0), row("reference", 400, 0.9)])
    assert not g["memory_ok"] and not g["speed_ok"] and not g["passed"]
    # faster by the wall clock (a busy neighbour during the reference run) but not in CPU time: not "not slower"
    g = bench._cpu_goal([row("fused", 100, 1.0, cpu=1.2), row("reference", 400, 1.5, cpu=1.1)])
    assert g["step_ratio_fused_over_reference"] < 1 < g["step_cpu_time_ratio_fused_over_reference"]
    assert not g["speed_ok"] and not g["passed"]
    g = bench._cpu_goal([row("fused", 1, 1.0), {"name": "x", "config": {"nonlocal_impl": "reference"}, "error": "E"}])
    assert not g["passed"] and "E" in g["reason"]


def test_time_to_reproduce(tmp_path, capsys):
    from slnl import experiments

    rows = [
        {"name": "a", "train_samples_per_s": 100.0, "config": {"preset": "ntu", "batch_size": 32}},
        {"name": "b", "train_samples_per_s": 900.0, "config": {"preset": "ntu", "batch_size": 128}},  # not paper's
        {"name": "c", "train_samples_per_s": 50.0, "config": {"preset": "kinetics", "batch_size": 128}},
        # faster, but not what fit() trains as measured: local-only model, cuDNN attention, a NaN loss
        {"name": "d", "train_samples_per_s": 800.0, "config": {"preset": "ntu", "batch_size": 32, "m1": 0}},
        {"name": "e", "train_samples_per_s": 800.0,
         "config": {"preset": "ntu", "batch_size": 32, "attention_kernels": "cudnn"}},
        {"name": "f", "train_samples_per_s": 800.0, "config": {"preset": "ntu", "batch_size": 32},
         "train": {"loss_finite": False}},
    ]
    tables = bench.paper_tables()
    t3 = experiments.TABLES["table3"]
    n3 = sum(r.runnable for r in t3.rows)
    cs = next(e for e in tables if e["table"] == "table3" and e["split"] == "xsub")
    assert cs["runs"] == n3 and cs["epochs"] == 300 and {e["split"] for e in tables if e["table"] == "table3"} == {
        "xsub", "xview"}
    est = {(e["table"], e["split"]): e for e in bench.time_to_reproduce(rows, tables)}
    e = est[("table3", "xsub")]
    assert e["from_row"] == "a" and e["hours"] == pytest.approx(n3 * 300 * 40_320 / 100.0 / 3600)
    assert est[("table3", "xview")]["hours"] == pytest.approx(n3 * 300 * 37_920 / 100.0 / 3600)
    k = est[("table2", "default")]
    assert k["from_row"] == "c" and k["hours"] == pytest.approx(k["runs"] * 100 * 240_000 / 50.0 / 3600)

    path = tmp_path / "r.json"
    path.write_text(json.dumps({"suite": "x", "results": rows}))
    assert bench.main(["bench", "--time-to-reproduce", "--from", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| table3 | ntu60 | xsub |" in out and "**total**" in out


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="precision"):
        bench.BenchConfig(precision="fp16")
    with pytest.raises(ValueError, match="batch_size"):
        bench.BenchConfig(batch_size=0)


def test_device_check_on_cpu_agrees_with_float64_and_catches_a_wrong_gradient():
    """The check the GPU window runs, here with the CPU as the device: fused and reference non-local in float32
    against float64 (same weights, W_w re-initialised so that attention contributes), within CHECK_TOL."""
    rep = bench.check_device("cpu", presets=("cpu",), batch_size=2, log=lambda _: None)
    e = rep["presets"]["cpu"]
    assert rep["passed"], e
    for key in ("fused_fp32_vs_cpu_fp64", "reference_fp32_vs_cpu_fp64", "fused_vs_reference_fp32"):
        assert e[key]["ok"] and 0 < e[key]["grad"] <= bench.CHECK_TOL["grad"]
    assert e["fused_bf16_vs_cpu_fp64"]["finite"]

    # The comparison is not blind: 1% off in one parameter's gradient fails the per-tensor limit.
    ref = {"heads": [torch.ones(2, 3), None, torch.ones(2, 3)], "loss": torch.tensor(1.0),
           "grads": [torch.ones(100), torch.ones(10)]}
    bad = {**ref, "grads": [torch.ones(100), torch.ones(10) * 1.01]}
    err = bench._compare(bad, ref)
    assert err["out"] == 0 and err["loss"] == 0 and err["grad_tensor"] == pytest.approx(0.01)
    assert err["grad_tensor"] <= bench.CHECK_TOL["grad_tensor"] < 0.03  # 1% passes, 3% would not
    worse = bench._compare({**ref, "grads": [torch.ones(100), torch.ones(10) * 1.05]}, ref)
    assert worse["grad_tensor"] > bench.CHECK_TOL["grad_tensor"]


def test_gpu_goal_verdict_takes_the_best_finite_ntu_row_beside_the_plain_eager_path():
    def row(bs, sps, finite=True, **opts):
        cfg = bench.BenchConfig(preset=opts.pop("preset", "ntu"), batch_size=bs, device="cuda", precision="bf16",
                                **opts)
        return {"name": cfg.name, "config": bench.dataclasses.asdict(cfg), "train_samples_per_s": sps,
                "train": {"samples_per_s": sps, "loss_finite": finite, "mfu": sps / 10_000}}

    rows = [row(32, 500.0), row(32, 1_200.0, compile=True, channels_last=True),
            row(32, 5_000.0, finite=False, compile=True),  # NaN loss: its speed does not count
            row(32, 9_000.0, m1=0),  # local-only: a different model
            row(128, 700.0), row(128, 1_900.0, compile=True),
            row(128, 2_500.0, compile=True, attention_kernels="cudnn"),  # fit() cannot run it: reported beside
            row(128, 9_000.0, preset="kinetics")]
    g = bench._gpu_goal(rows)
    b32, b128 = g["batch_32"], g["batch_128"]
    assert b32["best_samples_per_s"] == 1_200.0 and b32["met"] and b32["plain_eager_samples_per_s"] == 500.0
    assert b32["speedup_over_plain"] == pytest.approx(2.4) and b32["best_mfu"] == pytest.approx(0.12)
    assert b128["best_samples_per_s"] == 1_900.0 and not b128["met"] and "cudnn" not in b128["best"]
    assert b128["best_with_cudnn_attention_samples_per_s"] == 2_500.0 and "best_with_cudnn_attention" not in b32
    assert not g["passed"]
    assert bench._gpu_goal([row(32, 1_000.0), row(128, 2_000.0)])["passed"]  # goals are inclusive
    assert not bench._gpu_goal([])["passed"]


def test_execution_options_are_named_and_validated():
    plain = bench.BenchConfig(preset="ntu", batch_size=32)
    assert plain.options == "-" and plain.name == "ntu-b32-fused-fp32-eager-train"
    c = bench.BenchConfig(preset="ntu", batch_size=32, compile=True, compile_mode="reduce-overhead",
                          channels_last=True, attention_kernels="cudnn", fused_adam=True)
    assert c.name == "ntu-b32-fused-fp32-compiled-cudagraphs-cl-cudnn-fusedadam-train"
    assert c.options == "compile:reduce-overhead, channels_last, cudnn-attn, fused-adam"
    assert bench._options({"preset": "ntu", "compile": True}) == "compile"  # an old row without the new keys
    with pytest.raises(ValueError, match="compile_mode"):
        bench.BenchConfig(compile=True, compile_mode="fast")
    with pytest.raises(ValueError, match="needs compile=True"):
        bench.BenchConfig(compile_mode="reduce-overhead")
    with pytest.raises(ValueError, match="attention_kernels"):
        bench.BenchConfig(attention_kernels="flash3")


def test_cudnn_option_is_scoped_to_one_measurement():
    from torch.nn.attention import SDPBackend

    from slnl.models import nonlocal_

    before = list(nonlocal_.FUSED_BACKENDS)
    order = torch._C._get_sdp_priority_order()
    with bench._attention_kernels("cudnn"):
        assert nonlocal_.FUSED_BACKENDS[0] == SDPBackend.CUDNN_ATTENTION
        assert nonlocal_.FUSED_BACKENDS[1:] == before
        # allowed *and* preferred: cuDNN first in PyTorch's priority order, not only in our list
        assert torch._C._get_sdp_priority_order()[0] == int(SDPBackend.CUDNN_ATTENTION)
    assert nonlocal_.FUSED_BACKENDS == before and SDPBackend.CUDNN_ATTENTION not in before
    assert torch._C._get_sdp_priority_order() == order
    with bench._attention_kernels("default"):
        assert nonlocal_.FUSED_BACKENDS == before


def test_options_measure_on_cpu_and_record_the_attention_kernel(tmp_path):
    """NHWC + fused Adam run through the whole measurement; the row names the attention operators that really ran."""
    cfg = bench.BenchConfig(preset="cpu", batch_size=2, steps=1, warmup=1, channels_last=True, fused_adam=True)
    row = bench.measure(cfg)
    assert row["model"]["overrides"]["channels_last"] is True and row["train"]["loss_finite"]
    assert row["attention_ops"] == ["aten::_scaled_dot_product_flash_attention_for_cpu",
                                    "aten::_scaled_dot_product_flash_attention_for_cpu_backward"]


def test_flop_breakdown_adds_up_and_puts_the_st_attention_where_the_formula_says():
    """Forward parts sum to the forward total; the st attention of one block is 4·L²·Q per sequence (L = T'·N'
    positions, Q channels; two products of 2 FLOPs per multiply-add); training by operator sums to the training
    total that count_flops gives."""
    from slnl.losses import MultiTaskLoss, make_loss
    from slnl.models import build

    torch.manual_seed(0)
    model = build("cpu", m1=1, recompute="never").train()
    c = model.config
    x = torch.randn(2, c.in_channels, c.T, c.num_joints, c.num_persons)
    y = torch.tensor([0, 1])
    loss_fn = MultiTaskLoss(make_loss("SMFL", gamma=2.0, m=0.4))
    bd = bench.flop_breakdown(model, x, y, loss_fn)
    fwd = bd["forward_flops_per_sample"]
    model.eval()
    assert sum(fwd.values()) == pytest.approx(bench.count_flops(lambda: model(x)) / 2, rel=1e-12)
    model.train()
    L, Q = c.T * c.new_joints, c.channels[0]
    streams_x_persons = 2 * c.num_persons  # position and velocity streams, each person a sequence
    assert fwd["non-local attention (st)"] == streams_x_persons * 4 * L * L * Q
    assert fwd["non-local attention (t)"] == streams_x_persons * c.new_joints * 4 * c.T * c.T * Q
    assert set(fwd) >= {"local convolutions", "non-local projections", "frequency attention", "transform", "heads"}

    def step():
        loss_fn(model(x), y)[0].backward()

    train = bd["train_flops_per_sample_by_op"]
    assert sum(train.values()) == pytest.approx(bench.count_flops(step) / 2, rel=1e-12)
    assert train["attention"] == pytest.approx(3 * sum(v for k, v in fwd.items() if k.startswith("non-local att")))


def test_kernel_check_trains_on_the_default_gradients_and_reports_a_kernel_that_returns_nan(monkeypatch):
    """On the CPU both kernel sets run the same flash kernel: equal gradients, passed. A stand-in for a faulty cuDNN
    kernel (NaN whenever cuDNN attention is first in line) is caught at step 1 and does not stop the training."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend

    from slnl.models import nonlocal_

    rep = bench.check_attention_kernels("cpu", ("cpu",), steps=2, batch_size=2, log=lambda s: None)
    e = rep["presets"]["cpu"]
    assert rep["passed"] and e["first_nonfinite_step_cudnn"] is None and e["max_rel_grad_diff"] < 1e-6
    assert e["attention_ops"]["cudnn"] == e["attention_ops"]["default"] != []

    real = F.scaled_dot_product_attention

    def faulty(q, k, v, **kw):
        out = real(q, k, v, **kw)
        return out * float("nan") if nonlocal_.FUSED_BACKENDS[0] == SDPBackend.CUDNN_ATTENTION else out

    monkeypatch.setattr(nonlocal_.F, "scaled_dot_product_attention", faulty)
    rep = bench.check_attention_kernels("cpu", ("cpu",), steps=2, batch_size=2, log=lambda s: None)
    e = rep["presets"]["cpu"]
    assert not rep["passed"] and e["first_nonfinite_step_cudnn"] == 1 and e["nonfinite_steps_default"] == 0
    assert math.isfinite(e["final_loss"])


def test_device_script_dry_run_on_cpu(tmp_path):
    """benchmarks/device_check.sh runs only on lent GPU machines; its CPU dry run keeps it from breaking unseen:
    every step ends ok and each step's file is written."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(bench.__file__).resolve().parents[1]
    env = {**os.environ, "SLNL_DEVICE": "cpu", "SLNL_SUITE": "cpu-smoke", "SLNL_CHECK_PRESETS": "cpu",
           "SLNL_KERNEL_PRESETS": "cpu", "SLNL_KERNEL_STEPS": "2", "OUT": str(tmp_path),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(["bash", str(repo / "benchmarks" / "device_check.sh")], env=env, capture_output=True,
                       text=True, timeout=600)
    summary = r.stdout[r.stdout.index("device_check summary"):]
    for step in ("env", "import", "check", "kernels", "bench", "markdown"):
        assert re.search(rf"^{step}\s+ok\s", summary, re.M), summary
    assert {"device_check.json", "check_kernels.json", "cpu-smoke.json", "README.md"} <= {
        p.name for p in tmp_path.iterdir()}
    assert "check: PASSED on cpu" in summary and "cuDNN attention: finite" in summary
