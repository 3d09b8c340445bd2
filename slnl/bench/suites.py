"""Suites: named lists of configurations measured together (``slnl bench suite NAME``), and the goals they judge.

Goals (what the implementation was built to meet):

* ``cpu-goal``: the fused non-local's training step peaks at ≤ 1/4 of the reference implementation's memory
  (``ntu`` preset, m1 = 6, batch 4, CPU), and is not slower (wall and CPU time).
* ``gpu``: ``ntu`` preset, bf16 training on one H100/H200 at ≥ 1,000 samples/s at batch 32 and ≥ 2,000 at batch
  128 (``GPU_GOAL``), with what ``fit()`` runs, beside the plain eager path of the same run.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from slnl.bench.measure import BenchConfig, fit_runnable, measure_isolated, options_of, safe_measure
from slnl.bench.provenance import header
from slnl.bench.reports import one_line
from slnl.data import msr3d
from slnl.utils import atomic_write_json


@dataclass
class Suite:
    description: str
    configs: list[BenchConfig]
    goal: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None
    timeout_s: float = 600.0


def cpu_goal(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Fused non-local: peak memory <= 1/4 of the reference implementation's, and a step no slower."""
    by = {r["config"]["nonlocal_impl"]: r for r in rows if "train" in r}
    if set(by) != {"fused", "reference"}:
        return {"passed": False, "reason": "a configuration failed: " +
                "; ".join(f"{r['name']}: {r.get('error')}" for r in rows if "error" in r)}
    f, r = by["fused"]["train"], by["reference"]["train"]
    mem_ratio = f["peak_memory_bytes"] / r["peak_memory_bytes"]
    time_ratio = f["step_time_s_median"] / r["step_time_s_median"]
    out = {
        "memory_ratio_fused_over_reference": mem_ratio, "memory_goal": "<= 0.25", "memory_ok": mem_ratio <= 0.25,
        "step_ratio_fused_over_reference": time_ratio, "speed_goal": "<= 1.0 (wall and CPU time)",
    }
    if "step_cpu_time_s_median" in f and "step_cpu_time_s_median" in r:
        cpu_ratio = f["step_cpu_time_s_median"] / r["step_cpu_time_s_median"]
        out["step_cpu_time_ratio_fused_over_reference"] = cpu_ratio
        out["speed_ok"] = time_ratio <= 1.0 and cpu_ratio <= 1.0
    else:
        out["speed_ok"] = time_ratio <= 1.0
    out["passed"] = out["memory_ok"] and out["speed_ok"]
    return out


GPU_GOAL = {32: 1_000.0, 128: 2_000.0}  # ntu preset, bf16, training samples/s on one H100/H200


