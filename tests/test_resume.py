"""Exact resume: a fit interrupted at any step and resumed ends where an uninterrupted one does, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import trainval
from trainval.callbacks import (BackupAndRestore, Callback, CSVLogger, EarlyStopping, JSONLogger,
                                LearningRateScheduler, Lookahead, ModelCheckpoint)
from trainval.errors import CheckpointError
from trainval.runs.state_file import read_state, write_state
from trainval.optimizers import SGD, Muon
from trainval.optimizers.schedules import WarmupLinearDecay

from tiny_data import TinyNet, tiny_images

EPOCHS, BATCH = 3, 16  # 56 training samples: 4 steps an epoch, 12 in all


class Crash(Exception):
    pass


class CrashAfter(Callback):
    """Stands in for a power cut: stops the process's fit after ``steps`` updates."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self.done = 0

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done == self.steps:
            raise Crash


OPTIMIZERS = {
    "sgd": SGD(learning_rate=0.05, momentum=0.9, nesterov=True, schedule=WarmupLinearDecay()),
    # Muon's momentum buffers and the SGD groups' live in one optimiser state; its filter updates run in bf16.
    "muon": Muon(learning_rate=0.05, momentum=0.6, sgd_lr_ratio=1.0, sgd_weight_decay=1e-3,
                 schedule=WarmupLinearDecay(warmup=0.0, start=1.0, end=0.0)),
}


def _model(optimizer: str = "sgd") -> trainval.Model:
    torch.manual_seed(0)
    model = trainval.Model(TinyNet(), num_classes=4)
    model.compile(optimizer=OPTIMIZERS[optimizer], augmentation=trainval.Augmentation(flip="alternating", translate=1))
    return model


def _fit(folder, crash_after: int | None = None, optimizer: str = "sgd") -> trainval.Model:
    """One fit with every stateful callback; returns the model (raises Crash when told to)."""
    images, labels = tiny_images(count=70, size=8)
    model = _model(optimizer)
    callbacks = [Lookahead(every=3), EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True),
                 LearningRateScheduler(lambda epoch, lr: lr * 0.8), CSVLogger(folder / "log.csv"),
                 JSONLogger(folder / "log.jsonl"), ModelCheckpoint(folder / "best", save_best_only=True),
                 BackupAndRestore(folder / "backup", save_freq=1, delete_checkpoint=False)]
    if crash_after is not None:
        callbacks.append(CrashAfter(crash_after))
    model.fit(images, labels, batch_size=BATCH, epochs=EPOCHS, validation_split=0.2, seed=5, verbose=0,
              callbacks=callbacks)
    return model


def _weights(model: trainval.Model) -> dict[str, np.ndarray]:
    return {name: tensor.detach().cpu().numpy().copy() for name, tensor in model.module.state_dict().items()}


