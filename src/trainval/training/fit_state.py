"""Where a ``fit`` stands, down to the step: what a checkpoint must hold to continue it exactly.

Weights and the optimiser live in the module and the :class:`~trainval.training.loop.Trainer`;
everything else a fit needs to go on as if never interrupted is here: the epoch and step, the
epoch's sample order, the running loss and accuracy sums, and the random generator that draws
shuffles and augmentations. That generator lives where the data does (see
:mod:`trainval.training.placement`), and so do the epoch's order and the augmentation's state.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch

from trainval.data.augment import Augmentation, BoundAugmentation
from trainval.data.batches import sample_order, split_order
from trainval.errors import CheckpointError
from trainval.training.running_averages import RunningAverages

# What must be equal for a checkpoint to continue this fit: same data, same batches, same length.
_IDENTITY = ("epochs", "initial_epoch", "start_step", "batch_size", "samples", "shuffle", "data_fingerprint")
_FINGERPRINT_IMAGES = 256  # images hashed, spread over the data set: cheap, and catches other data


def data_fingerprint(images: torch.Tensor, labels: torch.Tensor, sample_weights: torch.Tensor | None = None) -> str:
    """A short digest of the training data: every label (and sample weight) and a spread sample of the images
    (wherever they live)."""
    digest = hashlib.sha256(str(tuple(images.shape)).encode())
    digest.update(labels.cpu().contiguous().numpy().tobytes())
    if sample_weights is not None:
        digest.update(sample_weights.cpu().contiguous().numpy().tobytes())
    stride = max(len(images) // _FINGERPRINT_IMAGES, 1)
    digest.update(images[::stride].cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class FitState:
    """The position and random state of one ``fit`` call; the loop advances it, checkpoints save it."""

    epochs: int
    initial_epoch: int
    start_step: int  # the trainer's update count when this fit began (a second fit starts later)
    batch_size: int
    samples: int
    shuffle: bool
    data_fingerprint: str
    total_steps: int  # the trainer's step count when this fit ends: the schedule's horizon
    generator: torch.Generator  # draws every epoch's order and the augmentations, on the data's device
    device: torch.device  # the model's
    epoch: int  # the epoch under way (0-based)
    augment: BoundAugmentation | None = None
    processes: int = 1  # data-parallel processes sharing every batch (decides the merging of a small last batch)
    batch: int = 0  # steps of ``epoch`` done
    epoch_done: bool = False  # ``epoch`` trained and validated; its epoch-end callbacks are running
    order: torch.Tensor | None = None  # ``epoch``'s sample order, drawn when the epoch begins
    running: RunningAverages | None = None  # ``epoch``'s loss and accuracy so far
    sample_weights: torch.Tensor | None = None  # float32 (samples,): class and sample weights; None: all 1

    @classmethod
    def start(cls, images: torch.Tensor, labels: torch.Tensor, *, epochs: int, initial_epoch: int, batch_size: int,
              shuffle: bool, start_step: int, steps_per_epoch: int, generator: torch.Generator, device: torch.device,
              augmentation: Augmentation | None, processes: int,
              sample_weights: torch.Tensor | None = None) -> FitState:
        """The state of a fit about to train on ``images`` and ``labels`` (each sample's loss weighted by
        ``sample_weights``), from ``initial_epoch`` and the trainer's update ``start_step`` on."""
        return cls(epochs=epochs, initial_epoch=initial_epoch, start_step=start_step, batch_size=batch_size,
                   samples=len(images), shuffle=shuffle,
                   data_fingerprint=data_fingerprint(images, labels, sample_weights),
                   total_steps=start_step + steps_per_epoch * max(epochs - initial_epoch, 0), generator=generator,
                   device=device, epoch=initial_epoch,
                   augment=augmentation.bind(len(images), generator) if augmentation else None, processes=processes,
                   sample_weights=sample_weights)

    def begin_epoch(self) -> None:
        """Draw the epoch's order, unless a restored checkpoint already put the fit inside this epoch."""
        if self.order is None:
            self.order = sample_order(self.samples, self.shuffle, self.generator)
            self.running = RunningAverages(self.device)

    def batches(self) -> list[torch.Tensor]:
        """The epoch's index batches, all of them, including those already done."""
        assert self.order is not None, "begin_epoch() draws the order first"
        return split_order(self.order, self.batch_size, self.processes)

    def end_epoch(self) -> None:
        self.epoch += 1
        self.batch = 0
        self.epoch_done = False
        self.order = None
        self.running = None

    def state_dict(self) -> dict[str, Any]:
        """Plain values and tensors; a state saved once an epoch is done points at the next one."""
        state: dict[str, Any] = {name: getattr(self, name) for name in _IDENTITY}
        state["total_steps"] = self.total_steps
        state["generator"] = self.generator.get_state()
        state["data_device"] = self.generator.device.type
        state["first_flip"] = None if self.augment is None else self.augment.first_flip
        if self.epoch_done or self.order is None:
            state.update(epoch=self.epoch + int(self.epoch_done), batch=0, order=None, running=None)
        else:
            assert self.running is not None
            state.update(epoch=self.epoch, batch=self.batch, order=self.order, running=self.running.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any], source: str) -> None:
        """Continue from ``state``; a CheckpointError naming ``source`` if it belongs to another fit."""
        differences = [f"{name} {state.get(name)!r} there, {getattr(self, name)!r} here"
                       for name in _IDENTITY if state.get(name) != getattr(self, name)]
        if differences:
            raise CheckpointError(f"{source} was written by a different fit ({'; '.join(differences)}); resume with "
                                  "the same data, epochs, batch size and shuffle, or start in a new folder")
        if (state["first_flip"] is None) != (self.augment is None):
            raise CheckpointError(f"{source} was written with{'out' if self.augment else ''} augmentation; "
                                  "compile the model the way the checkpointed run did")
        _check_position(state, self, source)
        data_device = self.generator.device
        saved_device = state.get("data_device", "cpu")  # checkpoints from before data could live on a GPU
        if saved_device != data_device.type:
            raise CheckpointError(f"{source} was written by a fit whose data lived on {saved_device}, and this fit's "
                                  f"lives on {data_device.type}, whose random generator draws differently; resume on "
                                  "the kind of device it ran on (Model.compile(data_on_device=...) chooses where the "
                                  "data lives)")
        self.total_steps = int(state["total_steps"])
        self.generator.set_state(state["generator"])
        if self.augment is not None:
            self.augment.first_flip = state["first_flip"].to(data_device)
        self.epoch, self.batch, self.epoch_done = int(state["epoch"]), int(state["batch"]), False
        self.order = None if state["order"] is None else state["order"].to(data_device)
        self.running = None
        if state["running"] is not None:
            self.running = RunningAverages(self.device)
            self.running.load_state_dict(state["running"])


def _check_position(state: dict[str, Any], fit: FitState, source: str) -> None:
    """A CheckpointError unless the saved position lies inside this fit (a file can pass its checksum
    and still have been written by something else)."""
    epoch, batch, order = state["epoch"], state["batch"], state["order"]
    problem = None
    if not (isinstance(epoch, int) and fit.initial_epoch <= epoch <= fit.epochs):
        problem = f"epoch {epoch!r} is outside {fit.initial_epoch}..{fit.epochs}"
    elif order is not None and not (isinstance(order, torch.Tensor) and order.dtype == torch.int64
                                    and order.shape == (fit.samples,)
                                    and torch.equal(order.sort().values, torch.arange(fit.samples))):
        problem = f"the sample order is not a permutation of the {fit.samples} samples"
    elif not (isinstance(batch, int) and 0 <= batch <= (0 if order is None else len(split_order(order, fit.batch_size, fit.processes)))):
        problem = f"step {batch!r} is outside the epoch"
    if problem:
        raise CheckpointError(f"{source} does not describe a position in this fit ({problem}); "
                              "it was not written by trainval for this run")
