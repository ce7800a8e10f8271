"""Data-parallel training with torchrun: two CPU processes over gloo train as one process does."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import trainval
from trainval.cli import main

from cifar_files import write_cifar10_folder

WORKER = Path(__file__).with_name("ddp_worker.py")


def torchrun(nproc: int, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parent)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def fit_in(nproc: int, out: Path, *options: str, expect_ok: bool = True) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    done = torchrun(nproc, str(WORKER), str(out), *options)
    if expect_ok:
        assert done.returncode == 0, done.stderr[-3000:]
        return [torch.load(out / f"rank{rank}.pt") for rank in range(nproc)]
    assert done.returncode != 0
    return []


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (torchrun starts its workers in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    family, index = [pid], 0
    while index < len(family):
        family += children.get(family[index], [])
        index += 1
    for member in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def assert_same_weights(first: dict, second: dict, tolerance: float) -> None:
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=tolerance, atol=tolerance, msg=name)


# Even batches, a last batch of 5 shared 3 + 2, and that with class weights and MixUp/CutMix (images mixed
# across the two processes' shares).
@pytest.mark.parametrize("samples, extra", [(32, ()), (29, ()), (29, ("--class-weight", "balanced", "--mix"))])
def test_two_processes_reach_the_weights_of_one_with_the_same_global_batch(tmp_path, samples, extra):
    one = fit_in(1, tmp_path / "one", "--samples", str(samples), *extra)[0]
    two = fit_in(2, tmp_path / "two", "--samples", str(samples), *extra)
    assert two[0]["world_size"] == 2
    assert_same_weights(two[0]["weights"], two[1]["weights"], 0)  # the ranks hold identical weights
    assert_same_weights(one["weights"], two[0]["weights"], 1e-5)
    for key in ("loss", "acc", "val_loss", "val_acc"):  # metrics are reduced over both processes
        assert one["history"][key] == pytest.approx(two[0]["history"][key], rel=1e-5), key
    assert two[1]["history"] == two[0]["history"]


def test_two_processes_with_muon_keep_identical_weights_close_to_one_processes(tmp_path):
    one = fit_in(1, tmp_path / "one", "--muon")[0]
    two = fit_in(2, tmp_path / "two", "--muon")
    assert_same_weights(two[0]["weights"], two[1]["weights"], 0)  # every rank takes the same orthogonalised step
    assert_same_weights(one["weights"], two[0]["weights"], 1e-5)


# 3 processes, 10 images in batches of 4: the last batch of 2 could not give each process one, so it joins the one before.
@pytest.mark.parametrize("nproc, samples, batch", [(2, 29, 8), (3, 10, 4)])
def test_every_sample_is_trained_on_exactly_once_per_epoch_across_processes_in_a_new_order(tmp_path, nproc, samples,
                                                                                          batch):
    ranks = fit_in(nproc, tmp_path / "out", "--samples", str(samples), "--batch-size", str(batch), "--epochs", "3")
    orders = []
    for epoch in range(3):
        seen = [rank["seen"][epoch] for rank in ranks]
        assert sorted(sum(seen, [])) == list(range(samples)), f"epoch {epoch}"  # each once, none twice
        orders.append(seen[0])
    assert orders[0] != orders[1] != orders[2]  # reshuffled every epoch
    assert all(rank["history"] == ranks[0]["history"] for rank in ranks)


def test_a_failure_on_one_process_ends_the_run_at_once_instead_of_hanging(tmp_path):
    started = time.monotonic()
    fit_in(2, tmp_path / "out", "--epochs", "50", "--crash-at", "3", "--crash-rank", "1", expect_ok=False)
    assert time.monotonic() - started < 120  # the group's timeout is 30 minutes: a hang would show


def test_a_data_parallel_fit_killed_midway_resumes_to_the_uninterrupted_weights(tmp_path):
    options = ("--samples", "29", "--epochs", "3", "--norm", "--dropout")
    straight = fit_in(2, tmp_path / "straight", *options)
    backup = tmp_path / "backup"
    fit_in(2, tmp_path / "crashed", *options, "--backup", str(backup), "--crash-at", "7", expect_ok=False)
    assert (backup / "last.safetensors").exists()
    resumed = fit_in(2, tmp_path / "resumed", *options, "--backup", str(backup))
    for rank in range(2):  # BatchNorm per process and dropout per process, restored exactly
        assert_same_weights(straight[rank]["weights"], resumed[rank]["weights"], 0)
        assert straight[rank]["history"] == resumed[rank]["history"]


def test_a_checkpoint_of_two_processes_is_refused_by_one_with_the_count_to_use(tmp_path):
    backup = tmp_path / "backup"
    fit_in(2, tmp_path / "crashed", "--backup", str(backup), "--crash-at", "5", expect_ok=False)
    done = subprocess.run([sys.executable, str(WORKER), str(tmp_path), "--backup", str(backup)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "--nproc 2" in done.stderr


@pytest.fixture
def cifar_dir_for_workers(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TRAINVAL_DATA", raising=False)
    write_cifar10_folder(tmp_path / "data", train_per_batch=8, test_size=12)
    return tmp_path / "data"


def test_trainval_train_nproc_runs_torchrun_and_only_rank_0_prints_and_writes(cifar_dir_for_workers, tmp_path):
    command = [sys.executable, "-m", "trainval", "train", "--data-dir", str(cifar_dir_for_workers), "--preset",
               "quick", "--epochs", "2", "--batch-size", "8", "--holdout-size", "10", "--verbose", "2",
               "--name", "ddp", "--nproc", "2"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Accuracy:") == 1 and done.stdout.count("Epoch 2/2") == 1
    assert "Data-parallel: 2 processes (gloo)" in done.stdout and "global batch of 8 images (4 per process)" in done.stdout
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["ddp"]
    result = json.loads((tmp_path / "runs" / "ddp" / "result.json").read_text())
    assert result["epochs_trained"] == 2 and result["train_samples"] == 30
    assert trainval.load_model(tmp_path / "runs" / "ddp").num_classes == 10


def test_a_killed_trainval_train_nproc_run_resumes_under_torchrun_to_the_uninterrupted_result(
        cifar_dir_for_workers, tmp_path):
    def train(*extra: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "trainval", "train", "--data-dir", str(cifar_dir_for_workers),
                   "--preset", "quick", "--epochs", "15", "--batch-size", "8", "--holdout-size", "10",
                   "--verbose", "0", "--checkpoint-every", "1", "--nproc", "2", *extra]
        return subprocess.Popen(command, cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})

    assert train("--name", "straight").wait(timeout=300) == 0
    killed = train("--name", "killed")
    checkpoint = tmp_path / "runs" / "killed" / "checkpoints" / "last.safetensors"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    kill_tree(killed.pid)
    killed.wait()
    assert not (tmp_path / "runs" / "killed" / "result.json").exists(), "the run ended before it could be killed"
    resumed = subprocess.run([sys.executable, "-m", "trainval", "train", "--resume", "runs/killed", "--nproc", "2"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming runs/killed" in resumed.stdout
    results = [json.loads((tmp_path / "runs" / name / "result.json").read_text()) for name in ("straight", "killed")]
    for key in ("test_loss", "test_accuracy", "epochs_trained"):
        assert results[0][key] == results[1][key], key
    weights = [trainval.load_model(tmp_path / "runs" / name).module.state_dict() for name in ("straight", "killed")]
    assert_same_weights(*weights, 0)


def test_launch_options_that_cannot_work_are_usage_errors_before_any_process_starts(cifar_dir, capsys):
    base = ["train", "--data-dir", str(cifar_dir), "--nproc", "2", "--name", "never"]
    assert main([*base, "--sync-bn"]) == 2 and "GPUs only" in capsys.readouterr().err
    assert main([*base, "--seeds", "2"]) == 2 and "--seeds" in capsys.readouterr().err
    assert main([*base, "--holdout-size", "0"]) == 2 and "holdout-size" in capsys.readouterr().err
    assert not Path("runs").exists()


def test_sync_bn_on_cpus_is_a_clear_usage_error(cifar_dir, capsys):
    assert main(["train", "--data-dir", str(cifar_dir), "--sync-bn", "--epochs", "1", "--holdout-size", "10",
                 "--verbose", "0"]) == 2
    assert "more than one process" in capsys.readouterr().err


def test_nproc_below_one_is_a_usage_error(capsys):
    assert main(["train", "--nproc", "0"]) == 2
    assert "--nproc" in capsys.readouterr().err