def _rows_without_seconds(path) -> list[str]:
    return [",".join(line.split(",")[:-1]) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module", params=sorted(OPTIMIZERS))
def uninterrupted(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    model = _fit(folder, optimizer=request.param)
    return request.param, folder, _weights(model), model.history.history


@pytest.mark.parametrize("crash_after", [1, 3, 4, 5, 8, 11, 12])
def test_a_fit_crashed_after_any_step_resumes_to_identical_weights_history_and_logs(tmp_path, uninterrupted,
                                                                                      crash_after):
    optimizer, reference_folder, reference_weights, reference_history = uninterrupted
    with pytest.raises(Crash):
        _fit(tmp_path, crash_after=crash_after, optimizer=optimizer)
    resumed = _fit(tmp_path, optimizer=optimizer)  # the same call again: BackupAndRestore finds the checkpoint
    assert resumed.history.history == reference_history
    weights = _weights(resumed)
    assert weights.keys() == reference_weights.keys()
    for name, value in reference_weights.items():
        np.testing.assert_array_equal(weights[name], value, err_msg=name)
    assert _rows_without_seconds(tmp_path / "log.csv") == _rows_without_seconds(reference_folder / "log.csv")
    assert (tmp_path / "best" / "model.safetensors").read_bytes() == \
        (reference_folder / "best" / "model.safetensors").read_bytes()


def test_backup_and_restore_deletes_its_checkpoint_at_the_end_by_default(tmp_path):
    images, labels = tiny_images(count=20, size=8)
    backup = BackupAndRestore(tmp_path / "backup")
    _model().fit(images, labels, batch_size=8, epochs=1, verbose=0, callbacks=[backup])
    assert not (tmp_path / "backup" / "last.safetensors").exists()


def test_a_checkpoint_of_another_fit_is_refused_with_what_differs(tmp_path):
    images, labels = tiny_images(count=20, size=8)
    backup = BackupAndRestore(tmp_path / "backup", delete_checkpoint=False)
    _model().fit(images, labels, batch_size=8, epochs=1, verbose=0, callbacks=[backup])
    with pytest.raises(CheckpointError, match="batch_size 8 there, 4 here"):
        _model().fit(images, labels, batch_size=4, epochs=1, verbose=0, callbacks=[backup])
    with pytest.raises(CheckpointError, match="num_classes 4.*5"):
        torch.manual_seed(0)
        other = trainval.Model(TinyNet(classes=5), num_classes=5)
        other.fit(images, labels % 5, batch_size=8, epochs=1, verbose=0, callbacks=[backup])
    with pytest.raises(CheckpointError, match="callbacks"):
        _model().fit(images, labels, batch_size=8, epochs=1, verbose=0, callbacks=[Lookahead(), backup])


def test_a_second_fit_never_takes_the_first_fits_checkpoint(tmp_path):
    images, labels = tiny_images(count=20, size=8)
    model = _model()
    backup = BackupAndRestore(tmp_path / "backup", delete_checkpoint=False)
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0, callbacks=[backup])
    with pytest.raises(CheckpointError, match="start_step 0 there, 3 here"):
        model.fit(images, labels, batch_size=8, epochs=1, verbose=0, callbacks=[backup])


def test_validation_split_without_a_seed_is_fixed_so_such_a_fit_resumes(tmp_path):
    images, labels = tiny_images(count=40, size=8)
    with pytest.raises(Crash):
        _model().fit(images, labels, batch_size=8, epochs=2, validation_split=0.25, verbose=0,
                     callbacks=[BackupAndRestore(tmp_path), CrashAfter(4)])
    resumed = _model().fit(images, labels, batch_size=8, epochs=2, validation_split=0.25, verbose=0,
                           callbacks=[BackupAndRestore(tmp_path)])
    assert len(resumed.epoch) == 2


def test_a_checkpoint_that_passes_its_checksum_but_points_outside_the_fit_is_refused(tmp_path):
    images, labels = tiny_images(count=20, size=8)
    with pytest.raises(Crash):
        _model().fit(images, labels, batch_size=8, epochs=2, seed=0, verbose=0,
                     callbacks=[BackupAndRestore(tmp_path, save_freq=1), CrashAfter(2)])
    state = read_state(tmp_path / "last.safetensors")
    state["fit"]["order"] = state["fit"]["order"][:-1]  # rewritten with a valid checksum
    write_state(tmp_path / "last.safetensors", state)
    with pytest.raises(CheckpointError, match="not a permutation of the 20 samples"):
        _model().fit(images, labels, batch_size=8, epochs=2, seed=0, verbose=0, callbacks=[BackupAndRestore(tmp_path)])


class LogsNumpyScalar(Callback):
    def on_epoch_end(self, epoch, logs=None):
        logs["f1"] = np.float32(0.25)


def test_numpy_scalars_in_the_logs_are_checkpointed_as_numbers(tmp_path):
    images, labels = tiny_images(count=20, size=8)
    model = _model()
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0,
              callbacks=[LogsNumpyScalar(), BackupAndRestore(tmp_path, delete_checkpoint=False)])
    assert read_state(tmp_path / "last.safetensors")["callbacks"]["0:History"]["history"]["f1"] == [0.25]
