"""`slnl bench`: it times the engine's own training step (the one fit() runs), the subcommands write what they
measured, FLOP counts match analytic counts, MFU and time-to-reproduce arithmetic, the CPU peak-memory method sees
a known allocation, the device check is not blind."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from slnl.bench import check, flops, gpu_train, measure, provenance, reports, reproduce, suites
from slnl.bench import cli as bench_cli
from slnl.bench.cli import main as bench_main
from slnl.cli import main as slnl_main
from slnl.engine import fit
from slnl.recipes import config_for
from slnl.study.cost import paper_tables
from slnl.engine import step as engine_step
from test_engine_fit import make_tiny_store, tiny_config

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_json(tmp_path_factory):
    """One real `slnl bench throughput` run (through the top-level CLI, in a fresh process) of the cpu preset."""
    out = tmp_path_factory.mktemp("bench") / "tiny.json"
    rc = slnl_main(["bench", "throughput", "--preset", "cpu", "--batch-size", "2", "--steps", "2", "--warmup", "1",
                    "--device", "cpu", "--threads", "1", "--json", str(out)])
    assert rc == 0
    return out


def test_throughput_json_top_level(tiny_json):
    doc = json.loads(tiny_json.read_text())
    assert "error" not in doc, doc.get("traceback")
    # Top level: what the tables and time-to-reproduce read.
    assert doc["train_samples_per_s"] > 0 and doc["peak_memory_bytes"] == doc["train"]["peak_memory_bytes"] > 0
    assert doc["config"]["preset"] == "cpu" and doc["config"]["batch_size"] == 2
    assert doc["device"]["type"] == "cpu" and doc["device_name"] == doc["device"]["name"] != ""
    assert doc["torch"] == torch.__version__ and "commit" in doc and doc["model"]["input_shape"][0] == 2
    # What was timed: the engine's step of the preset's own TrainConfig (its loss, optimiser, learning rate).
    assert doc["step"] == "slnl.engine.step.TrainStep"
    proto = config_for("cpu")
    for key in ("loss", "gamma", "m", "lr", "weight_decay", "sync_every", "accum_steps"):
        assert doc["train_config"][key] == getattr(proto, key), key
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
    bd = doc["flops_breakdown"]
    ratio = tr["flops_per_sample"] / sum(bd["forward_flops_per_sample"].values())
    assert 2.5 < ratio <= 3.0
    assert tr["loss_finite"] and tr["mfu"] is None  # CPU: no peak given


def test_bench_fit_and_device_checks_run_one_step(tiny_store, tmp_path, monkeypatch):
    """fit()'s loop, the benchmark's timed step and `slnl bench gpu-train`'s throughput all call the engine's TrainStep (a
    counter on it sees each of their steps), and the device check runs the engine's gradient pass itself."""
    calls: list[str] = []
    real = engine_step.TrainStep.__call__

    def counted(self, *args, **kwargs):
        calls.append(self.t.device.type)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(engine_step.TrainStep, "__call__", counted)
    fit(tiny_config(tiny_store, tmp_path / "run", epochs=1, max_steps_per_epoch=3))
    assert len(calls) == 3
    row = measure.measure(measure.BenchConfig(preset="cpu", batch_size=2, steps=2, warmup=1))
    assert len(calls) == 3 + 1 + 2 and row["train"]["loss_finite"]
    gpu_train.throughput(dict(channels=(8, 8, 16, 16, 16, 16), T=16, new_joints=4, K=2), "cpu", 2, steps=2, warmup=1,
                   device=torch.device("cpu"), precision="fp32", compile_=False)
    assert len(calls) == 6 + 3
    # the check and the FLOP count run the engine's forward and gradient pass, not copies of them
    assert check.gradients is flops.gradients is engine_step.gradients
    assert check.forward is flops.forward is engine_step.forward


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    return make_tiny_store(tmp_path_factory.mktemp("tiny_store"))


