"""Set the learning rate at the start of every epoch from a function, as Keras's callback does."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

from trainval.errors import ConfigError
from trainval.callbacks.base import Callback, Logs


class LearningRateScheduler(Callback):
    """``schedule(epoch, lr) -> new lr`` is called before each epoch (0-based) with the current base rate.

    The rate it returns replaces the optimiser's base learning rate; a spec's ``decay`` and
    ``schedule`` still apply on top of it, step by step. The epoch logs get ``lr``.
    """

    def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise ConfigError(f"LearningRateScheduler needs a function schedule(epoch, lr); got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose
        self._scheduled_epoch: int | None = None  # a resumed epoch must not be scheduled twice

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._scheduled_epoch = None

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        if epoch == self._scheduled_epoch:
            return
        learning_rate = self.schedule(epoch, self.model.learning_rate)
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real) \
                or not math.isfinite(learning_rate) or learning_rate <= 0:
            raise ConfigError(f"the learning-rate schedule returned {learning_rate!r} for epoch {epoch}; "
                              "it must return a positive number")
        self.model.learning_rate = float(learning_rate)
        self._scheduled_epoch = epoch
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler set the learning rate to {learning_rate}", flush=True)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if logs is not None:
            logs["lr"] = self.model.learning_rate

    def state_dict(self) -> dict[str, Any]:
        return {"scheduled_epoch": self._scheduled_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._scheduled_epoch = state["scheduled_epoch"]
