"""Stop when a monitored metric has stopped improving, with Keras's arguments and meaning."""

from __future__ import annotations

from typing import Any

import torch

from trainval.callbacks.base import Callback, Logs
from trainval.callbacks.monitor import Monitor


class EarlyStopping(Callback):
    """Stop training once ``monitor`` has not improved for ``patience`` epochs.

    Args:
        monitor: metric name from the epoch logs, e.g. ``"val_loss"`` or ``"val_acc"``.
        min_delta: smallest change that counts as an improvement.
        patience: epochs without improvement before stopping.
        mode: ``"auto"``, ``"min"`` or ``"max"`` (see :class:`~trainval.callbacks.monitor.Monitor`).
        baseline: training stops unless the metric beats this within ``patience`` epochs.
        restore_best_weights: when it stops training, put back the weights of the best epoch (at the
            very end, after weight averaging such as Lookahead has had its last word).
        start_from_epoch: epochs to wait before watching at all (warm-up).
        verbose: 1 prints the epoch at which training stopped.
    """

    order = 0.5  # after Lookahead at the end of training, so the best weights are what stays

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        super().__init__()
        self.monitor = Monitor(monitor, mode, min_delta, owner="EarlyStopping")
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = self.monitor.worst
        self.best_epoch = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.monitor.check_available(self.params)
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if epoch < self.start_from_epoch:
            return
        current = self.monitor.value(logs)
        self.wait += 1
        if self.monitor.improves(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = {k: v.detach().clone() for k, v in self.model.module.state_dict().items()}
            if self.baseline is None or self.monitor.improves(current, self.baseline):
                self.wait = 0
                return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.verbose:
                print(f"Epoch {epoch + 1}: early stopping; the best {self.monitor.name} was {self.best:.4f} "
                      f"at epoch {self.best_epoch + 1}", flush=True)

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.stopped_epoch and self.best_weights is not None:
            self.model.module.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {"wait": self.wait, "stopped_epoch": self.stopped_epoch, "best": self.best,
                "best_epoch": self.best_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.wait, self.stopped_epoch = int(state["wait"]), int(state["stopped_epoch"])
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
        weights = state["best_weights"]
        if weights is not None:
            expected = {name: tuple(value.shape) for name, value in self.model.module.state_dict().items()}
            if {name: tuple(value.shape) for name, value in weights.items()} != expected:
                raise ValueError("EarlyStopping's best weights do not fit this model")
        self.best_weights = weights
