"""The training loop: one epoch of steps, and batched evaluation and prediction. No printing, no files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from trainval.data.augment import BoundAugmentation
from trainval.data.batches import evaluation_slices
from trainval.training.callbacks import Callback
from trainval.training.optimizers import OptimizerSpec
from trainval.training.precision import autocast
from trainval.training.tta import tta_logits

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Trainer:
    """Everything one optimisation step needs, chosen once before training starts."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    spec: OptimizerSpec | None  # sets the learning rate of each step; None for a ready-made optimiser
    loss_fn: LossFunction
    device: torch.device
    precision: str
    tta: int = 0  # test-time augmentation level used by evaluate and predict (see tta_logits)
    step: int = 0  # updates done so far, across fit calls

    def set_learning_rate(self, total_steps: int) -> None:
        """Set every group's learning rate for the coming update, ``total_steps`` being the last of this fit."""
        if self.spec is None:
            return
        factor = self.spec.lr_multiplier(self.step, total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor


class RunningAverages:
    """Sums of loss and correct predictions kept on the device, read only when someone asks."""

    def __init__(self, device: torch.device) -> None:
        self._loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self._correct = torch.zeros((), dtype=torch.int64, device=device)
        self.count = 0

    def update(self, mean_loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        size = len(targets)
        self._loss_sum += mean_loss.detach().double() * size
        self._correct += (logits.detach().argmax(dim=1) == targets).sum()
        self.count += size

    def result(self) -> dict[str, float]:
        """``{"loss": mean loss, "acc": accuracy}`` over everything seen so far."""
        count = max(self.count, 1)
        return {"loss": self._loss_sum.item() / count, "acc": self._correct.item() / count}


def to_model_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A float copy of a batch on the device, uint8 pixels scaled to [0, 1] there (floats pass unchanged).

    Always a copy, so a module that works in place can never write into the caller's arrays.
    """
    if images.dtype == torch.uint8:
        images = images.to(device, non_blocking=True).float().div_(255.0)
    else:
        images = images.to(device, dtype=torch.float32, copy=True)
    return images.contiguous(memory_format=torch.channels_last)


def train_one_epoch(trainer: Trainer, images: torch.Tensor, labels: torch.Tensor, batches: list[torch.Tensor],
                    callbacks: Callback, *, epoch: int, total_steps: int,
                    augment: BoundAugmentation | None = None) -> dict[str, float]:
    """Run one optimisation step per index batch; return the epoch's mean loss and accuracy."""
    trainer.module.train()
    running = RunningAverages(trainer.device)
    for step, indices in enumerate(batches):
        batch = images[indices]
        if augment is not None:
            batch = augment(batch, indices, epoch)
        inputs = to_model_input(batch, trainer.device)
        targets = labels[indices].to(trainer.device, non_blocking=True)
        with autocast(trainer.precision, trainer.device):
            logits = trainer.module(inputs)
        loss = trainer.loss_fn(logits.float(), targets)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.set_learning_rate(total_steps)
        trainer.optimizer.step()
        trainer.step += 1
        running.update(loss, logits, targets)
        callbacks.on_train_batch_end(step, {"seen": running.count, "running": running})
    return running.result()


@torch.no_grad()
def predict_logits(module: nn.Module, images: torch.Tensor, batch_size: int, device: torch.device,
                   precision: str, tta: int = 0) -> torch.Tensor:
    """Logits (float32, on the device) for every image, in order, in eval mode, averaged over TTA views."""
    module.eval()
    outputs = []
    for window in evaluation_slices(len(images), batch_size):
        with autocast(precision, device):
            outputs.append(tta_logits(module, to_model_input(images[window], device), tta).float())
    return torch.cat(outputs)


def evaluate_logits(logits: torch.Tensor, labels: torch.Tensor, loss_fn: LossFunction) -> dict[str, float]:
    """Mean loss and accuracy of precomputed logits against class indices."""
    labels = labels.to(logits.device)
    return {
        "loss": float(loss_fn(logits, labels)),
        "acc": float((logits.argmax(dim=1) == labels).double().mean()),
    }
