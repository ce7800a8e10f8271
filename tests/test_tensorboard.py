"""TensorBoard logs, read back with TensorBoard's own event reader: they hold what metrics.csv and result.json
hold, each step once, after a crash and a resume too."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import trainval
from trainval.callbacks import BackupAndRestore, Callback, CSVLogger, TensorBoard
from trainval.cli import main
from trainval.errors import ConfigError
from trainval.optimizers import SGD
from trainval.optimizers.schedules import WarmupLinearDecay

from cifar_files import write_cifar10_folder
from tiny_data import TinyNet, tiny_images

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

EPOCHS, BATCH = 3, 16  # 56 training samples: 4 updates an epoch, 12 in all


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in ``folder`` as TensorBoard shows it: (step, value) pairs, purged steps dropped."""
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def texts(folder: Path) -> dict[str, list[str]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [event.tensor_proto.string_val[0].decode() for event in events.Tensors(tag)]
            for tag in events.Tags()["tensors"]}


def as_logged(value: str) -> float:
    """A metrics.csv number as TensorBoard stores it (float32)."""
    return float(np.float32(float(value)))


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def epoch_series(rows: list[dict[str, str]], column: str) -> list[tuple[int, float]]:
    return [(int(row["epoch"]), as_logged(row[column])) for row in rows]


class Crash(Exception):
    pass


class CrashAfter(Callback):
    """Stands in for a power cut after ``steps`` updates, or at the end of epoch ``epoch`` once the callbacks
    before it (TensorBoard, the CSV log) have written it but before the checkpoint."""

    def __init__(self, steps: int | None = None, epoch: int | None = None) -> None:
        super().__init__()
        self.steps, self.epoch, self.done = steps, epoch, 0

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done == self.steps:
            raise Crash

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Crash


def fit(folder: Path, update_freq="batch", crash: CrashAfter | None = None) -> trainval.Model:
    images, labels = tiny_images(count=70, size=8)
    torch.manual_seed(0)
    model = trainval.Model(TinyNet(), num_classes=4)
    model.compile(optimizer=SGD(learning_rate=0.05, momentum=0.9, nesterov=True, schedule=WarmupLinearDecay()))
    callbacks = [TensorBoard(folder / "tb", update_freq=update_freq), CSVLogger(folder / "log.csv"),
                 BackupAndRestore(folder / "backup", save_freq=3, delete_checkpoint=False)]
    model.fit(images, labels, batch_size=BATCH, epochs=EPOCHS, validation_split=0.2, seed=5, verbose=0,
              callbacks=callbacks + ([crash] if crash else []))
    return model


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    fit(folder)
    return folder


def test_epoch_scores_and_learning_rates_are_those_of_metrics_csv_with_keras_tags_and_steps(uninterrupted):
    rows = csv_rows(uninterrupted / "log.csv")
    train, validation = scalars(uninterrupted / "tb" / "train"), scalars(uninterrupted / "tb" / "validation")
    assert set(train) == {"epoch_loss", "epoch_acc", "epoch_learning_rate"}
    assert set(validation) == {"epoch_loss", "epoch_acc"}
    for tag, column in (("epoch_loss", "loss"), ("epoch_acc", "acc"), ("epoch_learning_rate", "lr")):
        assert train[tag] == epoch_series(rows, column), tag
    for tag, column in (("epoch_loss", "val_loss"), ("epoch_acc", "val_acc")):
        assert validation[tag] == epoch_series(rows, column), tag
    assert [step for step, _ in train["epoch_loss"]] == [0, 1, 2]


def test_update_freq_batch_logs_the_running_scores_and_learning_rate_after_every_update(uninterrupted):
    rows = csv_rows(uninterrupted / "log.csv")
    batches = scalars(uninterrupted / "tb" / "train_batches")
    assert set(batches) == {"batch_loss", "batch_acc", "batch_learning_rate"}
    assert [step for step, _ in batches["batch_loss"]] == list(range(1, 13))
    # The running averages at an epoch's last update are the epoch's scores; the last rate is the epoch's.
    last_updates = dict(batches["batch_loss"])
    assert [last_updates[4 * (epoch + 1)] for epoch in range(EPOCHS)] == [as_logged(row["loss"]) for row in rows]
    assert dict(batches["batch_learning_rate"])[12] == as_logged(rows[-1]["lr"])
    assert len(set(dict(batches["batch_learning_rate"]).values())) > 1  # the schedule moves it


def test_the_configuration_is_written_as_text(uninterrupted):
    config = texts(uninterrupted / "tb" / "train")["config/text_summary"]
    assert len(config) == 1 and '"batch_size": 16' in config[0] and '"num_classes": 4' in config[0]


def test_update_freq_n_writes_every_n_updates_and_epoch_writes_no_batch_scores(tmp_path):
    fit(tmp_path / "every5", update_freq=5)
    assert [step for step, _ in scalars(tmp_path / "every5" / "tb" / "train_batches")["batch_loss"]] == [5, 10]
    fit(tmp_path / "epoch", update_freq="epoch")
    assert not (tmp_path / "epoch" / "tb" / "train_batches").exists()
    assert len(scalars(tmp_path / "epoch" / "tb" / "train")["epoch_loss"]) == EPOCHS


