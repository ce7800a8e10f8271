#!/usr/bin/env bash
# Prove trainval's CUDA path and time it, in one command (see docs/performance.md, "The GPU check").
#
#   benchmarks/gpu_check.sh           on a CUDA GPU machine with PyTorch installed: under 8 minutes on one H200
#   benchmarks/gpu_check.sh --smoke   anywhere, CPU included, in a minute or two: every step, on tiny data
#   benchmarks/gpu_check.sh --96      on a CUDA GPU machine: one seed of the 96 preset (37 epochs), its own
#                                     command because it does not fit beside the others in one 10-minute call
#
# It prints the machine's facts, runs the `gpu` tests (tests/test_gpu.py), then `trainval bench` of the
# 94 preset (eager, then with --compile) and of quick, and ends with a summary. Everything it prints also
# goes to one log: $GPU_CHECK_LOG (default ./gpu_check.log), with the bench reports beside it as JSON.
#
# Data: CIFAR-10 from $TRAINVAL_DATA (default ../shared/data/cifar10 next to this checkout) when its
# files are there; otherwise synthetic-cifar10, random images of CIFAR-10's exact shapes, which times
# the recipe exactly and whose accuracy is chance (the output says which). The smoke run uses a folder
# of 60 random images instead, so that each bench trains a few steps.
#
# Budget on one H200 (each step is cut off at its limit, so the whole stays under 8 minutes): set-up
# about 20 s, gpu tests 150 s, bench 94 with 3 seeds 70 s, bench 94 --compile with 2 seeds 200 s (the
# first seed compiles, the second reuses the compiled code: its train_s is the compiled speed), bench
# quick with 3 seeds 30 s; --96 alone: bench 96 with 1 seed 540 s (one seed of 96 is about 12x the work of
# one of 94: 3.8x the arithmetic per image for 37 epochs instead of 12).
# These limits are estimates: the script has not yet run on a GPU. The smoke run includes one epoch of 96.
# PyTorch must be installed; trainval is installed from this checkout if it is not importable
# (pip install --no-deps --no-build-isolation -e .), or put on PYTHONPATH where pip cannot.

set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
LOG="${GPU_CHECK_LOG:-gpu_check.log}"
SMOKE=0
ONLY_96=0
case "${1:-}" in
  --smoke) SMOKE=1 ;;
  --96) ONLY_96=1 ;;
  "") ;;
  *) echo "usage: benchmarks/gpu_check.sh [--smoke | --96]" >&2; exit 2 ;;
esac

FAILED=()
STARTED=$SECONDS

# run_step NAME LIMIT_SECONDS COMMAND...: run it with a time limit, say how long it took and how it ended.
run_step() {
  local name="$1" limit="$2"
  shift 2
  echo
  echo "== $name (limit ${limit}s)"
  local began=$SECONDS
  timeout --kill-after=10 "$limit" "$@"
  local status=$?
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "-- $name: CUT OFF at its ${limit}s limit"
    FAILED+=("$name (cut off)")
  elif [ "$status" -ne 0 ]; then
    echo "-- $name: FAILED (exit $status)"
    FAILED+=("$name (exit $status)")
  fi
  echo "-- $name: $((SECONDS - began))s"
}

machine_facts() {
  echo "== machine"
  echo "date (UTC): $(date -u '+%Y-%m-%d %H:%M:%S'), host: $(uname -srm), CPUs: $(getconf _NPROCESSORS_ONLN)"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit,clocks.max.sm --format=csv
  else
    echo "nvidia-smi: not found"
  fi
  "$PY" - <<'EOF'
import platform
import torch
cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
print(f"python {platform.python_version()}, torch {torch.__version__}, built for CUDA {torch.version.cuda}, "
      f"cuDNN {cudnn}")
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    print(f"CUDA GPUs: {torch.cuda.device_count()}; GPU 0: {props.name}, {props.total_memory / 2**30:.0f} GiB, "
          f"compute capability {props.major}.{props.minor}, bf16 {torch.cuda.is_bf16_supported()}")
else:
    print("CUDA GPUs: none seen by torch")
EOF
}

use_this_checkout() {
  if "$PY" -c "import sys, trainval; sys.exit(not trainval.__file__.startswith('$ROOT/src/'))" 2>/dev/null; then
    return
  fi
  echo "installing trainval from $ROOT"
  if ! "$PY" -m pip install --quiet --no-deps --no-build-isolation -e "$ROOT"; then
    echo "pip could not install it: using PYTHONPATH=$ROOT/src"
    export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
  fi
}

