"""Save the model after epochs, or only the best one: Keras's ModelCheckpoint."""

from __future__ import annotations

import os
from typing import Any

from trainval.distributed import current_world
from trainval.errors import ConfigError
from trainval.callbacks.base import Callback, Logs
from trainval.callbacks.monitor import Monitor


class ModelCheckpoint(Callback):
    """Save the model (``Model.save`` format, loadable with ``trainval.load_model``) at the end of epochs.

    Args:
        filepath: folder to save to; may hold ``{epoch}`` (1-based) and log names, e.g.
            ``"ckpt/epoch{epoch:02d}-{val_acc:.3f}"``.
        monitor: the metric that decides which model is best.
        save_best_only: save only when ``monitor`` improves on the best so far.
        mode: ``"auto"``, ``"min"`` or ``"max"``.
        initial_value_threshold: a model must beat this value to be saved as best.

    Every file is written atomically, so the best model on disk is always a whole one.
    """

    def __init__(self, filepath: str | os.PathLike[str], monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, mode: str = "auto", initial_value_threshold: float | None = None) -> None:
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = Monitor(monitor, mode, owner="ModelCheckpoint")
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.initial_value_threshold = initial_value_threshold
        self.best = self.monitor.worst if initial_value_threshold is None else float(initial_value_threshold)

    def on_train_begin(self, logs: Logs | None = None) -> None:
        if self.save_best_only:
            self.monitor.check_available(self.params)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as error:
            raise ConfigError(f"ModelCheckpoint cannot fill in {self.filepath!r} ({error}); use {{epoch}} and the "
                              f"names {', '.join(logs)}") from error
        if self.save_best_only:
            current = self.monitor.value(logs)
            if not self.monitor.improves(current, self.best):
                return
            self.best = current
        if not current_world().is_main:  # one process of a data-parallel fit writes
            return
        self.model.save(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved the model to {path}", flush=True)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
