"""Where a fit's images live: on the host, gathered and copied to the device every step, or on the
device once, so that every step's order, gather, augmentation and [0, 1] scaling run there.

On a GPU the whole uint8 data set usually fits with room to spare (CIFAR-10's 50,000 training
images are 150 MB), and keeping it there leaves nothing to cross the bus per step. The random
generator that shuffles and augments then lives on the device too. A CUDA generator draws other
numbers than the CPU's from the same seed, so a fit with its data on a GPU shuffles and augments
differently from a CPU fit of the same seed; each is reproducible on its own, and the augmented
images are the same for the same draws. On the CPU both placements are the same memory: the
device placement can be forced there (``data_on_device=True``) and gives the host placement's
weights bit for bit, which is how the CPU tests exercise it.
"""

from __future__ import annotations

import torch

# Automatic placement puts the data on a GPU when it takes at most this share of the GPU's free
# memory, leaving the rest to the model's activations.
DEVICE_MEMORY_SHARE = 0.5


def data_device(setting: bool | None, device: torch.device, *tensors: torch.Tensor | None) -> torch.device:
    """Where ``tensors`` (a fit's or a prediction's data) should live when the model runs on ``device``.

    ``setting`` True: on ``device``; False: on the host; None (automatic): on ``device`` when it is
    a CUDA GPU with room for them, else on the host.
    """
    on_device = setting
    if on_device is None:
        on_device = device.type == "cuda" and _fits_on_gpu(device, sum(t.nbytes for t in tensors if t is not None))
    return device if on_device else torch.device("cpu")


def _fits_on_gpu(device: torch.device, nbytes: int) -> bool:
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_MEMORY_SHARE * free


def seeded_generator(device: torch.device, seed: int) -> torch.Generator:
    """The generator that draws a fit's shuffles and augmentations, on the device its data lives on."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