def test_markdown_lists_rows_with_device_and_keeps_the_written_history(tiny_json):
    doc = json.loads(tiny_json.read_text())
    md_path = tiny_json.parent / "README.md"
    md_path.write_text("# old table\n\n" + reports.HISTORY_MARKER + "\n\n## History\n\nwritten by hand\n")
    assert bench_main(["table", "--md", str(md_path)]) == 0
    md = md_path.read_text()
    row = [line for line in md.splitlines() if line.startswith("| tiny.json")]
    assert len(row) == 1 and doc["device"]["name"] in row[0] and f"{doc['train_samples_per_s']:.3g}" in row[0]
    assert "# old table" not in md and md.endswith(reports.HISTORY_MARKER + "\n\n## History\n\nwritten by hand\n")
    assert reports.render_markdown(tiny_json.parent, md) == md  # regenerating again changes nothing


def test_linear_flops_are_analytic():
    torch.manual_seed(0)
    lin = torch.nn.Linear(7, 5)
    x = torch.randn(3, 7, requires_grad=True)
    fwd = 2 * 3 * 7 * 5  # (3 x 7) @ (7 x 5), 2 FLOPs per multiply-add
    assert flops.count_flops(lambda: lin(x)) == fwd
    # backward: grad_input (3x5 @ 5x7) and grad_weight (5x3 @ 3x7), each as many FLOPs as the forward
    assert flops.count_flops(lambda: lin(x).sum().backward()) == 3 * fwd


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
        assert flops.count_flops(lambda: F.scaled_dot_product_attention(q, k, v)) == 2 * 4 * L * L * d
    assert flops.count_flops(fused) == flops.count_flops(reference) == 2 * 12 * L * L * d


def test_mfu_and_peaks():
    assert flops.mfu(2e9, 250.0, 1.0) == pytest.approx(0.5)  # 2 GFLOP x 250/s = 0.5 TFLOP/s of 1
    assert flops.mfu(2e9, 250.0, None) is None and flops.mfu(None, 250.0, 989.4) is None
    assert flops.peak_tflops_for("NVIDIA H100 80GB HBM3", "bf16", tf32=True) == (989.4, "bf16")
    assert flops.peak_tflops_for("NVIDIA H100 PCIe", "bf16", tf32=True) == (756.0, "bf16")
    assert flops.peak_tflops_for("NVIDIA H200", "fp32", tf32=True) == (494.7, "tf32")
    assert flops.peak_tflops_for("NVIDIA H200", "fp32", tf32=False) == (66.9, "fp32")
    assert flops.peak_tflops_for("Tesla T4", "bf16", tf32=True) == (None, None)


def test_cpu_memory_probe_sees_a_known_allocation():
    """A step that touches 64 MiB (above glibc's largest dynamic mmap threshold, so it is mmap'ed and unmapped)
    raises the measured step peak by about 64 MiB; with a resettable high-water mark, by not much more."""
    from slnl.bench.memory import MemoryProbe

    probe = MemoryProbe(torch.device("cpu"))
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

    g = suites.cpu_goal([row("fused", 100, 1.0), row("reference", 400, 1.5)])
    assert g["memory_ratio_fused_over_reference"] == 0.25 and g["memory_ok"] and g["speed_ok"] and g["passed"]
    g = suites.cpu_goal([row("fused", 101, 1.0), row("reference", 400, 0.9)])
    assert not g["memory_ok"] and not g["speed_ok"] and not g["passed"]
    # faster by the wall clock (a busy neighbour during the reference run) but not in CPU time: not "not slower"
    g = suites.cpu_goal([row("fused", 100, 1.0, cpu=1.2), row("reference", 400, 1.5, cpu=1.1)])
    assert g["step_ratio_fused_over_reference"] < 1 < g["step_cpu_time_ratio_fused_over_reference"]
    assert not g["speed_ok"] and not g["passed"]
    g = suites.cpu_goal([row("fused", 1, 1.0), {"name": "x", "config": {"nonlocal_impl": "reference"}, "error": "E"}])
    assert not g["passed"] and "E" in g["reason"]


