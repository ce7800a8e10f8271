"""benchmarks/gpu_check.sh, the one command that proves the CUDA path: its --smoke run goes through every
step on any machine, so the script cannot rot between the rare runs on a GPU."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_check.sh"


def _check(*args: str, log: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_LOG": str(log), "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=log.parent,
                          timeout=600)


def test_the_smoke_run_goes_through_every_step_and_writes_one_log_with_the_bench_reports(tmp_path):
    done = _check("--smoke", log=tmp_path / "check.log")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = (tmp_path / "check.log").read_text()
    assert log == done.stdout
    steps = ["== machine", "== gpu tests", "== bench 94 (", "== bench 94 --compile", "== bench quick",
             "== bench 96 (one epoch)", "== summary"]
    assert [log.index(step) for step in steps] == sorted(log.index(step) for step in steps)
    assert f"torch {torch.__version__}" in log and "all steps passed" in log and re.search(r"^total: \d+s", log, re.M)
    if not torch.cuda.is_available():
        assert re.search(r"^\d+ skipped in", log, re.M)  # nothing but skips: no failure, no pass
    for preset in ("94", "quick", "96"):
        report = json.loads((tmp_path / f"check-{preset}.json").read_text())
        assert report["preset"]["name"] == preset and len(report["seeds"]) == 1
        assert re.search(rf"^{preset} +on {report['machine']['device']} ", log, re.M)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a CUDA GPU")
@pytest.mark.parametrize("args", [(), ("--96",)], ids=["full", "96"])
def test_without_a_gpu_the_full_run_stops_at_once_and_points_to_the_smoke_run(tmp_path, args):
    done = _check(*args, log=tmp_path / "check.log")
    assert done.returncode == 2
    assert "torch sees no CUDA GPU here; run benchmarks/gpu_check.sh --smoke" in done.stdout
    assert "== gpu tests" not in done.stdout


def test_an_unknown_option_is_a_usage_error(tmp_path):
    done = _check("--fast", log=tmp_path / "check.log")
    assert done.returncode == 2 and "usage: benchmarks/gpu_check.sh [--smoke | --96]" in done.stderr
