"""Stop training at the first step whose loss is NaN or infinite, before anything saves it."""

from __future__ import annotations

import math

from trainval.errors import TrainingDiverged
from trainval.training.callbacks import Callback, Logs


class TerminateOnNaN(Callback):
    """Raise :class:`~trainval.errors.TrainingDiverged` at the first non-finite training loss.

    ``fit`` always runs one, first among the callbacks, so no checkpoint or log ever records the
    diverged step: the last checkpoint written stays the last good one. (Keras's callback of the
    same name stops quietly; here the error says where it happened and what to try.)
    """

    order = -1

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if logs is None or "loss" not in logs:
            return
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            where = f"epoch {logs['epoch'] + 1}, step {batch + 1}" if "epoch" in logs else f"step {batch + 1}"
            raise TrainingDiverged(f"training diverged: the loss was {loss} at {where}; training stopped and nothing "
                                   "from this step was saved. Try a lower learning rate, fp32 precision, or "
                                   "check the data for NaN or infinite values")
