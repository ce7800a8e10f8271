"""Does a run fit in memory? Its images were checked before decoding (``datasets.memory_budget``);
here, once they are loaded, the training step is: its activations at the preset's batch size against
the memory the training device has left.

A new run whose batch does not fit trains on the largest power-of-two batch that does (the
learning rate scales with it, as with ``--batch-size``), with a note; a resumed run keeps its batch,
so it is refused instead, and so is a run that no batch of two fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from trainval import datasets
from trainval.config import TrainConfig
from trainval.datasets.memory_budget import SPARE_SHARE, format_bytes
from trainval.distributed import current_world
from trainval.errors import ConfigError
from trainval.model_factory import create_model
from trainval.presets import Preset
from trainval.training.memory_fit import device_memory_available, training_memory
from trainval.training.precision import resolve_device

if TYPE_CHECKING:
    from trainval.run_data import RunData

_SMALLEST_BATCH = 2  # BatchNorm needs two images to normalise


@dataclass(frozen=True)
class MemoryPlan:
    """The batch size a run must train with (None: the preset's fits), why, and the lines to tell the user."""

    batch_size: int | None
    notes: list[str] = field(default_factory=list)
    reason: str = ""  # why the batch was lowered


def plan_memory(config: TrainConfig, preset: Preset, data: RunData, may_lower_batch: bool) -> MemoryPlan:
    """Estimate the memory training ``preset`` on ``data`` takes and plan its batch (see the module docstring).

    Raises:
        ConfigError: no batch of two fits, or a resumed run's batch does not fit (``may_lower_batch`` False).
    """
    images = data.train[0]
    shape = tuple(int(size) for size in images.shape[1:])
    with torch.device("meta"):  # shapes only: nothing is allocated, nothing computed
        module = create_model(preset.model, data.dataset.num_classes, shape, device="meta",
                              **preset.model_options).module
    memory = training_memory(module, shape)
    device = resolve_device(None)
    available = device_memory_available(device)
    if available is None:
        return MemoryPlan(None)
    world = current_world().size
    # On a GPU each process has its own memory and its share of the batch; CPU processes share the machine's.
    sharing = 1 if device.type == "cuda" else world
    per_device = -(-preset.batch_size // world) * sharing
    notes = []
    if config.dataset.startswith(datasets.FOLDER_PREFIX):
        held = sum(array.nbytes for pair in (data.train, data.validation or (), data.test) for array in pair)
        notes.append(f"Memory: the decoded images take {format_bytes(held)}; training {preset.model} on "
                     f"{shape[0]}x{shape[1]}x{shape[2]} images in batches of {preset.batch_size} needs about "
                     f"{format_bytes(memory.for_batch(per_device))} more ({format_bytes(memory.per_image)} an image); "
                     f"{format_bytes(available)} available on the {device.type}")
    if memory.fits(per_device, available):
        return MemoryPlan(None, notes)
    largest = memory.largest_batch(available) // sharing * world
    needs = (f"training {preset.model} on {shape[0]}x{shape[1]} images in batches of {preset.batch_size} needs about "
             f"{format_bytes(memory.for_batch(per_device))} of memory ({format_bytes(memory.per_image)} an image), "
             f"more than the {format_bytes(available * SPARE_SHARE)} ({SPARE_SHARE:.0%}) of the "
             f"{format_bytes(available)} available on the {device.type} that a training step may take")
    if largest < _SMALLEST_BATCH * world:
        raise ConfigError(f"{needs}; even a batch of {_SMALLEST_BATCH} does not fit: use a smaller --image-size, a "
                          "smaller model, or a machine with more memory")
    if not may_lower_batch:
        raise ConfigError(f"{needs}; this run trains with that batch, so resume it where more memory is free (a "
                          f"new run would train on batches of {largest})")
    return MemoryPlan(largest, notes, needs)
