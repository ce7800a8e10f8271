"""One rank's part in a data-parallel fit: its shard of each global batch, and what the ranks share.

Every rank draws the same epoch order and the same augmentation from the same seeded generator,
augments the whole global batch, and trains on its own contiguous slice of it through PyTorch's
``DistributedDataParallel``, which averages the gradients. Each rank's mean loss is weighted by
its share of the global batch, so the averaged gradient is exactly the gradient of the global
batch's mean loss, uneven last batches included: N processes train as one process would with
the same global batch, except for BatchNorm statistics (per rank unless synchronised) and
dropout masks (drawn per rank).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from trainval.distributed import World, all_reduce_sum, current_world
from trainval.errors import ConfigError


@dataclass
class DataParallel:
    """The DDP wrapper a rank trains through, and how it takes its share of every global batch."""

    world: World
    module: nn.Module  # the DistributedDataParallel wrapper: forward through it in training steps

    @classmethod
    def join(cls, module: nn.Module, device: torch.device, batch_size: int, samples: int,
             sync_batchnorm: bool) -> DataParallel | None:
        """Wrap ``module`` for the initialised process group (even of one process); None without one.

        With ``sync_batchnorm``, BatchNorm layers are replaced by PyTorch's ``SyncBatchNorm``
        (statistics over the global batch), which runs on GPUs only.
        """
        world = current_world()
        check_sync_batchnorm(sync_batchnorm, world.size, device.type == "cuda")
        if not world.grouped:
            return None
        if min(batch_size, samples) < world.size:
            raise ConfigError(f"{min(batch_size, samples)} {'images per batch' if batch_size < samples else 'images'} "
                              f"cannot be shared by {world.size} processes: every process needs at least one; use a "
                              "larger batch or fewer processes")
        if sync_batchnorm:
            _replace_batchnorms(module)
        device_ids = [device.index] if device.type == "cuda" else None
        return cls(world, DistributedDataParallel(module, device_ids=device_ids))

    def shard(self, count: int) -> slice:
        """This rank's contiguous slice of a global batch of ``count`` samples (sizes differ by at most one)."""
        base, extra = divmod(count, self.world.size)
        start = self.world.rank * base + min(self.world.rank, extra)
        return slice(start, start + base + (self.world.rank < extra))

    def loss_weight(self, local: int, total: int) -> float:
        """The factor on this rank's mean loss that makes DDP's gradient average the global batch's mean."""
        return local * self.world.size / total

    def share_buffers(self, module: nn.Module) -> None:
        """Give every rank rank 0's buffers (BatchNorm running statistics), so all evaluate alike."""
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def check_sync_batchnorm(enabled: bool, processes: int, on_cuda: bool) -> None:
    """A ConfigError if synchronised BatchNorm is asked for where PyTorch cannot run it."""
    if not enabled:
        return
    if processes == 1:
        raise ConfigError("sync-bn synchronises BatchNorm across processes; it needs torchrun with more than one "
                          "process (--nproc N)")
    if not on_cuda:
        raise ConfigError("sync-bn uses PyTorch's SyncBatchNorm, which runs on CUDA GPUs only; on CPUs drop "
                          "--sync-bn (each process then normalises with its own share of the batch)")


def _replace_batchnorms(module: nn.Module) -> None:
    """Swap every BatchNorm child for a SyncBatchNorm in place, keeping the same parameter objects
    (the optimiser already holds them)."""
    for name, child in module.named_children():
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(child)
        if converted is not child:
            setattr(module, name, converted)


def reduce_sums(*values: torch.Tensor) -> list[torch.Tensor]:
    """Sum each tensor over every rank (one collective call); unchanged in a single process."""
    flat = torch.stack([value.double() for value in values])
    return list(all_reduce_sum(flat))
