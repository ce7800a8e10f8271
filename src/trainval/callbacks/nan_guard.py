"""Stop training at the first step whose loss is NaN or infinite, before anything saves it."""

from __future__ import annotations

import torch

from trainval.errors import TrainingDiverged
from trainval.callbacks.base import Callback, Logs

_DEVICE_CHECK_EVERY = 50  # on a GPU, reading the loss every step would stall the queue of kernels


class TerminateOnNaN(Callback):
    """Raise :class:`~trainval.errors.TrainingDiverged` naming the first step whose loss is not finite.

    ``fit`` always runs one, first among the callbacks. On the CPU it looks at every step; on a
    GPU it notes the first bad step on the device and reads it every ``check_every`` steps and at
    every epoch end. Checkpoints also refuse non-finite weights, so the last checkpoint written is
    always a good one. (Keras's callback of the same name stops quietly; this one says where it
    happened and what to try.)
    """

    order = -1

    def __init__(self, check_every: int | None = None) -> None:
        super().__init__()
        self.check_every = check_every  # None: every step on the CPU, every 50 elsewhere
        self._first_bad: torch.Tensor | None = None  # the epoch's first non-finite step, -1 if none yet
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._first_bad, self._epoch = None, epoch

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if logs is None or "loss" not in logs:
            return
        loss = logs["loss"]
        if self._first_bad is None:
            self._first_bad = torch.full((), -1, dtype=torch.int64, device=loss.device)
        bad_now = (self._first_bad < 0) & ~torch.isfinite(loss)
        self._first_bad = torch.where(bad_now, torch.full_like(self._first_bad, batch), self._first_bad)
        every = self.check_every or (1 if loss.device.type == "cpu" else _DEVICE_CHECK_EVERY)
        if (batch + 1) % every == 0:
            self._raise_if_diverged()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self._raise_if_diverged()

    def _raise_if_diverged(self) -> None:
        if self._first_bad is None or int(self._first_bad) < 0:
            return
        raise TrainingDiverged(f"training diverged: the loss was not finite at epoch {self._epoch + 1}, step "
                               f"{int(self._first_bad) + 1}; training stopped and nothing from that step on was "
                               "saved. Try a lower learning rate, fp32 precision, or check the data for NaN or "
                               "infinite values")
