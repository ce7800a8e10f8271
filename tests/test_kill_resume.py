"""SIGKILL a real `trainval train` process at several moments, resume it, and get the uninterrupted result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cifar_files import write_cifar10_folder

# fast preset (Muon's momentum and Newton-Schulz steps, crops in the first epoch (3 of 9, scaled to 1 of 4)
# then whole images, alternating flips, translation, label smoothing, selective TTA), 4 epochs of 8 steps
# on 512 training images, a checkpoint after every step.
ARGS = ["--preset", "fast", "--epochs", "4", "--batch-size", "64", "--holdout-size", "0.2", "--seed", "3",
        "--checkpoint-every", "1", "--verbose", "0"]
# 0: before the first checkpoint; 8/9: around the first epoch's end, where crops give way to whole images
KILL_AFTER_CHECKPOINTS = [0, 2, 8, 9, 25]


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "trainval", "train", *args]


def _run_to_end(workdir: Path, *args: str) -> str:
    done = subprocess.run(_command(*args), cwd=workdir, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _outcome(run: Path) -> dict:
    """Everything the run produced that must not depend on interruptions (timings left out)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    result = json.loads((run / "result.json").read_text())
    return {
        "final_weights": (run / "model" / "model.safetensors").read_bytes(),
        "best_weights": (run / "checkpoints" / "best" / "model.safetensors").read_bytes(),
        "rows": [{key: value for key, value in row.items() if key != "seconds"} for row in rows],
        "test": (result["test_loss"], result["test_accuracy"]),
    }


def _kill_after_checkpoints(process: subprocess.Popen, run: Path, count: int) -> None:
    """SIGKILL ``process`` once its checkpoint file has been replaced ``count`` times (0: once the run folder exists)."""
    checkpoint = run / "checkpoints" / "last.safetensors"
    seen: set[tuple[int, int]] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if count == 0 and (run / "config.json").exists():
            break
        try:
            status = os.stat(checkpoint)
            seen.add((status.st_ino, status.st_mtime_ns))  # each atomic replace: a new file, a new stamp
        except FileNotFoundError:
            pass
        if count and len(seen) >= count:
            break
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kill")
    write_cifar10_folder(folder / "data", train_per_batch=128, test_size=50)
    return folder


@pytest.fixture(scope="module")
def uninterrupted(workdir):
    _run_to_end(workdir, "--data-dir", "data", "--name", "uninterrupted", *ARGS)
    return _outcome(workdir / "runs" / "uninterrupted")


@pytest.mark.parametrize("count", KILL_AFTER_CHECKPOINTS)
def test_sigkill_at_any_moment_then_resume_gives_bit_identical_results(workdir, uninterrupted, count):
    name = f"killed-{count}"
    run = workdir / "runs" / name
    process = subprocess.Popen(_command("--data-dir", "data", "--name", name, *ARGS), cwd=workdir,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_after_checkpoints(process, run, count)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed: make it longer"
    out = _run_to_end(workdir, "--resume", str(Path("runs") / name), "--data-dir", "data")
    if count:
        assert f"Resuming {Path('runs') / name} at epoch" in out  # from a checkpoint, not from scratch
    assert _outcome(run) == uninterrupted