# Sets DATASET and DATA_OPTIONS for the benches.
choose_data() {
  if [ "$SMOKE" -eq 1 ]; then
    local folder
    SCRATCH="$(mktemp -d)"
    trap 'rm -rf "$SCRATCH"' EXIT
    folder="$SCRATCH/images"
    "$PY" - "$folder" <<'EOF'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
rng = np.random.default_rng(0)
for label in range(10):
    (Path(sys.argv[1]) / f"class{label}").mkdir(parents=True)
    for number in range(6):
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(Path(sys.argv[1]) / f"class{label}" / f"{number}.png")
EOF
    DATASET="folder:$folder"
    DATA_OPTIONS=()
    echo "data: smoke run, a folder of 60 random 32x32 images in 10 classes ($folder): a few steps per bench"
    return
  fi
  local data_dir="${TRAINVAL_DATA:-$ROOT/../shared/data/cifar10}"
  if [ -f "$data_dir/cifar-10-batches-py/test_batch" ] || [ -f "$data_dir/cifar-10-python.tar.gz" ]; then
    DATASET="cifar10"
    DATA_OPTIONS=(--data-dir "$data_dir")
    echo "data: the real CIFAR-10 in $data_dir"
  else
    DATASET="synthetic-cifar10"
    DATA_OPTIONS=()
    echo "data: NOTE: no CIFAR-10 files in $data_dir, so the benches train on synthetic-cifar10: random images"
    echo "      of CIFAR-10's exact shapes and class count. Their times hold for CIFAR-10 (a step costs the same"
    echo "      whatever the pixels); their accuracies are chance (about 10%) and mean nothing."
  fi
}

summary() {
  echo
  echo "== summary"
  "$PY" - "${LOG%.log}" <<'EOF'
import json
import sys
from pathlib import Path
stem = sys.argv[1]
for label, suffix in (("94", "94"), ("94 --compile", "94-compile"), ("quick", "quick"), ("96", "96")):
    path = Path(f"{stem}-{suffix}.json")
    if not path.exists():
        print(f"{label:<13} no report (the step failed or was skipped)")
        continue
    report = json.loads(path.read_text())
    spread = report["summary"]
    rows = ", ".join(f"seed {row['seed']} {row['train_seconds']:.2f}s (compile {row['compile_seconds']:.1f}s)"
                     for row in report["seeds"])
    print(f"{label:<13} on {report['machine']['device']} ({report['machine'].get('gpu', report['machine']['cpu'])}), "
          f"{report['dataset']}: train {spread['train_seconds']['mean']:.2f} s mean, wall "
          f"{spread['wall_seconds']['mean']:.2f} s, {spread['images_per_second']['mean']:.0f} images/s, test accuracy "
          f"{100 * spread['test_accuracy']['mean']:.2f}%; {rows}")
EOF
}

main() {
  echo "trainval GPU check${1:+ ($1)}, $ROOT, log $LOG"
  machine_facts
  if [ "$SMOKE" -eq 0 ] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "ERROR: torch sees no CUDA GPU here; run benchmarks/gpu_check.sh --smoke on a CPU machine"
    return 2
  fi
  use_this_checkout
  choose_data
  local bench=("$PY" -m trainval bench --dataset "$DATASET" "${DATA_OPTIONS[@]}")
  if [ "$ONLY_96" -eq 1 ]; then
    run_step "bench 96" 540 "${bench[@]}" --preset 96 --seeds 1 --json "${LOG%.log}-96.json"
    finish
    return
  fi
  local seeds=(3 2 3)
  if [ "$SMOKE" -eq 1 ]; then
    seeds=(1 1 1)
  fi
  run_step "gpu tests" 150 "$PY" -m pytest -m gpu "$ROOT/tests/test_gpu.py" -q -rs -p no:cacheprovider \
    --rootdir "$ROOT"
  run_step "bench 94" 70 "${bench[@]}" --preset 94 --seeds "${seeds[0]}" --json "${LOG%.log}-94.json"
  if [ "$SMOKE" -eq 1 ]; then
    echo
    echo "== bench 94 --compile: left out of the smoke run (compiling takes minutes on a CPU; tests/test_compile.py"
    echo "   covers --compile there)"
  else
    run_step "bench 94 --compile" 200 "${bench[@]}" --preset 94 --seeds "${seeds[1]}" --compile \
      --json "${LOG%.log}-94-compile.json"
  fi
  run_step "bench quick" 30 "${bench[@]}" --preset quick --seeds "${seeds[2]}" --json "${LOG%.log}-quick.json"
  if [ "$SMOKE" -eq 1 ]; then
    run_step "bench 96 (one epoch)" 300 "${bench[@]}" --preset 96 --epochs 1 --seeds 1 --json "${LOG%.log}-96.json"
  fi
  finish
}

# The summary, the total time and the verdict; returns 1 when a step failed or was cut off.
finish() {
  summary
  echo
  echo "total: $((SECONDS - STARTED))s (budget on one H200: $([ "$ONLY_96" -eq 1 ] && echo 560 || echo 480)s)"
  if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "FAILED: ${FAILED[*]}"
    return 1
  fi
  echo "all steps passed"
}

rm -f "${LOG%.log}"-94.json "${LOG%.log}"-94-compile.json "${LOG%.log}"-quick.json "${LOG%.log}"-96.json
main "$@" 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
