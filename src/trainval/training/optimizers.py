"""Optimiser specs with Keras names and meanings, built into a torch optimiser plus a per-step schedule."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Union

import torch

from trainval.errors import ConfigError

Schedule = torch.optim.lr_scheduler.LRScheduler


def _keras_decay(optimizer: torch.optim.Optimizer, decay: float) -> Schedule:
    # Keras 2's time-based decay: lr_t = lr / (1 + decay * t), t counting updates from 0.
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1.0 + decay * step))


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be positive; got {value}")


@dataclass(frozen=True)
class SGD:
    """Stochastic gradient descent, as ``keras.optimizers.SGD`` (``decay`` as in Keras 2)."""

    learning_rate: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    decay: float = 0.0  # per update: lr / (1 + decay * updates)
    weight_decay: float = 0.0  # L2 coefficient added to the gradient, torch-style

    def build(self, parameters: Iterable[torch.nn.Parameter]) -> tuple[torch.optim.Optimizer, Schedule | None]:
        """Create the torch optimiser for ``parameters`` and its per-step schedule (None if constant)."""
        _check_positive("learning_rate", self.learning_rate)
        if self.nesterov and self.momentum <= 0:
            raise ConfigError("Nesterov momentum needs momentum > 0")
        optimizer = torch.optim.SGD(parameters, lr=self.learning_rate, momentum=self.momentum,
                                    nesterov=self.nesterov, weight_decay=self.weight_decay)
        return optimizer, _keras_decay(optimizer, self.decay) if self.decay else None


@dataclass(frozen=True)
class Adam:
    """Adam, as ``keras.optimizers.Adam`` (Keras's epsilon of 1e-7)."""

    learning_rate: float = 0.001
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    decay: float = 0.0  # per update: lr / (1 + decay * updates)

    def build(self, parameters: Iterable[torch.nn.Parameter]) -> tuple[torch.optim.Optimizer, Schedule | None]:
        """Create the torch optimiser for ``parameters`` and its per-step schedule (None if constant)."""
        _check_positive("learning_rate", self.learning_rate)
        optimizer = torch.optim.Adam(parameters, lr=self.learning_rate, betas=(self.beta_1, self.beta_2),
                                     eps=self.epsilon)
        return optimizer, _keras_decay(optimizer, self.decay) if self.decay else None


OptimizerSpec = Union[SGD, Adam]
_BY_NAME = {"sgd": SGD, "adam": Adam}


def resolve_optimizer(optimizer: str | OptimizerSpec | torch.optim.Optimizer,
                      parameters: Iterable[torch.nn.Parameter]) -> tuple[torch.optim.Optimizer, Schedule | None]:
    """Turn what ``compile(optimizer=...)`` accepts into a torch optimiser and an optional schedule.

    Accepts a name (``"sgd"``, ``"adam"``, with Keras defaults), a spec such as
    ``SGD(learning_rate=0.01, momentum=0.9)``, or a ready ``torch.optim.Optimizer``.
    """
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer, None
    if isinstance(optimizer, str):
        try:
            optimizer = _BY_NAME[optimizer.lower()]()
        except KeyError:
            raise ConfigError(f"unknown optimizer {optimizer!r}; use one of {sorted(_BY_NAME)}, "
                              "a trainval.optimizers spec, or a torch.optim.Optimizer") from None
    if not hasattr(optimizer, "build"):
        raise ConfigError(f"optimizer must be a name, a trainval.optimizers spec or a torch.optim.Optimizer; "
                          f"got {type(optimizer).__name__}")
    return optimizer.build(parameters)
