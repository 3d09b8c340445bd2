#!/usr/bin/env bash
# One GPU window, under 5 minutes: is CUDA right, then how fast.
#
#   1. environment: nvidia-smi, which python has a CUDA torch
#   2. python: this repo's .venv if its torch sees CUDA; else the machine's python3 with PYTHONPATH=repo (slnl is pure
#      Python: nothing is installed, nothing fetched)
#   3. check: `slnl bench check` -- the engine's gradient pass with fused and reference non-local on CUDA in float32
#      against a float64 CPU reference of the same weights (heads, loss, gradients; tolerances in
#      slnl.bench.check.CHECK_TOL), fused vs reference on CUDA, a bf16-autocast pass finite  ->  device_check.json
#   4. kernels: `slnl bench kernels` -- bf16 training with the package's kernels; at every step each
#      non-local's attention inputs through the package's kernels and through cuDNN attention alone (is cuDNN
#      attention still NaN-prone for this model?)  ->  check_kernels.json
#   5. bench: `slnl bench suite gpu` (the engine's training step: the plain eager path and the candidate fast paths
#      at batch 32 and 128, each configuration in its own process, per-configuration timeout, the JSON rewritten
#      after each one, the throughput goal judged at the end)  ->  gpu.json. Rows past the budget
#      (SLNL_BENCH_BUDGET, default 180 s: about four rows when two of them compile) are recorded as skipped;
#      SLNL_SUITE=gpu-ablation measures each option alone.
#   6. markdown table of what this run measured  ->  README.md
#
# Output goes to $OUT if set (the device tool's folder), else results/bench. Every step has its own timeout and the
# script goes on after a failing step; a summary is printed last. Usage: bash slnl/bench/device_check.sh
# Dry run of the same steps on a CPU machine:
#   SLNL_DEVICE=cpu SLNL_SUITE=cpu-smoke SLNL_CHECK_PRESETS=cpu SLNL_KERNEL_PRESETS=cpu SLNL_KERNEL_STEPS=2 \
#   SLNL_KERNEL_CANDIDATE=math OUT=/tmp/x bash ...   (no cuDNN on a CPU: the math kernel stands in)
set -uo pipefail
DEVICE="${SLNL_DEVICE:-cuda}"
SUITE="${SLNL_SUITE:-gpu}"
CHECK_PRESETS="${SLNL_CHECK_PRESETS:-cpu,ntu}"
KERNEL_PRESETS="${SLNL_KERNEL_PRESETS:-kinetics,ntu}"
KERNEL_CANDIDATE="${SLNL_KERNEL_CANDIDATE:-cudnn}"
BENCH_BUDGET="${SLNL_BENCH_BUDGET:-180}"
cd "$(dirname "$0")/../.."
REPO=$PWD
OUTD="${OUT:-$REPO/results/bench}"
mkdir -p "$OUTD"
LOG="$OUTD/device_check.log"
: >"$LOG"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
T_START=$(date +%s)
SUMMARY=()

# step NAME LIMIT_S CMD...: echo the command, run it under `timeout`, log it, record the verdict, never abort.
step() {
  local name=$1 limit=$2
  shift 2
  local t0 rc dt verdict
  t0=$(date +%s)
  echo "=== [$name] limit ${limit}s, t+$((t0 - T_START))s" | tee -a "$LOG"
  echo "+ $*" | tee -a "$LOG"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  dt=$(($(date +%s) - t0))
  if [ "$rc" -eq 0 ]; then verdict="ok"
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then verdict="TIMEOUT"
  else verdict="FAILED (exit $rc)"; fi
  SUMMARY+=("$(printf '%-10s %-18s %4ss' "$name" "$verdict" "$dt")")
  return 0
}

# ---------------------------------------------------------------------------------------------------- 1. environment
step env 30 bash -c 'uname -m; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv || true;
  for p in .venv/bin/python python3; do
    command -v "$p" >/dev/null && "$p" -c "import sys, torch; print(sys.executable, sys.version.split()[0], \"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"available\", torch.cuda.is_available())" || echo "$p: no torch"
  done'

# ---------------------------------------------------------------------------------------------------- 2. python
PY=""
usable_torch() {  # a torch that can run on $DEVICE
  "$1" -c "import sys, torch; sys.exit(0 if '$DEVICE' == 'cpu' or torch.cuda.is_available() else 1)" >/dev/null 2>&1
}
if [ -x .venv/bin/python ] && usable_torch .venv/bin/python; then
  PY=$REPO/.venv/bin/python
  echo "python: $PY (repo venv)" | tee -a "$LOG"
