"""Fine-tuning a pretrained body under a new head: the body learns slower, and only once the head has caught up.

A new head starts random on top of a body that already computes good features; updating the body
at full speed through that random head's gradients would spoil the features the head is meant to
use. So the head learns alone for the first ``head_only`` fraction of the steps (the body's
learning rate is 0 then), and afterwards the body learns at ``body_lr_scale`` times the head's rate.
Both are functions of the step alone, so a fit resumed from a checkpoint continues exactly.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

import torch
from torch import nn

from trainval.errors import ConfigError

# A parameter group's key: the fraction of the fit's steps before which the group's learning rate is 0.
STARTS_AT = "starts_at"


@dataclass(frozen=True)
class FineTuning:
    """How a pretrained body and its new head share the learning rate; give it to ``Model.compile(fine_tuning=...)``.

    >>> model.compile(optimizer=SGD(learning_rate=0.1), fine_tuning=FineTuning(body_lr_scale=0.3, head_only=0.2))
    ... # doctest: +SKIP
    """

    body_lr_scale: float = 0.3  # the body's learning rate as a fraction of the head's (the optimiser's own)
    head_only: float = 0.2  # fraction of all training steps in which only the head learns

    def __post_init__(self) -> None:
        if isinstance(self.body_lr_scale, bool) or not isinstance(self.body_lr_scale, (int, float)) \
                or not 0 < self.body_lr_scale < math.inf:
            raise ConfigError(f"body_lr_scale must be a positive number; got {self.body_lr_scale!r}")
        if isinstance(self.head_only, bool) or not isinstance(self.head_only, (int, float)) \
                or not 0 <= self.head_only < 1:
            raise ConfigError(f"head_only must be a fraction of the steps in [0, 1); got {self.head_only!r}")

    def split_groups(self, optimizer: torch.optim.Optimizer, module: nn.Module, head: Collection[str]) -> None:
        """Split each of ``optimizer``'s parameter groups into its head part (the parameters of ``module``
        named in ``head``) and its body part, whose rate is scaled and held at 0 for the head-only steps.
        Head groups come first. Call it before the first step."""
        head_ids = {id(parameter) for name, parameter in module.named_parameters() if name in head}
        if not head_ids:
            raise ConfigError("fine-tuning needs to know the model's head: build the model with "
                              "trainval.create_model(..., weights=...), or load it with trainval.load_model")
        heads, bodies = [], []
        for group in optimizer.param_groups:
            settings = {key: value for key, value in group.items() if key != "params"}
            head_part = [p for p in group["params"] if id(p) in head_ids]
            body_part = [p for p in group["params"] if id(p) not in head_ids]
            if head_part:
                heads.append({**settings, "params": head_part})
            if body_part:
                body_lr = settings.get("initial_lr", settings["lr"]) * self.body_lr_scale
                bodies.append({**settings, "params": body_part, "lr": body_lr, "initial_lr": body_lr,
                               STARTS_AT: float(self.head_only)})
        optimizer.param_groups.clear()
        for group in heads + bodies:
            optimizer.add_param_group(group)


def group_learning_rate(group: dict, factor: float, step: int, total_steps: int) -> float:
    """A parameter group's rate at update ``step`` of ``total_steps``: its initial rate times ``factor``, or
    0 while the group waits for its start (a fine-tuned body while its new head learns alone)."""
    if step < group.get(STARTS_AT, 0.0) * total_steps:
        return 0.0
    return group["initial_lr"] * factor
