"""The training loop: one epoch of steps, and batched evaluation and prediction. No printing, no files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainval.data.batches import evaluation_slices
from trainval.errors import ConfigError
from trainval.training.callbacks import Callback
from trainval.training.data_parallel import reduce_sums
from trainval.training.optimizers import OptimizerSpec
from trainval.training.precision import autocast
from trainval.training.tta import selective_logits, tta_logits

if TYPE_CHECKING:
    from trainval.training.data_parallel import DataParallel
    from trainval.training.fit_state import FitState

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
    tta_fraction: float = 1.0  # share of the images, the least confident, that get the TTA views
    step: int = 0  # updates done so far, across fit calls
    lr_scale: float = 1.0  # set through ``learning_rate`` (e.g. by LearningRateScheduler), on top of the schedule

    @property
    def learning_rate(self) -> float:
        """The base learning rate before the spec's decay and schedule (Keras's ``optimizer.learning_rate``);
        for a ready-made torch optimiser, its first group's rate."""
        if self.spec is None:
            return self.optimizer.param_groups[0]["lr"]
        return self.optimizer.param_groups[0]["initial_lr"] * self.lr_scale

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if not value > 0:
            raise ConfigError(f"the learning rate must be positive; got {value}")
        if self.spec is None:  # scale every group alike; the optimiser's own rates are otherwise left alone
            ratio = value / self.optimizer.param_groups[0]["lr"]
            for group in self.optimizer.param_groups:
                group["lr"] *= ratio
        else:
            self.lr_scale = value / self.optimizer.param_groups[0]["initial_lr"]

    @property
    def last_learning_rate(self) -> float:
        """The learning rate the latest update used (first parameter group), decay and schedule included."""
        return self.optimizer.param_groups[0]["lr"]

    def set_learning_rate(self, total_steps: int) -> None:
        """Set every group's learning rate for the coming update, ``total_steps`` being the last of this fit.
        A ready-made torch optimiser keeps its own rates (its own scheduler may set them)."""
        if self.spec is None:
            return
        factor = self.lr_scale * self.spec.lr_multiplier(self.step, total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor

    def state_dict(self) -> dict[str, Any]:
        """The optimiser's state and the update count: what continuing the same updates needs."""
        return {"optimizer": self.optimizer.state_dict(), "step": self.step, "lr_scale": self.lr_scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.lr_scale = float(state["lr_scale"])


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

    def combine_ranks(self) -> None:
        """Replace this rank's sums by the sums over every rank of a data-parallel fit."""
        loss_sum, correct, count = reduce_sums(self._loss_sum, self._correct.double(),
                                               torch.tensor(float(self.count), device=self._loss_sum.device))
        self._loss_sum.copy_(loss_sum)
        self._correct.copy_(correct.round().long())
        self.count = int(count.item())

    def result(self) -> dict[str, float]:
        """``{"loss": mean loss, "acc": accuracy}`` over everything seen so far."""
        count = max(self.count, 1)
        return {"loss": self._loss_sum.item() / count, "acc": self._correct.item() / count}

    def state_dict(self) -> dict[str, Any]:
        return {"loss_sum": self._loss_sum, "correct": self._correct, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._loss_sum.copy_(state["loss_sum"])
        self._correct.copy_(state["correct"])
        self.count = int(state["count"])


def to_model_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A float copy of a batch on the device, uint8 pixels scaled to [0, 1] there (floats pass unchanged).

    Always a copy, so a module that works in place can never write into the caller's arrays.
    """
    if images.dtype == torch.uint8:
        images = images.to(device, non_blocking=True).float().div_(255.0)
    else:
        images = images.to(device, dtype=torch.float32, copy=True)
    return images.contiguous(memory_format=torch.channels_last)


def train_one_epoch(trainer: Trainer, images: torch.Tensor, labels: torch.Tensor, fit: FitState,
                    callbacks: Callback, parallel: DataParallel | None = None) -> dict[str, float]:
    """Run the steps of ``fit``'s current epoch that are not done yet; return the epoch's mean loss and accuracy.

    ``fit.batch`` counts the steps done, so an epoch restored from a checkpoint goes on where it stopped.
    With ``parallel``, this rank trains on its shard of each global batch and the returned means
    cover every rank's samples.
    """
    trainer.module.train()
    forward = trainer.module if parallel is None else parallel.module
    running = fit.running
    batches = fit.batches()
    while fit.batch < len(batches):
        indices = batches[fit.batch]
        batch = images[indices]
        if fit.augment is not None:
            batch = fit.augment(batch, indices, fit.epoch)
        weight = 1.0
        if parallel is not None:  # augmented as a whole on every rank, so each draws the same random numbers
            share = parallel.shard(len(indices))
            weight = parallel.loss_weight(share.stop - share.start, len(indices))
            batch, indices = batch[share], indices[share]
        inputs = to_model_input(batch, trainer.device)
        targets = labels[indices].to(trainer.device, non_blocking=True)
        with autocast(trainer.precision, trainer.device):
            logits = forward(inputs)
        loss = trainer.loss_fn(logits.float(), targets)
        trainer.optimizer.zero_grad(set_to_none=True)
        (loss * weight if weight != 1.0 else loss).backward()
        trainer.set_learning_rate(fit.total_steps)
        trainer.optimizer.step()
        trainer.step += 1
        running.update(loss, logits, targets)
        fit.batch += 1
        callbacks.on_train_batch_end(fit.batch - 1, {"epoch": fit.epoch, "seen": running.count, "running": running,
                                                     "loss": loss.detach()})
    if parallel is not None:
        running.combine_ranks()
    return running.result()


@torch.no_grad()
def predict_logits(module: nn.Module, images: torch.Tensor, batch_size: int, device: torch.device,
                   precision: str, tta: int = 0, tta_fraction: float = 1.0) -> torch.Tensor:
    """Logits (float32, on the device) for every image, in order, in eval mode, averaged over TTA views
    (for the least confident ``tta_fraction`` of the images; see :func:`selective_logits`)."""
    module.eval()

    def score(indices: torch.Tensor | None, level: int) -> torch.Tensor:
        subset = images if indices is None else images[indices.cpu()]
        outputs = []
        for window in evaluation_slices(len(subset), batch_size):
            with autocast(precision, device):
                outputs.append(tta_logits(module, to_model_input(subset[window], device), level).float())
        return torch.cat(outputs)

    return selective_logits(score, tta, tta_fraction)


def evaluate_logits(logits: torch.Tensor, labels: torch.Tensor, loss_fn: LossFunction) -> dict[str, float]:
    """Mean loss and accuracy of precomputed logits against class indices."""
    labels = labels.to(logits.device)
    return {
        "loss": float(loss_fn(logits, labels)),
        "acc": float((logits.argmax(dim=1) == labels).double().mean()),
    }
