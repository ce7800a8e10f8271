"""Keras's ``TensorBoard`` callback: a fit's metrics as TensorBoard event files, through PyTorch's own writer.

In ``log_dir``, one TensorBoard run per sub-folder, with Keras's tags::

    train/          epoch_loss, epoch_acc, epoch_learning_rate (step: the 0-based epoch, as in Keras), and
                    the configuration as text (tag ``config``, written once)
    validation/     epoch_loss, epoch_acc: TensorBoard draws them over the training curves
    test/           epoch_loss, epoch_acc at the last epoch, and a summary line (:meth:`TensorBoard.log_test_scores`)
    train_batches/  batch_loss, batch_acc (the epoch's running averages so far) and batch_learning_rate every
                    ``update_freq`` updates (step: updates since epoch 0)

A fit resumed from a checkpoint goes on in the same folders without repeating a step: each writer
starts with a purge mark at the first step this fit writes, so TensorBoard drops whatever a killed
process logged past its last checkpoint, and every write is flushed at once, so a kill loses nothing
logged before it. In a data-parallel fit only the first process writes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainval.distributed import current_world
from trainval.errors import ConfigError, OutputError
from trainval.callbacks.base import Callback, Logs

INSTALL_HINT = "pip install 'trainval[tensorboard]'"
_EVENT_FILE_PREFIX = "events.out.tfevents."


def summary_writer_class() -> type:
    """PyTorch's ``SummaryWriter``; a ConfigError naming the install command if the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise ConfigError(f"TensorBoard logging needs the tensorboard package: {INSTALL_HINT}") from error
    return SummaryWriter


def parse_update_freq(update_freq: str | int) -> int | None:
    """Keras's ``update_freq``: ``"epoch"`` (None: epoch ends only), ``"batch"`` (1) or a number of updates
    (an int or its digits); a ConfigError otherwise."""
    if update_freq == "epoch":
        return None
    if update_freq == "batch":
        return 1
    if isinstance(update_freq, str) and update_freq.isdigit():
        update_freq = int(update_freq)
    if isinstance(update_freq, bool) or not isinstance(update_freq, int) or update_freq < 1:
        raise ConfigError(f"update_freq must be 'epoch', 'batch' or a number of steps >= 1; got {update_freq!r}")
    return update_freq


