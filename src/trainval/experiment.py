"""The whole train-and-validate workflow, as the CLI runs it: load, split, train, test once, save."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainval.atomic_files import check_writable_folder
from trainval.data.class_weights import class_counts, class_weights
from trainval.config import TrainConfig, parse_checkpoint_every
from trainval.distributed import backend_name, current_world, local_main_first, on_main_then_shared
from trainval.errors import CheckpointError, ConfigError, OutputError, TrainvalError
from trainval.model import Model
from trainval.presets import Preset
from trainval.reports.predictions_file import SavedPredictions
from trainval.reports.report import write_report
from trainval.metrics import Scores
from trainval.memory_plan import plan_memory
from trainval.run_data import RunData, load_run_data
from trainval.callbacks.backup import CHECKPOINT_FILE, BackupAndRestore, peek
from trainval.callbacks.metric_logs import CSVLogger, JSONLogger
from trainval.callbacks.model_checkpoint import ModelCheckpoint
from trainval.callbacks.tensorboard import TensorBoard
from trainval.runs.record import RunRecord, RunResult
from trainval.runs.run_folder import RunFolder
from trainval.callbacks.base import Callback, History
from trainval.training.data_parallel import check_sync_batchnorm
from trainval.callbacks.early_stopping import EarlyStopping
from trainval.stats import accuracy_line

_UNEVEN_RATIO = 2  # the largest class at least this many times the smallest: suggest class weights


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
    seconds: dict[str, float] = field(default_factory=dict)  # data, training, test, total; compile (in training and test)
    run_folder: Path | None = None
    train_class_counts: list[int] = field(default_factory=list)  # training images per class
    class_weights: list[float] | None = None  # each class's loss weight (--class-weight); None: all 1

    def record(self) -> RunResult:
        """What result.json holds for this run."""
        return RunResult(
            test_loss=self.test_loss, test_accuracy=self.test_accuracy, test_interval=self.test_interval,
            test_samples=self.test_samples, train_samples=self.train_samples,
            validation_samples=self.validation_samples, epochs_trained=len(self.history.epoch),
            model=self.preset.model, parameters=self.model.count_params(), device=self.model.device.type,
            precision=self.model.precision, tta=self.model.tta, seconds=self.seconds,
            test_scores=self.test_scores.to_dict(), train_class_counts=self.train_class_counts,
            class_weights=self.class_weights)


def run_training(config: TrainConfig, announce: Callable[[str], None] = print) -> TrainResult:
    """Run ``config`` end to end in a new run folder (none if ``config.runs_dir`` is None).

    Everything that can be checked (options, data, sizes, output paths) is checked before the run
    folder is made, and a run that fails before its first checkpoint takes its folder away again.
    ``announce`` receives the lines a user should see before training.
    """
    started = time.perf_counter()
    config = config.with_absolute_paths()
    config, data, preset = prepare(config, announce)
    folder = None
    if config.runs_dir:
        folder = on_main_then_shared(lambda: RunFolder.create(config.runs_dir, config.name, run_record(config, preset)))
    with _held(folder, fresh=True):
        return _run(config, preset, data, folder, announce, started)


def resume_training(path: str | Path, data_dir: str | None = None, verbose: int | str | None = None,
                    output: str | None = None, preset: Preset | None = None,
                    announce: Callable[[str], None] = print) -> TrainResult:
    """Continue the run in folder ``path`` from its last checkpoint, exactly, and finish it.

    The run's own settings (``config.json``) are used; only where the data lives, how much to
    print and where else to save the final model may change. A run started from a ``Preset``
    object rather than a preset name needs that object passed again as ``preset``.
    """
    started = time.perf_counter()

    def open_unfinished() -> RunFolder:
        folder = RunFolder.open(path)
        if folder.result_file.exists():
            raise ConfigError(f"the run in {path} has finished; its test score is in {folder.result_file}")
        return folder

    folder = on_main_then_shared(open_unfinished)  # other machines may not see the folder
    with _held(folder, fresh=False):
        config = saved_config(folder, data_dir=data_dir, verbose=verbose, output=output, preset=preset)
        config, data, resolved = prepare(config, announce, may_lower_batch=False)
        check_same_preset(folder, resolved)
        if data_dir is not None and current_world().is_main:  # where the data was this time, for evaluate and report
            folder.write_record(folder.read_config().with_data_dir(config.data_dir))
        return _run(config, resolved, data, folder, announce, started)


def prepare(config: TrainConfig, announce: Callable[[str], None],
            may_lower_batch: bool = True) -> tuple[TrainConfig, RunData, Preset]:
    """Check ``config`` and where it writes, load and split its data, and fit its preset to the data and
    to the memory of the device it trains on: everything a run can find wrong before it makes its run
    folder. Returns ``config`` with the batch size a run must then use (lowered when the preset's does
    not fit in memory and ``may_lower_batch``), the data and the resolved preset."""
    config.check()
    check_sync_batchnorm(config.sync_bn, current_world().size, torch.cuda.is_available())
    if config.output and current_world().is_main:
        try:
            check_writable_folder(config.output)
        except OSError as error:
            raise OutputError(f"cannot save the model to --output {config.output} ({error.strerror or error}); "
                              "choose a writable folder") from error
    data = local_main_first(lambda: load_run_data(config))
    train_samples = len(data.train[0])
    preset = config.resolve_preset(train_samples)
    asked = config.resolve_preset().batch_size
    if preset.batch_size < asked:
        announce(f"Note: a batch of {asked} is more than the {train_samples} training images; training on batches "
                 f"of {preset.batch_size} (the whole training set), learning rate {preset.optimizer.learning_rate:g}")
    plan = on_main_then_shared(lambda: plan_memory(config, preset, data, may_lower_batch))
    notes = plan.notes
    if plan.batch_size is not None:
        config = replace(config, batch_size=plan.batch_size)
        preset = config.resolve_preset(train_samples)
        notes = [*notes, f"Note: {plan.reason}; training on batches of {preset.batch_size} instead, learning rate "
                         f"{preset.optimizer.learning_rate:g}"]
    for line in notes if current_world().is_main else ():
        announce(line)
    return config, data, preset


def run_record(config: TrainConfig, preset: Preset, seeds: list[int] | None = None) -> RunRecord:
    """What config.json holds for ``config`` run with ``preset`` (and, for a set, its ``seeds``)."""
    return RunRecord(config.to_dict(), plain(preset.to_dict()), seeds)


@contextlib.contextmanager
def _held(folder: RunFolder | None, fresh: bool) -> Iterator[None]:
    """Lock ``folder`` while this process trains in it (rank 0 holds it for a data-parallel run); a
    ``fresh`` folder that fails before its first checkpoint is removed, so its name can start again."""
    if folder is None or not current_world().is_main:
        yield
        return
    with folder.locked(), (folder.removed_if_blank_on_failure() if fresh else contextlib.nullcontext()):
        yield


def saved_config(folder: RunFolder, data_dir: str | None = None, verbose: int | str | None = None,
                 output: str | None = None, preset: Preset | None = None) -> TrainConfig:
    """The config a run folder started with, with the few settings a resume may change; a
    CheckpointError if this trainval cannot use it."""
    try:
        config = TrainConfig.from_dict(folder.read_config().config)
        config = replace(config, data_dir=data_dir if data_dir is not None else config.data_dir,
                         verbose=verbose if verbose is not None else config.verbose,
                         output=output if output is not None else config.output,
                         preset=preset if preset is not None else config.preset).with_absolute_paths()
        config.check()
    except ConfigError as error:
        raise CheckpointError(f"{folder.config_file} holds a setting this trainval cannot use ({error}); "
                              "resume with the trainval version that started the run") from error
    return config


def check_same_preset(folder: RunFolder, resolved: Preset) -> None:
    """A CheckpointError if ``resolved`` is not the preset the run in ``folder`` started with (another
    trainval version, or a changed Preset object)."""
    if plain(resolved.to_dict()) != folder.read_config().preset:
        raise CheckpointError(f"the preset {resolved.name!r} differs from the one the run in {folder.path} started "
                              "with (another trainval version, or a changed Preset object); resume with the same one")


def _silent(line: str) -> None:
    """Where the announcements of processes other than rank 0 go."""


def plain(values: dict[str, Any]) -> Any:
    """``values`` as JSON would give them back (tuples become lists), so saved and fresh compare equal."""
    return json.loads(json.dumps(values))


def _run_callbacks(config: TrainConfig, folder: RunFolder | None, validating: bool) -> list[Callback]:
    callbacks: list[Callback] = []
    if config.patience is not None:
        callbacks.append(EarlyStopping(monitor=config.watched_metric, patience=config.patience,
                                       restore_best_weights=True))
    if folder is not None:
        steps, seconds = parse_checkpoint_every(config.checkpoint_every)
        callbacks += [CSVLogger(folder.metrics_csv), JSONLogger(folder.metrics_jsonl),
                      BackupAndRestore(folder.checkpoints, save_freq=steps or "epoch", save_every_seconds=seconds,
                                       delete_checkpoint=False)]
        if validating:
            callbacks.append(ModelCheckpoint(folder.best_model, monitor=config.watched_metric, save_best_only=True))
        if config.tensorboard is not None:
            record = folder.read_config().to_dict() if current_world().is_main else None  # rank 0 writes
            callbacks.append(TensorBoard(folder.tensorboard, update_freq=config.tensorboard, config=record))
    return callbacks


def _class_balance_note(counts: np.ndarray, weights: np.ndarray | None, names: Sequence[str]) -> str:
    """One line on the training images per class: their range and, with class weights, the weights."""
    rare, common = int(np.argmin(counts)), int(np.argmax(counts))
    line = (f"Training images per class: {counts[rare]:,} ({names[rare]}) to {counts[common]:,} ({names[common]})"
            if counts[rare] != counts[common] else f"Training images per class: {counts[rare]:,}")
    if weights is not None:
        return line + f"; class weights (balanced) {weights[common]:.3g} to {weights[rare]:.3g}"
    if counts[common] >= _UNEVEN_RATIO * max(counts[rare], 1):
        return line + "; --class-weight balanced would make every class count alike"
    return line


def _run(config: TrainConfig, preset: Preset, data: RunData, folder: RunFolder | None,
         announce: Callable[[str], None], started: float) -> TrainResult:
    world = current_world()
    if not world.is_main:  # one process of a data-parallel run prints and writes
        announce = _silent
    data_seconds = time.perf_counter() - started
    (x_train, y_train), validation_data, (x_test, y_test) = data.train, data.validation, data.test
    if data.validates_on_test:
        announce("Note: validating on the test set, as the tutorial does, makes the test accuracy below a "
                 "biased (optimistic) estimate; use --validation holdout for an honest one.")

    # The starting weights are part of the run: once a checkpoint holds its state, they are not read again.
    resuming = folder is not None and (folder.checkpoints / CHECKPOINT_FILE).exists()
    model = preset.build_model(data.dataset.num_classes, x_train.shape[1:], seed=config.seed,
                               class_names=data.dataset.class_names, precision=config.precision,
                               sync_batchnorm=config.sync_bn, compile=config.compile, weights=None if resuming else config.weights,
                               pretrained=config.weights is not None)
    announce(f"Preset {preset.name}: {preset.to_dict()}")
    announce(f"Model {preset.model}: {model.count_params():,} parameters on {model.device.type}, "
             f"precision {model.precision}; seed {config.seed}")
    if config.weights is not None and not resuming:
        announce(f"Starting from {config.weights}: every tensor but the head's ({', '.join(model.head)}), "
                 f"which is new for {data.dataset.num_classes} classes")
    if world.grouped:
        low, high = preset.batch_size // world.size, -(-preset.batch_size // world.size)
        processes = f"{world.size} process{'es' * (world.size > 1)}"
        announce(f"Data-parallel: {processes} ({backend_name()}), each training on its own share of every "
                 f"global batch of {preset.batch_size} images ({low if low == high else f'{low}-{high}'} per process); "
                 f"learning rate {preset.optimizer.learning_rate:g} for the global batch, as in one process; "
                 f"BatchNorm statistics {'synchronised' if config.sync_bn else 'per process'}")
    if folder is not None and world.is_main:
        if resuming:
            position = peek(folder.checkpoints)
            announce(f"Resuming {folder.path} at epoch {position['epoch'] + 1}, step {position['step']}")
        announce(f"Run folder: {folder.path} (if interrupted: {folder.command_hint()})")

    counts = class_counts(y_train, data.dataset.num_classes)
    weights = class_weights(config.class_weight, y_train, data.dataset.num_classes) if config.class_weight else None
    announce(_class_balance_note(counts, weights, data.dataset.class_names))

    fit_started = time.perf_counter()
    callbacks = [*preset.callbacks(), *_run_callbacks(config, folder, validation_data is not None)]
    history = model.fit(x_train, y_train, batch_size=preset.batch_size, epochs=preset.epochs, verbose=config.verbose,
                        validation_data=validation_data, seed=config.seed, class_weight=config.class_weight,
                        callbacks=callbacks)
    test_started = time.perf_counter()
    scores, probabilities = model.evaluate_detailed(x_test, y_test)
    finished = time.perf_counter()
    result = TrainResult(
        config=config, preset=preset, model=model, history=history, train_samples=len(x_train),
        validation_samples=0 if validation_data is None else len(validation_data[0]), test_samples=scores.samples,
        test_loss=scores.loss, test_accuracy=scores.accuracy, test_interval=scores.interval, test_scores=scores,
        seconds={"data": data_seconds, "training": test_started - fit_started, "test": finished - test_started,
                 "total": time.perf_counter() - started, "compile": model.compile_seconds},
        run_folder=folder.path if folder is not None else None, train_class_counts=counts.tolist(),
        class_weights=None if weights is None else weights.tolist(),
    )
    if not world.is_main:
        return result
    if folder is not None:
        model.save(folder.final_model)
        SavedPredictions.of(probabilities, y_test, x_test).write(folder.test_predictions)
        for board in (callback for callback in callbacks if isinstance(callback, TensorBoard)):
            board.log_test_scores({"loss": scores.loss, "acc": scores.accuracy}, step=max(history.epoch, default=0),
                                  summary=accuracy_line(scores.accuracy, scores.interval, scores.samples))
        record = result.record()
        try:
            write_report(folder.path, record)
        except TrainvalError as error:  # the run's results are saved; only its pictures are missing
            announce(f"Warning: the report was not written ({error}); make it with trainval report {folder.path}")
        folder.write_result(record)  # last: its presence means the run finished
    if config.output:
        model.save(Path(config.output))  # after the run folder is complete: a failure here loses nothing
    return result
