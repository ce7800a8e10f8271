"""Callbacks: code the training loop calls at named moments, with Keras's names and meanings.

The loop itself knows nothing of printing or files; progress bars, logs and checkpoints are
callbacks. Subclass :class:`Callback` and override the hooks you need.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Logs = dict[str, Any]


class Callback:
    """Base class: every hook does nothing. ``self.model`` and ``self.params`` are set before training.

    Callbacks run in the order given, except that a lower ``order`` runs earlier: TerminateOnNaN
    (-1) looks at each step before anything else, BackupAndRestore (1) saves after every other
    callback has updated. A callback that keeps state across epochs returns it from
    ``state_dict`` so that checkpoints save it and a resumed fit gets it back.
    """

    order = 0

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def state_dict(self) -> dict[str, Any] | None:
        """State to save in checkpoints (plain values and tensors), or None for a stateless callback."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`state_dict` returned, when a fit resumes from a checkpoint."""

    def on_train_begin(self, logs: Logs | None = None) -> None:
        """Before the first epoch."""

    def on_train_end(self, logs: Logs | None = None) -> None:
        """After the last epoch (also after an early stop)."""

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        """Before epoch ``epoch`` (0-based)."""

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        """After epoch ``epoch``; ``logs`` holds ``loss``, ``acc`` and, with validation, ``val_loss``, ``val_acc``."""

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """After training step ``batch`` of epoch ``logs["epoch"]``; ``logs["seen"]`` counts samples so far,
        ``logs["loss"]`` is the step's loss tensor, and ``logs["running"].result()`` gives the
        epoch's running averages (reading either waits for the device)."""

    def on_test_begin(self, logs: Logs | None = None) -> None:
        """Before ``Model.evaluate`` scores its data."""

    def on_test_end(self, logs: Logs | None = None) -> None:
        """After ``Model.evaluate``; ``logs`` holds its ``loss`` and ``acc``."""

    def close(self) -> None:
        """Release what the callback holds open (a live progress bar) when training ends or fails."""


class CallbackList(Callback):
    """Calls each hook on every callback, sorted by ``order`` (stable, so ties keep the given order)."""

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        super().__init__()
        self.callbacks = sorted(callbacks, key=lambda callback: callback.order)

    def set_model(self, model: Any) -> None:
        for callback in self.callbacks:
            callback.set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:
        for callback in self.callbacks:
            callback.set_params(params)

    def on_train_begin(self, logs: Logs | None = None) -> None:
        for callback in self.callbacks:
            callback.on_train_begin(logs)

    def on_train_end(self, logs: Logs | None = None) -> None:
        for callback in self.callbacks:
            callback.on_train_end(logs)

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        for callback in self.callbacks:
            callback.on_train_batch_end(batch, logs)

    def on_test_begin(self, logs: Logs | None = None) -> None:
        for callback in self.callbacks:
            callback.on_test_begin(logs)

    def on_test_end(self, logs: Logs | None = None) -> None:
        for callback in self.callbacks:
            callback.on_test_end(logs)

    def close(self) -> None:
        for callback in self.callbacks:
            callback.close()


class History(Callback):
    """Records each epoch's metrics: ``history.history["val_acc"][-1]`` is the last validation accuracy."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = list(state["epoch"])
        self.history = {key: list(values) for key, values in state["history"].items()}
