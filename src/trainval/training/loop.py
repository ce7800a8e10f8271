"""The training loop: one epoch of steps, and batched evaluation and prediction. No printing, no files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainval.data.batches import evaluation_slices
from trainval.errors import ConfigError
from trainval.callbacks.base import Callback
from trainval.optimizers import OptimizerSpec
from trainval.training.compiled import compile_timing
from trainval.optimizers.fine_tuning import group_learning_rate
from trainval.training.precision import autocast
from trainval.training.running_averages import RunningAverages
from trainval.training.targets import BatchTargets, LossFunction
from trainval.training.tta import selective_logits, tta_logits

if TYPE_CHECKING:
    from trainval.training.data_parallel import DataParallel
    from trainval.training.fit_state import FitState

EVAL_BATCH_SIZE = 256  # evaluation results do not depend on it; larger batches are simply faster


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
    forward: nn.Module | None = None  # what runs the module's forward pass (a CompiledModule); None: the module

    def __post_init__(self) -> None:
        if self.forward is None:
            self.forward = self.module

    @property
    def learning_rate(self) -> float:
        """The base learning rate before the spec's decay and schedule (Keras's ``optimizer.learning_rate``);
        for a ready-made torch optimiser, its first group's rate."""
        if self.spec is None:
            return self.optimizer.param_groups[0]["lr"]
        return self.spec.learning_rate * self.lr_scale  # the spec's, whatever order fine-tuning put the groups in

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if not value > 0:
            raise ConfigError(f"the learning rate must be positive; got {value}")
        if self.spec is None:  # scale every group alike; the optimiser's own rates are otherwise left alone
            ratio = value / self.optimizer.param_groups[0]["lr"]
            for group in self.optimizer.param_groups:
                group["lr"] *= ratio
        else:
            self.lr_scale = value / self.spec.learning_rate

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
            group["lr"] = group_learning_rate(group, factor, self.step, total_steps)

    def state_dict(self) -> dict[str, Any]:
        """The optimiser's state and the update count: what continuing the same updates needs."""
        return {"optimizer": self.optimizer.state_dict(), "step": self.step, "lr_scale": self.lr_scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.lr_scale = float(state["lr_scale"])


def to_model_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A float copy of a batch on the device, uint8 pixels scaled to [0, 1] there (floats pass unchanged).

    Always a copy, so a module that works in place can never write into the caller's arrays. A batch
    already on the device (its data placed there once) is converted there, without a transfer.
    """
    if images.dtype == torch.uint8:
        images = images.to(device, non_blocking=True).float().div_(255.0)
    else:
        images = images.to(device, dtype=torch.float32, copy=True)
    return images.contiguous(memory_format=torch.channels_last)


def fit_epochs(trainer: Trainer, fit: FitState, images: torch.Tensor, labels: torch.Tensor,
               validation: tuple[torch.Tensor, torch.Tensor] | None, callbacks: Callback,
               parallel: DataParallel | None, should_stop: Callable[[], bool]) -> None:
    """Keras's fit loop: train ``fit``'s remaining epochs, validating after each, calling the hooks.

    ``should_stop`` is asked before every epoch (a callback such as EarlyStopping sets it).
    """
    callbacks.on_train_begin()  # BackupAndRestore may move the fit to where an earlier one stopped
    while fit.epoch < fit.epochs and not should_stop():
        fit.begin_epoch()
        callbacks.on_epoch_begin(fit.epoch)
        logs: dict[str, Any] = train_one_epoch(trainer, images, labels, fit, callbacks, parallel)
        if parallel is not None:
            parallel.share_buffers(trainer.module)
        if validation is not None:
            scores = validate(trainer, *validation, max(fit.batch_size, EVAL_BATCH_SIZE), parallel)
            logs.update(val_loss=scores["loss"], val_acc=scores["acc"])
        fit.epoch_done = True
        callbacks.on_epoch_end(fit.epoch, logs)
        fit.end_epoch()
    callbacks.on_train_end()


def train_one_epoch(trainer: Trainer, images: torch.Tensor, labels: torch.Tensor, fit: FitState,
                    callbacks: Callback, parallel: DataParallel | None = None) -> dict[str, float]:
    """Run the steps of ``fit``'s current epoch that are not done yet; return the epoch's mean loss and accuracy.

    ``fit.batch`` counts the steps done, so an epoch restored from a checkpoint goes on where it stopped.
    With ``parallel``, this rank trains on its shard of each global batch and the returned means
    cover every rank's samples.
    """
    forward = trainer.forward if parallel is None else parallel.module
    forward.train()
    running = fit.running
    batches = fit.batches()
    while fit.batch < len(batches):
        indices = batches[fit.batch]
        batch = images[indices]
        mix = None
        if fit.augment is not None:
            batch = fit.augment(batch, indices, fit.epoch)
            mix = fit.augment.draw_mix(batch)
        weight, rows = 1.0, slice(None)
        if parallel is not None:  # augmented as a whole on every rank, so each draws the same random numbers
            rows = parallel.shard(len(indices))
            weight = parallel.loss_weight(rows.stop - rows.start, len(indices))
        inputs = to_model_input(batch[rows], trainer.device)
        targets = BatchTargets.of(labels, fit.sample_weights, indices[rows], trainer.device)
        if mix is not None:  # a rank's images may be mixed with images of another rank's share: all have the batch
            partners = mix.partner[rows]
            inputs = mix.apply(inputs, to_model_input(batch[partners], trainer.device))
            targets = targets.mixed_with(BatchTargets.of(labels, fit.sample_weights, indices[partners],
                                                         trainer.device), mix.share)
        with compile_timing(trainer.forward, inputs):
            loss, logits = _train_step(trainer, forward, inputs, targets, weight, fit.total_steps)
        running.update(loss, logits, targets.dominant_classes)
        fit.batch += 1
        callbacks.on_train_batch_end(fit.batch - 1, {"epoch": fit.epoch, "seen": running.count, "running": running,
                                                     "loss": loss.detach()})
    if parallel is not None:
        running.combine_ranks()
    return running.result()


def _train_step(trainer: Trainer, forward: nn.Module, inputs: torch.Tensor, targets: BatchTargets, weight: float,
                total_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One update on a batch; returns its mean loss and its logits (both left on the device)."""
    with autocast(trainer.precision, trainer.device):
        logits = forward(inputs)
    loss = targets.loss(trainer.loss_fn, logits.float())
    trainer.optimizer.zero_grad(set_to_none=True)
    (loss * weight if weight != 1.0 else loss).backward()
    trainer.set_learning_rate(total_steps)
    trainer.optimizer.step()
    trainer.step += 1
    return loss, logits


@torch.no_grad()
def predict_logits(module: nn.Module, images: torch.Tensor, batch_size: int, device: torch.device,
                   precision: str, tta: int = 0, tta_fraction: float = 1.0) -> torch.Tensor:
    """Logits (float32, on the device) for every image, in order, in eval mode, averaged over TTA views
    (for the least confident ``tta_fraction`` of the images; see :func:`selective_logits`)."""
    module.eval()

    def score(indices: torch.Tensor | None, level: int) -> torch.Tensor:
        subset = images if indices is None else images[indices.to(images.device)]
        outputs = []
        for window in evaluation_slices(len(subset), batch_size):
            inputs = to_model_input(subset[window], device)
            with compile_timing(module, inputs), autocast(precision, device):
                outputs.append(tta_logits(module, inputs, level).float())
        return torch.cat(outputs)

    return selective_logits(score, tta, tta_fraction)


def validate(trainer: Trainer, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
             parallel: DataParallel | None = None) -> dict[str, float]:
    """Loss and accuracy without TTA, in eval mode; in a data-parallel fit each rank scores its share
    and the sums are combined."""
    if parallel is None:
        logits = predict_logits(trainer.forward, images, batch_size, trainer.device, trainer.precision)
        return evaluate_logits(logits, labels, trainer.loss_fn)
    share = parallel.shard(len(images))
    sums = RunningAverages(trainer.device)
    if share.stop > share.start:  # a validation set smaller than the number of processes leaves some without images
        logits = predict_logits(trainer.forward, images[share], batch_size, trainer.device, trainer.precision)
        targets = labels[share].to(trainer.device)
        sums.update(trainer.loss_fn(logits, targets), logits, targets)
    sums.combine_ranks()
    return sums.result()


def evaluate_logits(logits: torch.Tensor, labels: torch.Tensor, loss_fn: LossFunction) -> dict[str, float]:
    """Mean loss and accuracy of precomputed logits against class indices."""
    labels = labels.to(logits.device)
    return {
        "loss": float(loss_fn(logits, labels)),
        "acc": float((logits.argmax(dim=1) == labels).double().mean()),
    }