@pytest.mark.parametrize("crash", [CrashAfter(steps=2), CrashAfter(steps=5), CrashAfter(steps=11),
                                   CrashAfter(epoch=1)], ids=["step2", "step5", "step11", "end-of-epoch1"])
def test_a_fit_crashed_and_resumed_logs_every_step_once_with_the_uninterrupted_values(tmp_path, uninterrupted,
                                                                                      crash):
    with pytest.raises(Crash):
        fit(tmp_path, crash=crash)  # checkpoints every 3 updates: the crash leaves steps logged past the last one
    fit(tmp_path)  # the same call again resumes from the checkpoint
    for run in ("train", "validation", "train_batches"):
        assert scalars(tmp_path / "tb" / run) == scalars(uninterrupted / "tb" / run), run
    assert len(texts(tmp_path / "tb" / "train")["config/text_summary"]) == 1


@pytest.mark.parametrize("update_freq", ["often", 0, -3, True, 2.5])
def test_a_bad_update_freq_is_a_config_error(tmp_path, update_freq):
    with pytest.raises(ConfigError, match="update_freq must be 'epoch', 'batch' or a number of steps"):
        TensorBoard(tmp_path, update_freq=update_freq)


def test_without_the_tensorboard_package_the_callback_and_the_option_say_what_to_install(
        tmp_path, cifar_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    with pytest.raises(ConfigError, match=r"pip install 'trainval\[tensorboard\]'"):
        TensorBoard(tmp_path / "logs")
    assert main(["train", "--data-dir", str(cifar_dir), "--epochs", "1", "--tensorboard"]) == 2
    assert capsys.readouterr().err == ("trainval: error: TensorBoard logging needs the tensorboard package: "
                                       "pip install 'trainval[tensorboard]'\n")
    assert not Path("runs").exists()


TRAIN = ["--preset", "94", "--epochs", "2", "--batch-size", "64", "--holdout-size", "0.2", "--seed", "3",
         "--verbose", "0"]  # 640 training images, 512 after the holdout: 8 updates an epoch


def run_folder_logs(run: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    return {folder.name: scalars(folder) for folder in sorted((run / "tensorboard").iterdir())}


def check_against_the_run_files(run: Path, logs: dict) -> None:
    rows = csv_rows(run / "metrics.csv")
    result = json.loads((run / "result.json").read_text())
    assert logs["train"]["epoch_loss"] == epoch_series(rows, "loss")
    assert logs["validation"]["epoch_acc"] == epoch_series(rows, "val_acc")
    assert logs["test"] == {"epoch_loss": [(1, as_logged(result["test_loss"]))],
                            "epoch_acc": [(1, as_logged(result["test_accuracy"]))]}
    steps = [step for step, _ in logs["train_batches"]["batch_loss"]]
    assert steps == list(range(1, 17))


def test_trainval_train_tensorboard_logs_the_run_in_its_folder_and_a_sigkilled_run_resumes_them_exactly(tmp_path):
    write_cifar10_folder(tmp_path / "data", train_per_batch=128, test_size=50)
    command = [sys.executable, "-m", "trainval", "train", "--data-dir", "data", *TRAIN, "--tensorboard", "batch"]
    done = subprocess.run([*command, "--name", "straight"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    straight = tmp_path / "runs" / "straight"
    assert json.loads((straight / "config.json").read_text())["config"]["tensorboard"] == "batch"
    logs = run_folder_logs(straight)
    assert sorted(logs) == ["test", "train", "train_batches", "validation"]
    check_against_the_run_files(straight, logs)
    assert '"preset": "94"' in texts(straight / "tensorboard" / "train")["config/text_summary"][0]
    assert texts(straight / "tensorboard" / "test")["summary/text_summary"][0].startswith("Accuracy: ")

    killed = subprocess.Popen([*command, "--name", "killed", "--checkpoint-every", "4"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "runs" / "killed" / "checkpoints" / "last.safetensors"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(0.05)  # a step or so past the checkpoint
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    resumed = subprocess.run([sys.executable, "-m", "trainval", "train", "--resume", "runs/killed", "--data-dir",
                              "data"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming runs/killed at epoch" in resumed.stdout
    assert run_folder_logs(tmp_path / "runs" / "killed") == logs


def test_a_data_parallel_run_logs_from_its_first_process_only(tmp_path):
    write_cifar10_folder(tmp_path / "data", train_per_batch=8, test_size=12)
    done = subprocess.run([sys.executable, "-m", "trainval", "train", "--data-dir", "data", "--preset", "quick",
                           "--epochs", "2", "--batch-size", "8", "--holdout-size", "10", "--verbose", "0",
                           "--name", "ddp", "--nproc", "2", "--tensorboard", "1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "runs" / "ddp"
    for folder in (run / "tensorboard").iterdir():
        assert len(list(folder.glob("events.out.tfevents.*"))) == 1, folder.name
    logs = run_folder_logs(run)
    rows = csv_rows(run / "metrics.csv")
    assert logs["train"]["epoch_loss"] == epoch_series(rows, "loss")
    assert logs["validation"]["epoch_loss"] == epoch_series(rows, "val_loss")
    assert [step for step, _ in logs["train_batches"]["batch_loss"]] == list(range(1, 9))  # 30 images: 4 batches
