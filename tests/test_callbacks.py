"""Keras's callbacks, with Keras's meanings: early stopping, best-model checkpoints, CSV logs,
learning-rate schedules, and the NaN guard that is always on."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

import trainval
from trainval.callbacks import (BackupAndRestore, CSVLogger, EarlyStopping, LearningRateScheduler, Lookahead,
                                ModelCheckpoint, TerminateOnNaN)
from trainval.errors import ConfigError, TrainingDiverged
from trainval.runs.state_file import read_state

from tiny_data import PoisonedAfter, TinyNet, tiny_images


class ScriptedModel:
    """What a callback sees as ``self.model``, with weights that change as the test says."""

    def __init__(self):
        self.module = nn.Linear(1, 1, bias=False)
        self.stop_training = False
        self.saved: list[str] = []

    def save(self, path):
        self.saved.append(path)


def _drive(callback, values, monitor="val_loss", val_samples=10):
    """Run ``callback`` over epochs whose monitored metric takes ``values``; the weight equals the epoch."""
    model = ScriptedModel()
    callback.set_model(model)
    callback.set_params({"epochs": len(values), "val_samples": val_samples})
    callback.on_train_begin()
    epochs_run = 0
    for epoch, value in enumerate(values):
        with torch.no_grad():
            model.module.weight.fill_(epoch)
        callback.on_epoch_end(epoch, {"loss": 1.0, monitor: value})
        epochs_run += 1
        if model.stop_training:
            break
    callback.on_train_end()
    return model, epochs_run


def test_early_stopping_waits_patience_epochs_after_the_best():
    _, epochs = _drive(EarlyStopping(patience=2), [1.0, 0.8, 0.9, 0.85, 0.7])
    assert epochs == 4  # best at epoch 1, then two epochs without improvement


def test_early_stopping_min_delta_ignores_tiny_improvements():
    _, epochs = _drive(EarlyStopping(patience=1, min_delta=0.05), [1.0, 0.99, 0.98, 0.5])
    assert epochs == 2


def test_early_stopping_treats_accuracy_as_higher_is_better():
    _, epochs = _drive(EarlyStopping(monitor="val_acc", patience=1), [0.5, 0.6, 0.7, 0.65, 0.9], monitor="val_acc")
    assert epochs == 4


def test_early_stopping_restores_the_best_weights_when_it_stops():
    model, _ = _drive(EarlyStopping(patience=1, restore_best_weights=True), [1.0, 0.5, 0.9, 0.8])
    assert model.module.weight.item() == 1.0  # epoch 1 had the best val_loss


def test_early_stopping_restores_the_best_weights_after_lookahead_has_averaged():
    stopper = EarlyStopping(monitor="loss", patience=0, restore_best_weights=True, mode="max")  # stops at epoch 1
    model = _fit([Lookahead(every=1), stopper], epochs=4)
    assert stopper.stopped_epoch == 1
    for name, value in model.module.state_dict().items():
        assert torch.equal(value, stopper.best_weights[name]), name


def test_early_stopping_baseline_must_be_beaten_within_patience_epochs():
    _, epochs = _drive(EarlyStopping(patience=2, baseline=0.1), [1.0, 0.9, 0.8, 0.7])
    assert epochs == 2  # improving, but never on the baseline
    _, epochs = _drive(EarlyStopping(patience=2, baseline=0.1), [1.0, 0.05, 0.9, 0.8, 0.7])
    assert epochs == 4  # beat the baseline at epoch 1, then two epochs without improvement


def test_monitoring_a_validation_metric_without_validation_is_a_config_error():
    images, labels = tiny_images(count=16, size=8)
    model = trainval.Model(TinyNet(), num_classes=4)
    with pytest.raises(ConfigError, match="no validation data"):
        model.fit(images, labels, epochs=1, verbose=0, callbacks=[EarlyStopping(monitor="val_acc")])


def test_model_checkpoint_saves_only_improvements_with_the_epoch_in_the_name():
    model, _ = _drive(ModelCheckpoint("best-{epoch:02d}", save_best_only=True), [1.0, 0.8, 0.9, 0.7])
    assert model.saved == ["best-01", "best-02", "best-04"]


def test_model_checkpoint_without_save_best_only_saves_every_epoch():
    model, _ = _drive(ModelCheckpoint("m{epoch}-{val_loss:.1f}"), [1.0, 0.8])
    assert model.saved == ["m1-1.0", "m2-0.8"]


def test_model_checkpoint_names_the_missing_log_key():
    with pytest.raises(ConfigError, match="'val_auc'.*hold only loss, val_loss"):
        _drive(ModelCheckpoint("m", monitor="val_auc", save_best_only=True), [1.0])


def _fit(callbacks, epochs=3, **kwargs):
    torch.manual_seed(0)
    model = trainval.Model(TinyNet(), num_classes=4)
    images, labels = tiny_images(count=40, size=8)
    model.fit(images, labels, batch_size=8, epochs=epochs, validation_split=0.25, seed=0, verbose=0,
              callbacks=callbacks, **kwargs)
    return model


def test_csv_logger_writes_one_row_per_epoch_with_the_history_values(tmp_path):
    model = _fit([CSVLogger(tmp_path / "log.csv")])
    with open(tmp_path / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["epoch", "loss", "acc", "val_loss", "val_acc", "lr", "seconds"]
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    for key in ("loss", "acc", "val_loss", "val_acc"):
        assert [float(row[key]) for row in rows] == model.history.history[key]
    assert all(float(row["seconds"]) >= 0 for row in rows)


def test_csv_logger_append_keeps_earlier_rows_and_one_header(tmp_path):
    _fit([CSVLogger(tmp_path / "log.csv")], epochs=1)
    _fit([CSVLogger(tmp_path / "log.csv", append=True)], epochs=2)
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,") and len(lines) == 4 and sum(line.startswith("epoch") for line in lines) == 1


def test_learning_rate_scheduler_sets_the_rate_each_epoch_and_logs_it():
    model = _fit([LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))])
    assert model.history.history["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    assert model.learning_rate == pytest.approx(0.1 / 3)


def test_a_scheduler_reused_for_a_second_fit_schedules_its_first_epoch_again():
    scheduler = LearningRateScheduler(lambda epoch, lr: 0.01 if epoch == 0 else 0.5)
    model = _fit([scheduler], epochs=2)
    images, labels = tiny_images(count=40, size=8)
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0, callbacks=[scheduler])
    assert model.learning_rate == pytest.approx(0.01)


def test_a_torch_optimizer_keeps_the_rates_its_own_scheduler_sets():
    torch.manual_seed(0)
    module = TinyNet()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    steps = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.1)
    model = trainval.Model(module, num_classes=4)
    model.compile(optimizer=optimizer)
    images, labels = tiny_images(count=16, size=8)
    rates = []
    for _ in range(3):
        model.fit(images, labels, batch_size=16, epochs=1, verbose=0)
        rates.append(model.last_learning_rate)
        steps.step()
    assert rates == pytest.approx([0.1, 0.01, 0.001])


def test_a_schedule_returning_a_bad_rate_is_a_config_error():
    with pytest.raises(ConfigError, match="returned -1.0 for epoch 0"):
        _fit([LearningRateScheduler(lambda epoch, lr: -1.0)])


def test_the_nan_guard_stops_at_the_first_bad_step_and_keeps_the_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = trainval.Model(PoisonedAfter(steps=7), num_classes=4)
    images, labels = tiny_images(count=40, size=8)
    with pytest.raises(TrainingDiverged, match=r"loss was not finite at epoch 2, step 2; training stopped"):
        model.fit(images, labels, batch_size=8, epochs=3, seed=0, verbose=0,
                  callbacks=[BackupAndRestore(tmp_path, save_freq=1, delete_checkpoint=False)])
    state = read_state(tmp_path / "last.safetensors")
    assert (state["fit"]["epoch"], state["fit"]["batch"]) == (1, 1)  # saved after the 6th step, the last good one
    assert all(torch.isfinite(t).all() for t in state["module"].values() if t.is_floating_point())


def test_a_nan_guard_that_reads_the_device_rarely_still_names_the_first_bad_step():
    torch.manual_seed(0)
    model = trainval.Model(PoisonedAfter(steps=2), num_classes=4)
    images, labels = tiny_images(count=40, size=8)
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 2;"):
        model.fit(images, labels, batch_size=8, epochs=1, seed=0, verbose=0, callbacks=[TerminateOnNaN(check_every=4)])
