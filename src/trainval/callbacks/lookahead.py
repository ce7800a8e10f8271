"""Lookahead weight averaging: every few steps, pull the weights back toward their running average.

The speed runs' version: an exponential moving average of the whole model state (weights and
BatchNorm statistics) is updated every ``every`` steps and copied back into the model, with a
decay that starts at 0 (no averaging) and grows with the cube of training progress, so early
training runs free and late training is smoothed. At the end the model holds the average.
"""

from __future__ import annotations

from typing import Any

import torch

from trainval.callbacks.base import Callback, Logs


class Lookahead(Callback):
    """Keeps and applies the average; add it to ``fit(callbacks=[...])``."""

    def __init__(self, every: int = 5, decay: float = 0.95) -> None:
        super().__init__()
        self.every = every
        self.decay = decay  # per step; the applied decay is decay**every * progress**3
        self._average: dict[str, torch.Tensor] = {}
        self._step = 0
        self._total_steps = 1

    def on_train_begin(self, logs: Logs | None = None) -> None:
        state = self.model.module.state_dict()
        self._average = {k: v.detach().clone() for k, v in state.items() if v.dtype.is_floating_point}
        self._step = 0
        epochs_to_run = self.params["epochs"] - self.params.get("initial_epoch", 0)
        self._total_steps = max(self.params["steps"] * epochs_to_run, 1)

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self._step += 1
        if self._step % self.every == 0:
            progress = self._step / self._total_steps
            self._apply(self.decay ** self.every * progress ** 3)

    def on_train_end(self, logs: Logs | None = None) -> None:
        self._apply(1.0)  # leave the model holding the average

    def state_dict(self) -> dict[str, Any]:
        return {"average": self._average, "step": self._step, "total_steps": self._total_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, average in self._average.items():
            average.copy_(state["average"][name])
        self._step, self._total_steps = int(state["step"]), int(state["total_steps"])

    @torch.no_grad()
    def _apply(self, decay: float) -> None:
        state = self.model.module.state_dict()
        for name, average in self._average.items():
            average.lerp_(state[name], 1.0 - decay)
            state[name].copy_(average)