def test_time_to_reproduce(tmp_path, capsys):
    from slnl import experiments

    rows = [
        {"name": "a", "train_samples_per_s": 100.0, "config": {"preset": "ntu", "batch_size": 32}},
        {"name": "b", "train_samples_per_s": 900.0, "config": {"preset": "ntu", "batch_size": 128}},  # not paper's
        {"name": "c", "train_samples_per_s": 50.0, "config": {"preset": "kinetics", "batch_size": 128}},
        # faster, but not what fit() trains as measured: local-only model, cuDNN attention (an earlier version's
        # option), a NaN loss
        {"name": "d", "train_samples_per_s": 800.0, "config": {"preset": "ntu", "batch_size": 32, "m1": 0}},
        {"name": "e", "train_samples_per_s": 800.0,
         "config": {"preset": "ntu", "batch_size": 32, "attention_kernels": "cudnn"}},
        {"name": "f", "train_samples_per_s": 800.0, "config": {"preset": "ntu", "batch_size": 32},
         "train": {"loss_finite": False}},
    ]
    tables = paper_tables()
    t3 = experiments.TABLES["table3"]
    n3 = sum(r.runnable for r in t3.rows)
    cs = next(e for e in tables if e["table"] == "table3" and e["split"] == "xsub")
    assert cs["runs"] == n3 and cs["epochs"] == 300 and {e["split"] for e in tables if e["table"] == "table3"} == {
        "xsub", "xview"}
    est = {(e["table"], e["split"]): e for e in reproduce.time_to_reproduce(rows, tables)}
    e = est[("table3", "xsub")]
    assert e["from_row"] == "a" and e["hours"] == pytest.approx(n3 * 300 * 40_320 / 100.0 / 3600)
    assert est[("table3", "xview")]["hours"] == pytest.approx(n3 * 300 * 37_920 / 100.0 / 3600)
    k = est[("table2", "default")]
    assert k["from_row"] == "c" and k["hours"] == pytest.approx(k["runs"] * 100 * 240_000 / 50.0 / 3600)

    path = tmp_path / "r.json"
    path.write_text(json.dumps({"suite": "x", "results": rows}))
    assert slnl_main(["reproduce", "--estimate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| table3 | ntu60 | xsub |" in out and "**total**" in out


def test_bad_config_and_bad_command_are_clear_errors(capsys):
    with pytest.raises(ValueError, match="precision"):
        measure.BenchConfig(precision="fp16")
    with pytest.raises(ValueError, match="batch_size"):
        measure.BenchConfig(batch_size=0)
    with pytest.raises(ValueError, match="needs compile=True"):  # the engine's own validation
        measure.BenchConfig(compile_mode="reduce-overhead")
    with pytest.raises(SystemExit):
        bench_main(["--suite", "gpu"])  # the flag-style command line of earlier versions: subcommands now
    assert "SUBCOMMAND" in capsys.readouterr().err
    # a refused configuration is one line before any measuring (not a row with an error, not a default instead)
    for argv, says in ((["--model", "bogus=1"], "unknown ModelConfig field(s) 'bogus'"),
                       (["--batch-size", "0"], "got batch_size=0"), (["--threads", "0"], "threads=0"),
                       (["--model", "m1=2"], "have their own BenchConfig fields")):
        with pytest.raises(SystemExit) as e:
            bench_main(["throughput", "--preset", "small", "--device", "cpu", *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and says in err[-1] and err[-1].startswith("slnl bench: error:")


def test_device_check_on_cpu_agrees_with_float64_and_catches_a_wrong_gradient():
    """The check the GPU window runs, here with the CPU as the device: fused and reference non-local in float32
    against float64 (same weights, W_w re-initialised so that attention contributes), within CHECK_TOL."""
    rep = check.check_device("cpu", presets=("cpu",), batch_size=2, log=lambda _: None)
    e = rep["presets"]["cpu"]
    assert rep["passed"], e
    for key in ("fused_fp32_vs_cpu_fp64", "reference_fp32_vs_cpu_fp64", "fused_vs_reference_fp32"):
        assert e[key]["ok"] and 0 < e[key]["grad"] <= check.CHECK_TOL["grad"]
    assert e["fused_bf16_vs_cpu_fp64"]["finite"]

    # The comparison is not blind: 1% off in one parameter's gradient fails the per-tensor limit.
    ref = {"heads": [torch.ones(2, 3), None, torch.ones(2, 3)], "loss": torch.tensor(1.0),
           "grads": [torch.ones(100), torch.ones(10)]}
    bad = {**ref, "grads": [torch.ones(100), torch.ones(10) * 1.01]}
    err = check.compare(bad, ref)
    assert err["out"] == 0 and err["loss"] == 0 and err["grad_tensor"] == pytest.approx(0.01)
    assert err["grad_tensor"] <= check.CHECK_TOL["grad_tensor"] < 0.03  # 1% passes, 3% would not
    worse = check.compare({**ref, "grads": [torch.ones(100), torch.ones(10) * 1.05]}, ref)
    assert worse["grad_tensor"] > check.CHECK_TOL["grad_tensor"]


def test_gpu_goal_verdict_takes_the_best_finite_ntu_row_beside_the_plain_eager_path():
    def row(bs, sps, finite=True, **opts):
        legacy = opts.pop("attention_kernels", None)
        cfg = measure.BenchConfig(preset=opts.pop("preset", "ntu"), batch_size=bs, device="cuda", precision="bf16",
                                  **opts)
        config = dataclasses.asdict(cfg) | ({"attention_kernels": legacy} if legacy else {})
        return {"name": cfg.name + ("-cudnn" if legacy else ""), "config": config, "train_samples_per_s": sps,
                "train": {"samples_per_s": sps, "loss_finite": finite, "mfu": sps / 10_000}}

    rows = [row(32, 500.0), row(32, 1_200.0, compile=True, channels_last=True),
            row(32, 5_000.0, finite=False, compile=True),  # NaN loss: its speed does not count
            row(32, 9_000.0, m1=0),  # local-only: a different model
            row(128, 700.0), row(128, 1_900.0, compile=True),
            row(128, 2_500.0, compile=True, attention_kernels="cudnn")]  # an earlier version's row fit() cannot run
    g = suites.gpu_goal(rows)
    b32, b128 = g["batch_32"], g["batch_128"]
    assert b32["best_samples_per_s"] == 1_200.0 and b32["met"] and b32["plain_eager_samples_per_s"] == 500.0
    assert b32["speedup_over_plain"] == pytest.approx(2.4) and b32["best_mfu"] == pytest.approx(0.12)
    assert b128["best_samples_per_s"] == 1_900.0 and not b128["met"] and "cudnn" not in b128["best"]
    assert not g["passed"]
    assert suites.gpu_goal([row(32, 1_000.0), row(128, 2_000.0)])["passed"]  # goals are inclusive
    assert not suites.gpu_goal([])["passed"]


def test_execution_options_are_named():
    plain = measure.BenchConfig(preset="ntu", batch_size=32)
    assert measure.options_of(dataclasses.asdict(plain)) == "-" and plain.name == "ntu-b32-fused-fp32-eager-train"
    c = measure.BenchConfig(preset="ntu", batch_size=32, compile=True, compile_mode="reduce-overhead",
                            channels_last=True, fused_adam=True)
    assert c.name == "ntu-b32-fused-fp32-compiled-cudagraphs-cl-fusedadam-train"
    assert measure.options_of(dataclasses.asdict(c)) == "compile:reduce-overhead, channels_last, fused-adam"
    assert c.train_config().fused_adam and c.train_config().model["channels_last"]  # what fit() would be given
    # rows of earlier versions: a missing key is off, cuDNN attention is named as measured
    assert measure.options_of({"preset": "ntu", "compile": True}) == "compile"
    assert measure.options_of({"attention_kernels": "cudnn", "fused_adam": True}) == "cudnn-attn, fused-adam"


def test_a_preset_is_measured_as_it_trains():
    """The benchmark's step is the preset's own: with no --recompute it keeps the preset's choice (the `small` preset
    trains without the fused non-local's recomputation), and only an explicit other choice is named in the row."""
    def recomputes(cfg):
        return {m.recompute for m in engine_step.build_model(cfg.train_config()).modules()
                if isinstance(m, measure.NonLocal)}
    small = measure.BenchConfig(preset="small", batch_size=8)
    assert recomputes(small) == {"never"} and small.name == "small-b8-fused-fp32-eager-train"
    other = measure.BenchConfig(preset="small", batch_size=8, recompute="auto")
    assert recomputes(other) == {"auto"} and other.name == "small-b8-fused-recomputeauto-fp32-eager-train"
    assert recomputes(measure.BenchConfig(preset="cpu")) == {"auto"}
    assert measure.BenchConfig(preset="cpu", recompute="auto").name == measure.BenchConfig(preset="cpu").name


def test_a_dataset_shape_is_measured_under_its_own_name():
    """--model sets any other ModelConfig field (MSR Action3D's shape here): the step built is that model, the row
    and its name say so, and it is not taken for the preset's own row in a goal."""
    msr = {"num_joints": 20, "num_persons": 1, "num_classes": 20}
    args = bench_cli._parser().parse_args(["throughput", "--preset", "small", "--batch-size", "2", "--model",
                                           "num_joints=20", "--model", "num_persons=1", "--model", "num_classes=20"])
    assert dict(args.model) == msr
    cfg = measure.BenchConfig(preset="small", batch_size=2, steps=1, warmup=1, model=msr)
    assert cfg.name == "small-num_classes20-num_joints20-num_persons1-b2-fused-fp32-eager-train"
    row = measure.measure(cfg)
    assert row["model"]["input_shape"] == [2, 3, 16, 20, 1] and row["model"]["num_classes"] == 20
    assert row["train"]["loss_finite"] and not measure.fit_runnable(row, "small")
    assert measure.fit_runnable({**row, "config": {**row["config"], "model": {}}}, "small")
    assert "| small, num_classes=20, num_joints=20, num_persons=1 | 2 |" in reports._table_row("x.json", {}, row)
    assert measure.BenchConfig(preset="small", model={"channels": [8, 8, 16, 16, 16, 16]}).name.startswith(
        "small-channels8x8x16x16x16x16-b4")
    with pytest.raises(ValueError, match=r"\['m1'\] have their own BenchConfig fields"):
        measure.BenchConfig(model={"m1": 3})


def test_options_measure_on_cpu_and_record_the_attention_kernel():
    """NHWC + fused Adam run through the whole measurement; the row names the attention operators that really ran."""
    row = measure.measure(measure.BenchConfig(preset="cpu", batch_size=2, steps=1, warmup=1, channels_last=True,
                                              fused_adam=True))
    assert row["model"]["overrides"]["channels_last"] is True and row["train"]["loss_finite"]
    assert row["train_config"]["fused_adam"] is True
    assert row["attention_ops"] == ["aten::_scaled_dot_product_flash_attention_for_cpu",
                                    "aten::_scaled_dot_product_flash_attention_for_cpu_backward"]


def test_flop_breakdown_adds_up_and_puts_the_st_attention_where_the_formula_says(tmp_path, capsys):
    """Forward parts sum to the forward total; the st attention of one block is 4·L²·Q per sequence (L = T'·N'
    positions, Q channels; two products of 2 FLOPs per multiply-add); training by operator sums to the training
    total that count_flops gives. `slnl bench flops` reports the same breakdown."""
    from slnl.losses import MultiTaskLoss, make_loss
    from slnl.models import build

    torch.manual_seed(0)
    model = build("cpu", m1=1, recompute="never").train()
    c = model.config
    x = torch.randn(2, c.in_channels, c.T, c.num_joints, c.num_persons)
    y = torch.tensor([0, 1])
    loss_fn = MultiTaskLoss(make_loss("SMFL", gamma=2.0, m=0.4))
    bd = flops.flop_breakdown(model, x, y, loss_fn)
    fwd = bd["forward_flops_per_sample"]
    model.eval()
    assert sum(fwd.values()) == pytest.approx(flops.count_flops(lambda: model(x)) / 2, rel=1e-12)
    model.train()
    L, Q = c.T * c.new_joints, c.channels[0]
    streams_x_persons = 2 * c.num_persons  # position and velocity streams, each person a sequence
    assert fwd["non-local attention (st)"] == streams_x_persons * 4 * L * L * Q
    assert fwd["non-local attention (t)"] == streams_x_persons * c.new_joints * 4 * c.T * c.T * Q
    assert set(fwd) >= {"local convolutions", "non-local projections", "frequency attention", "transform", "heads"}

    def step():
        loss_fn(model(x), y)[0].backward()

    train = bd["train_flops_per_sample_by_op"]
    assert sum(train.values()) == pytest.approx(flops.count_flops(step) / 2, rel=1e-12)
    assert train["attention"] == pytest.approx(3 * sum(v for k, v in fwd.items() if k.startswith("non-local att")))

    out = tmp_path / "flops-cpu.json"
    assert slnl_main(["bench", "flops", "--preset", "cpu", "--m1", "1", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["forward_flops_per_sample"]["non-local attention (st)"] == fwd["non-local attention (st)"]
    assert "| non-local attention (st) |" in capsys.readouterr().out


def test_suite_runs_in_process_and_writes_its_file(tmp_path, monkeypatch):
    tiny = suites.Suite("two tiny rows", [measure.BenchConfig(preset="cpu", batch_size=2, steps=1, warmup=0,
                                                              nonlocal_impl=impl) for impl in ("fused", "reference")],
                        goal=suites.cpu_goal)
    monkeypatch.setitem(suites.SUITES, "tiny", tiny)
    out = tmp_path / "tiny.json"
    doc = suites.run_suite("tiny", isolate=False, out_path=out, log=lambda _: None)
    assert json.loads(out.read_text()) == json.loads(json.dumps(doc))
    assert [r["config"]["nonlocal_impl"] for r in doc["results"]] == ["fused", "reference"]
    assert all("error" not in r for r in doc["results"]) and "memory_ok" in doc["goal"]
    with pytest.raises(ValueError, match="unknown suite"):
        suites.run_suite("nope")


def test_device_script_dry_run_on_cpu(tmp_path):
    """slnl/bench/device_check.sh runs only on lent GPU machines; its CPU dry run keeps it from breaking unseen:
    every step ends ok and each step's file is written."""
    env = {**os.environ, "SLNL_DEVICE": "cpu", "SLNL_SUITE": "cpu-smoke", "SLNL_CHECK_PRESETS": "cpu",
           "SLNL_KERNEL_PRESETS": "cpu", "SLNL_KERNEL_STEPS": "2", "SLNL_KERNEL_CANDIDATE": "math",
           "OUT": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(["bash", str(REPO / "slnl" / "bench" / "device_check.sh")], env=env, capture_output=True,
                       text=True, timeout=600)
    summary = r.stdout[r.stdout.index("device_check summary"):]
    for step in ("env", "import", "check", "kernels", "bench", "markdown"):
        assert re.search(rf"^{step}\s+ok\s", summary, re.M), summary
    assert {"device_check.json", "check_kernels.json", "cpu-smoke.json", "README.md"} <= {
        p.name for p in tmp_path.iterdir()}
    assert "check: PASSED on cpu" in summary and "math attention: finite" in summary


def test_default_folder_follows_slnl_home_and_an_installed_copy_claims_no_dirtiness(tmp_path, monkeypatch, tiny_json):
    """`results/bench` is read when a command runs, relative to $SLNL_HOME (never beside the installed package); the
    uncommitted-changes probe asks git only about a source checkout."""
    home, work = tmp_path / "home", tmp_path / "work"
    (home / "results" / "bench").mkdir(parents=True)
    work.mkdir()
    (home / "results" / "bench" / "tiny.json").write_text(tiny_json.read_text())
    monkeypatch.chdir(work)
    monkeypatch.setenv("SLNL_HOME", str(home))
    assert bench_main(["table"]) == 0
    assert "| tiny.json |" in (home / "results" / "bench" / "README.md").read_text()
    assert list(work.iterdir()) == []
    monkeypatch.setattr(provenance, "source_checkout", lambda: None)
    assert provenance.header()["commit_dirty"] is None