class TensorBoard(Callback):
    """Write the fit's metrics for TensorBoard (``tensorboard --logdir LOG_DIR``), as Keras's callback does.

    Args:
        log_dir: the folder of event files (one sub-folder per TensorBoard run, see the module's doc).
        update_freq: ``"epoch"`` writes at epoch ends only; ``"batch"`` or a number N also writes the
            running loss, accuracy and the learning rate every update or every N updates.
        config: what to write as the ``config`` text (JSON-able values); by default the fit's
            parameters and the model's description.

    Needs the tensorboard package (``pip install 'trainval[tensorboard]'``).
    """

    def __init__(self, log_dir: str | os.PathLike[str] = "logs", update_freq: str | int = "epoch",
                 config: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self._writer_class = summary_writer_class()
        self.log_dir = Path(log_dir)
        self.update_freq = update_freq
        self._every = parse_update_freq(update_freq)
        self.config = config
        self._writers: dict[str, Any] = {}
        self._first_epoch: int | None = None  # of this fit: later ones in the folder are a killed fit's, purged
        self._last_epoch: int | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._first_epoch = self._last_epoch = None

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        if self._first_epoch is None:  # after BackupAndRestore has put the fit where a checkpoint left it
            self._first_epoch = epoch
            if current_world().is_main and self._is_new("train"):
                config = self.config if self.config is not None else {"fit": self.params,
                                                                       "model": self.model.description()}
                self._writer("train", epoch).add_text("config", _as_markdown(config), epoch)

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if self._every is None or logs is None or not current_world().is_main:
            return
        step = logs["epoch"] * self.params["steps"] + batch + 1
        if step % self._every:
            return
        # The first write of this fit purges from its step: nothing a killed fit logged at earlier steps is later.
        writer = self._writer("train_batches", step)
        running = logs["running"].result()  # waits for the device: only when writing
        for name in ("loss", "acc"):
            writer.add_scalar(f"batch_{name}", running[name], step)
        writer.add_scalar("batch_learning_rate", self.model.last_learning_rate, step)
        writer.flush()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self._last_epoch = epoch
        if not current_world().is_main:
            return
        # "lr" (LearningRateScheduler's base rate) is left out, as in metrics.csv: epoch_learning_rate is the rate used.
        numbers = {key: value for key, value in (logs or {}).items()
                   if isinstance(value, (int, float)) and key != "lr"}
        train = self._writer("train", self._first_epoch)
        for key, value in numbers.items():
            if not key.startswith("val_"):
                train.add_scalar(f"epoch_{key}", value, epoch)
        train.add_scalar("epoch_learning_rate", self.model.last_learning_rate, epoch)
        train.flush()
        validation = {key[len("val_"):]: value for key, value in numbers.items() if key.startswith("val_")}
        if validation:
            writer = self._writer("validation", self._first_epoch)
            for key, value in validation.items():
                writer.add_scalar(f"epoch_{key}", value, epoch)
            writer.flush()

    def on_train_end(self, logs: Logs | None = None) -> None:
        self.close()

    def log_test_scores(self, scores: Mapping[str, float], step: int | None = None, summary: str | None = None) -> None:
        """Write test scores (``{"loss": ..., "acc": ...}``) into ``log_dir/test`` as ``epoch_<name>`` at ``step``
        (default: the last epoch logged), where TensorBoard shows them beside that epoch's training and
        validation scores, and ``summary`` as text (the first time only). Writing the scores again for the same
        step replaces them."""
        if not current_world().is_main:
            return
        step = step if step is not None else self._last_epoch or 0
        new = self._is_new("test")
        writer = self._writer("test", step)
        for name, value in scores.items():
            writer.add_scalar(f"epoch_{name}", value, step)
        if summary and new:
            writer.add_text("summary", summary, step)
        writer.close()
        del self._writers["test"]

    def close(self) -> None:
        """Flush and close the event files (training ended or failed)."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def _is_new(self, run: str) -> bool:
        """Whether sub-folder ``run`` holds no events yet. Text is written only then: TensorBoard's purge marks
        drop scalars, not text, so a resumed fit writing it again would show it twice."""
        return not any((self.log_dir / run).glob(_EVENT_FILE_PREFIX + "*"))

    def _writer(self, run: str, purge_from: int) -> Any:
        """The writer of sub-folder ``run``; when it opens, TensorBoard drops the folder's older events from step
        ``purge_from`` on (those of a fit that this one resumes or repeats)."""
        if run not in self._writers:
            folder = self.log_dir / run
            try:
                _wait_for_a_later_file_name(folder)
                self._writers[run] = self._writer_class(str(folder), purge_step=purge_from)
            except OSError as error:
                raise OutputError(f"cannot write TensorBoard logs in {folder} ({error.strerror or error}); choose "
                                  "a writable folder") from error
        return self._writers[run]


def _wait_for_a_later_file_name(folder: Path) -> None:
    """Wait, if need be, until a new event file's name (which starts with the second it was made) sorts after
    every one in ``folder``: TensorBoard reads them in name order, and a purge mark must come after what it
    purges. Only a writer reopened within a second of the last waits, and less than a second."""
    seconds = [int(parts[3]) for path in folder.glob(_EVENT_FILE_PREFIX + "*")
               if len(parts := path.name.split(".")) > 3 and parts[3].isdigit()]
    while seconds and time.time() < max(seconds) + 1:
        time.sleep(max(seconds) + 1 - time.time())


def _as_markdown(values: Mapping[str, Any]) -> str:
    """``values`` as indented JSON, which TensorBoard's text tab shows as a code block."""
    return "    " + json.dumps(values, indent=2, default=str).replace("\n", "\n    ")