elif command -v python3 >/dev/null && usable_torch python3; then
  # A GPU machine's python3 (e.g. /opt/torch/.venv/bin/python3, torch 2.11 + CUDA) may itself be a venv: a
  # `venv --system-site-packages` made from it would see the base interpreter's packages, not its torch. slnl is pure
  # Python, so the machine's python3 with the repository on PYTHONPATH runs it without installing anything.
  PY=$(command -v python3)
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
  echo "python: $PY with PYTHONPATH=$REPO" | tee -a "$LOG"
else
  echo "no python whose torch can run on $DEVICE (.venv, python3): nothing to check" | tee -a "$LOG"
  SUMMARY+=("python     FAILED (no torch for $DEVICE)")
fi

if [ -n "$PY" ]; then
  step import 60 "$PY" -c 'import slnl, slnl.bench.cli, slnl.models, torch; print("slnl from", slnl.__file__); print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")'

  # ------------------------------------------------------------------------------------------------ 3. correctness
  step check 120 "$PY" -m slnl bench check --device "$DEVICE" --presets "$CHECK_PRESETS" --json "$OUTD/device_check.json"

  # ------------------------------------------------------------------------------------------------ 4. kernels
  step kernels 90 "$PY" -m slnl bench kernels --device "$DEVICE" --presets "$KERNEL_PRESETS" \
    --candidate "$KERNEL_CANDIDATE" --steps "${SLNL_KERNEL_STEPS:-20}" --json "$OUTD/check_kernels.json"

  # ------------------------------------------------------------------------------------------------ 5. throughput
  # The suite's own budget ends it cleanly before the step's hard timeout.
  step bench $((BENCH_BUDGET + 40)) "$PY" -m slnl bench suite "$SUITE" --device "$DEVICE" --budget-s "$BENCH_BUDGET" \
    --json "$OUTD/$SUITE.json"

  # ------------------------------------------------------------------------------------------------ 6. markdown
  step markdown 30 "$PY" -m slnl bench table --md "$OUTD/README.md"
fi

# ---------------------------------------------------------------------------------------------------- summary
{
  echo
  echo "=================== device_check summary (total $(($(date +%s) - T_START)) s) ==================="
  printf '%s\n' "${SUMMARY[@]}"
  if [ -n "$PY" ]; then
    "$PY" - "$OUTD" "$SUITE" <<'EOF' || true
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
chk = d / "device_check.json"
if chk.exists():
    c = json.loads(chk.read_text())
    print(f"check: {'PASSED' if c.get('passed') else 'FAILED'} on {c.get('device')}")
    for preset, e in c.get("presets", {}).items():
        for k, v in e.items():
            if isinstance(v, dict):
                print(f"  {preset:8s} {k:28s} " + " ".join(f"{kk}={vv:.1e}" if isinstance(vv, float) else f"{kk}={vv}"
                                                       for kk, vv in v.items()))
ker = d / "check_kernels.json"
if ker.exists():
    k = json.loads(ker.read_text())
    print(f"{k.get('candidate')} attention: {'finite' if k.get('passed') else 'NOT finite'} ({k.get('steps')} steps)")
    for preset, e in k.get("presets", {}).items():
        print(f"  {preset:8s} first non-finite {k.get('candidate')} step {e.get('first_nonfinite_step_candidate')}, "
              f"max rel grad diff {e.get('max_rel_grad_diff', float('nan')):.1e} over {e.get('compared')} calls")
suite = d / f"{sys.argv[2]}.json"
if not suite.exists():
    sys.exit(f"no {suite}")
g = json.loads(suite.read_text())
print(f"bench {g['suite']} ({g.get('suite_wall_s', float('nan')):.0f} s):")
for r in g["results"]:
    if "error" in r:
        print(f"  {r['name']:45s} ERROR {r['error'][:100]}")
        continue
    tr = r.get("train", {})
    mfu = tr.get("mfu")
    print(f"  {r['name']:45s} train {tr.get('samples_per_s', float('nan')):9.1f}/s"
          f"  peak {r['peak_memory_bytes'] / 2**30:6.2f} GiB"
          f"  {tr.get('flops_per_sample', float('nan')) / 1e9:7.2f} GFLOP/sample"
          f"  MFU {'-' if mfu is None else f'{100 * mfu:.1f}%'}")
if "goal" in g:
    print("goal: " + json.dumps(g["goal"]))
EOF
  fi
  echo "files: $(ls "$OUTD" | tr '\n' ' ')"
} 2>&1 | tee -a "$LOG"
