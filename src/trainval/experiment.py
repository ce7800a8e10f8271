"""The whole train-and-validate workflow, as the CLI runs it: load, split, train, test once, save."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from trainval.config import TrainConfig, parse_checkpoint_every
from trainval.distributed import backend_name, current_world, local_main_first, on_main_then_shared
from trainval.data.splits import holdout_split
from trainval.errors import CheckpointError, ConfigError, TrainvalError
from trainval.model import Model
from trainval.presets import Preset
from trainval.reports.predictions_file import SavedPredictions
from trainval.reports.report import write_report
from trainval.reports.scores import Scores
from trainval.runs.backup import CHECKPOINT_FILE, BackupAndRestore, peek
from trainval.runs.metric_logs import CSVLogger, JSONLogger
from trainval.runs.model_checkpoint import ModelCheckpoint
from trainval.runs.run_folder import RunFolder, software_versions
from trainval.training.callbacks import Callback, History
from trainval.training.data_parallel import check_sync_batchnorm
from trainval.training.early_stopping import EarlyStopping


@dataclass
class TrainResult:
    """What a run measured: the test set is scored exactly once, at the end."""

    config: TrainConfig
    preset: Preset
    model: Model
    history: History
    train_samples: int
    validation_samples: int
    test_samples: int
    test_loss: float
    test_accuracy: float
    test_interval: tuple[float, float]  # 95% Wilson interval of the test accuracy
    test_scores: Scores  # per-class precision and recall, the confusion matrix
    seconds: dict[str, float] = field(default_factory=dict)  # data, training, test, total
    run_folder: Path | None = None


def run_training(config: TrainConfig, announce: Callable[[str], None] = print) -> TrainResult:
    """Run ``config`` end to end in a new run folder (none if ``config.runs_dir`` is None).

    ``announce`` receives the lines a user should see before training.
    """
    config.check()
    check_sync_batchnorm(config.sync_bn, current_world().size, torch.cuda.is_available())
    preset = config.resolve_preset()
    folder = None
    if config.runs_dir:
        folder = on_main_then_shared(lambda: RunFolder.create(config.runs_dir, config.name, {
            "config": config.to_dict(), "preset": plain(preset.to_dict()), "versions": software_versions(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
    return _run(config, preset, folder, announce)


def resume_training(path: str | Path, data_dir: str | None = None, verbose: int | str | None = None,
                    output: str | None = None, preset: Preset | None = None,
                    announce: Callable[[str], None] = print) -> TrainResult:
    """Continue the run in folder ``path`` from its last checkpoint, exactly, and finish it.

    The run's own settings (``config.json``) are used; only where the data lives, how much to
    print and where else to save the final model may change. A run started from a ``Preset``
    object rather than a preset name needs that object passed again as ``preset``.
    """
    def open_unfinished() -> tuple[RunFolder, TrainConfig, Preset]:
        folder = RunFolder.open(path)
        if folder.result_file.exists():
            raise ConfigError(f"the run in {path} has finished; its test score is in {folder.result_file}")
        return (folder, *saved_config(folder, data_dir=data_dir, verbose=verbose, output=output, preset=preset))

    folder, config, resolved = on_main_then_shared(open_unfinished)  # other machines may not see the folder
    return _run(config, resolved, folder, announce)


def saved_config(folder: RunFolder, data_dir: str | None = None, verbose: int | str | None = None,
                 output: str | None = None, preset: Preset | None = None) -> tuple[TrainConfig, Preset]:
    """The config and resolved preset a run folder started with, with the few settings a resume may change;
    a CheckpointError if this trainval cannot use them or would resolve the preset differently."""
    saved = folder.read_config()
    try:
        config = TrainConfig.from_dict(saved["config"])
        config = replace(config, data_dir=data_dir if data_dir is not None else config.data_dir,
                         verbose=verbose if verbose is not None else config.verbose,
                         output=output if output is not None else config.output,
                         preset=preset if preset is not None else config.preset)
        config.check()
        resolved = config.resolve_preset()
    except ConfigError as error:
        raise CheckpointError(f"{folder.config_file} holds a setting this trainval cannot use ({error}); "
                              "resume with the trainval version that started the run") from error
    if plain(resolved.to_dict()) != saved.get("preset"):
        raise CheckpointError(f"the preset {resolved.name!r} differs from the one the run in {folder.path} started "
                              "with (another trainval version, or a changed Preset object); resume with the same one")
    return config, resolved


def _silent(line: str) -> None:
    """Where the announcements of processes other than rank 0 go."""


def plain(values: dict[str, Any]) -> Any:
    """``values`` as JSON would give them back (tuples become lists), so saved and fresh compare equal."""
    return json.loads(json.dumps(values))


def _run_callbacks(config: TrainConfig, folder: RunFolder | None, validating: bool) -> list[Callback]:
    callbacks: list[Callback] = []
    if config.patience is not None:
        callbacks.append(EarlyStopping(monitor=config.monitor, patience=config.patience, restore_best_weights=True))
    if folder is not None:
        steps, seconds = parse_checkpoint_every(config.checkpoint_every)
        callbacks += [CSVLogger(folder.metrics_csv), JSONLogger(folder.metrics_jsonl),
                      BackupAndRestore(folder.checkpoints, save_freq=steps or "epoch", save_every_seconds=seconds,
                                       delete_checkpoint=False)]
        if validating:
            callbacks.append(ModelCheckpoint(folder.best_model, monitor=config.monitor, save_best_only=True))
    return callbacks


def _run(config: TrainConfig, preset: Preset, folder: RunFolder | None, announce: Callable[[str], None]) -> TrainResult:
    started = time.perf_counter()
    world = current_world()
    if not world.is_main:  # one process of a data-parallel run prints and writes
        announce = _silent
    dataset = config.find_dataset()
    (x_train, y_train), (x_test, y_test) = local_main_first(lambda: dataset.load_data(config.data_dir))
    data_seconds = time.perf_counter() - started

    validation_data = None
    if config.validation == "holdout":
        train_idx, val_idx = holdout_split(y_train, config.holdout_size, seed=config.seed)
        validation_data = (x_train[val_idx], y_train[val_idx])
        x_train, y_train = x_train[train_idx], y_train[train_idx]
    elif config.validation == "test":
        validation_data = (x_test, y_test)
        announce("Note: validating on the test set, as the tutorial does, makes the test accuracy below a "
                 "biased (optimistic) estimate; use --validation holdout for an honest one.")

    model = preset.build_model(dataset.num_classes, x_train.shape[1:], seed=config.seed,
                               class_names=dataset.class_names, precision=config.precision,
                               sync_batchnorm=config.sync_bn)
    announce(f"Preset {preset.name}: {preset.to_dict()}")
    announce(f"Model {preset.model}: {model.count_params():,} parameters on {model.device.type}, "
             f"precision {model.precision}; seed {config.seed}")
    if world.size > 1:
        low, high = preset.batch_size // world.size, -(-preset.batch_size // world.size)
        announce(f"Data-parallel: {world.size} processes ({backend_name()}), each training on its own share of every "
                 f"global batch of {preset.batch_size} images ({low if low == high else f'{low}-{high}'} per process); "
                 f"learning rate {preset.optimizer.learning_rate:g} for the global batch, as in one process; "
                 f"BatchNorm statistics {'synchronised' if config.sync_bn else 'per process'}")
    if folder is not None and world.is_main:
        if (folder.checkpoints / CHECKPOINT_FILE).exists():
            position = peek(folder.checkpoints)
            announce(f"Resuming {folder.path} at epoch {position['epoch'] + 1}, step {position['step']}")
        announce(f"Run folder: {folder.path} (if interrupted: {folder.command_hint()})")

    fit_started = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=preset.batch_size, epochs=preset.epochs, verbose=config.verbose,
                        validation_data=validation_data, seed=config.seed,
                        callbacks=[*preset.callbacks(), *_run_callbacks(config, folder, validation_data is not None)])
    test_started = time.perf_counter()
    scores, probabilities = model.evaluate_detailed(x_test, y_test)
    finished = time.perf_counter()
    result = TrainResult(
        config=config, preset=preset, model=model, history=history, train_samples=len(x_train),
        validation_samples=0 if validation_data is None else len(validation_data[0]), test_samples=scores.samples,
        test_loss=scores.loss, test_accuracy=scores.accuracy, test_interval=scores.interval, test_scores=scores,
        seconds={"data": data_seconds, "training": test_started - fit_started, "test": finished - test_started,
                 "total": time.perf_counter() - started},
        run_folder=folder.path if folder is not None else None,
    )
    if not world.is_main:
        return result
    if folder is not None:
        model.save(folder.final_model)
        SavedPredictions.of(probabilities, y_test, x_test).write(folder.test_predictions)
        folder.write_json(folder.result_file, {
            "test_loss": scores.loss, "test_accuracy": scores.accuracy, "test_interval_95": list(scores.interval),
            "test_samples": scores.samples, "train_samples": result.train_samples,
            "validation_samples": result.validation_samples, "epochs_trained": len(history.epoch),
            "model": preset.model, "parameters": model.count_params(), "device": model.device.type,
            "precision": model.precision, "tta": model.tta, "seconds": result.seconds,
            "test_scores": scores.to_dict()})
        try:
            write_report(folder.path)
        except TrainvalError as error:  # the run's results are saved; only its pictures are missing
            announce(f"Warning: the report was not written ({error}); make it with trainval report {folder.path}")
    if config.output:
        model.save(Path(config.output))  # after the run folder is complete: a failure here loses nothing
    return result
