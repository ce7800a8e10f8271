"""Will a training batch fit in memory? Estimated before training, from the network itself.

A training step keeps, for the backward pass, the tensors autograd saves in the forward pass: they
grow with the batch and the image size, and at 224 pixels they, not the weights, fill the memory.
The estimate runs the forward pass once on PyTorch's "meta" device (shapes only: no memory, no
arithmetic) with a hook that adds up the bytes of every saved tensor, at two batch sizes; the
difference is the cost of one more image. Measured against the peak memory of real fp32 training
steps on a CPU (fastnet at 32, 128 and 224 pixels, batches of 32 to 512) the saved tensors came to
0.80 to 1.12 times the peak's growth, so the estimate adds a quarter; bf16 steps took about half.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from trainval.datasets.memory_budget import SPARE_SHARE, available_memory

_HEADROOM = 1.25  # peak over saved tensors: transient outputs, gradients in flight, the batch's own copies


@dataclass(frozen=True)
class TrainingMemory:
    """What training a network on one input shape needs: a fixed part and a part per image in the batch."""

    per_image: float  # bytes
    fixed: float  # bytes saved whatever the batch (weights some layers keep for their gradients)

    def for_batch(self, batch_size: int) -> float:
        """Bytes a training step on ``batch_size`` images needs."""
        return self.fixed + self.per_image * batch_size

    def largest_batch(self, available: float) -> int:
        """The largest power of two whose step fits in ``SPARE_SHARE`` of ``available`` bytes (0 if none does)."""
        room = (available * SPARE_SHARE - self.fixed) / self.per_image
        return 0 if room < 1 else 1 << int(math.log2(room))

    def fits(self, batch_size: int, available: float) -> bool:
        """Whether a step on ``batch_size`` images fits in ``SPARE_SHARE`` of ``available`` bytes."""
        return self.for_batch(batch_size) <= available * SPARE_SHARE


def training_memory(module: nn.Module, input_shape: tuple[int, int, int]) -> TrainingMemory:
    """Estimate what a training step of ``module`` (built on the meta device) needs for (H, W, C) images."""
    height, width, channels = input_shape
    was_training = module.training
    module.train()
    small, large = (_saved_bytes(module, torch.empty(count, channels, height, width, device="meta"))
                    for count in (2, 4))  # two images at least: BatchNorm refuses one
    module.train(was_training)
    per_image = (large - small) / 2
    return TrainingMemory(per_image=per_image * _HEADROOM, fixed=max(small - 2 * per_image, 0.0))


def device_memory_available(device: torch.device) -> int | None:
    """Bytes free for training on ``device`` (a GPU's free memory, the machine's available memory for the
    CPU); None where unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return available_memory() if device.type == "cpu" else None


def _saved_bytes(module: nn.Module, inputs: torch.Tensor) -> int:
    total = 0

    def count(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(count, lambda tensor: tensor):
        module(inputs)
    return total