def gpu_goal(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Best ntu bf16 (m1 = preset) training rate per batch size against ``GPU_GOAL``, beside the plain eager path
    of the same run. Only rows ``fit()`` runs count (``fit_runnable``: finite loss, the preset's model)."""
    out: dict[str, Any] = {}
    for bs, goal in GPU_GOAL.items():
        same = [r for r in rows if "train" in r and r["config"]["precision"] == "bf16"
                and r["config"]["batch_size"] == bs and r["config"]["nonlocal_impl"] == "fused"]
        ok_rows = [r for r in same if fit_runnable(r, "ntu")]
        plain = next((r for r in ok_rows if options_of(r["config"]) == "-"), None)
        best = max(ok_rows, key=lambda r: r["train_samples_per_s"], default=None)
        entry: dict[str, Any] = {"goal_samples_per_s": goal}
        if best is not None:
            entry.update(best=best["name"], best_samples_per_s=best["train_samples_per_s"],
                         best_mfu=best["train"].get("mfu"), met=best["train_samples_per_s"] >= goal)
        if plain is not None:
            entry.update(plain_eager_samples_per_s=plain["train_samples_per_s"], plain_eager_mfu=plain["train"].get("mfu"))
            if best is not None:
                entry["speedup_over_plain"] = best["train_samples_per_s"] / plain["train_samples_per_s"]
        out[f"batch_{bs}"] = entry
    out["passed"] = all(e.get("met", False) for e in out.values() if isinstance(e, dict))
    return out


_GPU_NTU: dict[str, Any] = dict(preset="ntu", device="cuda", precision="bf16", steps=15, warmup=4, threads=4)
_FAST: dict[str, Any] = dict(compile=True, channels_last=True)
# MSR Action3D's clips as the store holds them: 20 joints, one person (slnl.data.msr3d), 20 classes
_MSR3D_SHAPE: dict[str, int] = {"num_joints": msr3d.NUM_JOINTS, "num_persons": 1,
                                "num_classes": len(msr3d.CLASS_NAMES)}
# the MSR Action3D study's final model (small preset, m1 = 5) as it trains: fp32 on one CPU thread
_MSR3D_CPU: dict[str, Any] = dict(preset="small", m1=5, device="cpu", steps=20, warmup=3, threads=1)

SUITES: dict[str, Suite] = {
    "cpu-goal": Suite(
        "NTU preset, m1=6, batch 4, fp32 training step on CPU (1 thread): fused vs reference non-local. "
        "Goal: fused peak memory <= 1/4 of reference, and not slower.",
        [BenchConfig(preset="ntu", batch_size=4, m1=6, nonlocal_impl=impl, precision="fp32", device="cpu",
                     steps=5, warmup=1, threads=1) for impl in ("fused", "reference")],
        goal=cpu_goal, timeout_s=900.0,
    ),
    "cpu-smoke": Suite(
        "The cpu preset, batch 4, fused vs reference, on CPU: a quick check of the harness.",
        [BenchConfig(preset="cpu", batch_size=4, nonlocal_impl=impl, device="cpu", steps=3, warmup=1)
         for impl in ("fused", "reference")],
        timeout_s=300.0,
    ),
    "cpu-options": Suite(
        "The cpu preset, batch 16, fp32 training on CPU (1 thread): the plain path against NHWC feature maps and "
        "fused Adam, alone and together (what each option gains here; the GPU suites measure them there).",
        [BenchConfig(preset="cpu", batch_size=16, device="cpu", steps=10, warmup=2, threads=1,
                     channels_last=cl, fused_adam=fa) for cl, fa in ((False, False), (True, False), (False, True),
                                                                      (True, True))],
        timeout_s=300.0,
    ),
    "cpu-msr3d-batch": Suite(
        "The MSR Action3D study's final model (small preset, m1=5, MSR's shape: 20 joints, 1 person, 20 classes), "
        "fp32 training step on CPU (1 thread), at the study's batch 8 and at 16, 32, 64: how the step's cost grows "
        "with the batch (whether a larger effective batch, such as several seeds trained as one, could shorten "
        "the study).",
        [BenchConfig(batch_size=bs, model=dict(_MSR3D_SHAPE), **_MSR3D_CPU) for bs in (8, 16, 32, 64)],
        timeout_s=300.0,
    ),
    "cpu-msr3d-options": Suite(
        "The MSR Action3D study's final model and shape as in cpu-msr3d-batch, at the study's batch 8, one thread: "
        "the plain fp32 path against NHWC feature maps, fused Adam and bf16 autocast (the CPU's AMX/AVX-512 bf16 "
        "units) - whether any option, or lower precision, could shorten the study on the CPU.",
        [BenchConfig(batch_size=8, model=dict(_MSR3D_SHAPE), **_MSR3D_CPU, **opt)
         for opt in ({}, {"channels_last": True}, {"fused_adam": True}, {"precision": "bf16"})],
        timeout_s=300.0,
    ),
    # Most important first: a suite cut short by its budget keeps the first rows.
    "gpu": Suite(
        "CUDA, bf16, ntu preset: the plain eager path and the candidate fast paths (compile + NHWC, CUDA graphs, "
        "fused Adam) at batch 32 and 128. Goal: GPU_GOAL samples/s.",
        [BenchConfig(batch_size=32, **_GPU_NTU), BenchConfig(batch_size=128, **_GPU_NTU),
         BenchConfig(batch_size=128, **_FAST, **_GPU_NTU),
         BenchConfig(batch_size=32, compile_mode="reduce-overhead", **_FAST, **_GPU_NTU),
         BenchConfig(batch_size=32, compile_mode="reduce-overhead", fused_adam=True, **_FAST, **_GPU_NTU)],
        goal=gpu_goal, timeout_s=120.0,
    ),
    "gpu-ablation": Suite(
        "CUDA, bf16 unless noted: each option alone (compile, NHWC, fused Adam), the reference non-local, the "
        "local-only model (m1=0), Kinetics batch 128, an fp32 point.",
        [BenchConfig(batch_size=128, compile=True, **_GPU_NTU), BenchConfig(batch_size=32, compile=True, **_GPU_NTU),
         BenchConfig(batch_size=128, channels_last=True, **_GPU_NTU),
         BenchConfig(batch_size=32, fused_adam=True, **_GPU_NTU),
         BenchConfig(batch_size=32, nonlocal_impl="reference", **_GPU_NTU),
         BenchConfig(batch_size=128, m1=0, **_FAST, **_GPU_NTU),
         BenchConfig(batch_size=128, **{**_GPU_NTU, "preset": "kinetics"}),
         BenchConfig(batch_size=32, **{**_GPU_NTU, "precision": "fp32"})],
        timeout_s=120.0,
    ),
}


def run_suite(name: str, isolate: bool = True, only_device: str | None = None,
              out_path: str | os.PathLike | None = None, budget_s: float | None = None,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every configuration of ``SUITES[name]`` (each in its own process when ``isolate``).

    ``out_path`` is rewritten (atomically) after every configuration, so that a run cut short keeps what it measured.
    ``budget_s`` bounds the whole suite: each configuration's timeout is the smaller of the suite's and what is left,
    and a configuration with under 20 s left is recorded as skipped.
    """
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; expected one of {', '.join(SUITES)}")
    suite = SUITES[name]
    t_start = time.perf_counter()
    out: dict[str, Any] = {"suite": name, "description": suite.description, **header(), "results": []}
    rows: list[dict[str, Any]] = out["results"]
    for cfg in suite.configs:
        if only_device:
            cfg = dataclasses.replace(cfg, device=only_device)
        left = math.inf if budget_s is None else budget_s - (time.perf_counter() - t_start)
        if left < 20:
            rows.append({**header(), "name": cfg.name, "config": dataclasses.asdict(cfg),
                         "error": f"skipped: {max(left, 0):.0f} s of the suite's {budget_s:.0f} s budget left"})
            log(f"[bench {name}] {cfg.name}: skipped (budget)")
            continue
        log(f"[bench {name}] {cfg.name} ...")
        row = measure_isolated(cfg, min(suite.timeout_s, left)) if isolate else safe_measure(cfg)
        log(f"[bench {name}] {cfg.name}: {one_line(row)}")
        rows.append({**header(), **row})
        if out_path is not None:
            atomic_write_json(out_path, out)
    if suite.goal:
        out["goal"] = suite.goal(rows)
        log(f"[bench {name}] goal: {json.dumps(out['goal'])}")
    out["suite_wall_s"] = time.perf_counter() - t_start
    if out_path is not None:
        atomic_write_json(out_path, out)
    return out
