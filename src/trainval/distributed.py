"""Data-parallel training across processes with PyTorch's own engine (torch.distributed, DDP, torchrun).

``torchrun --nproc-per-node N -m trainval train ...`` starts N copies of trainval; each finds its
rank in the environment torchrun sets, joins the process group (NCCL on CUDA, gloo on CPU) and
trains on its shard of every global batch. A process torchrun starts always joins the group, even
alone (``--nproc-per-node 1``), so one GPU runs the same path as many. A process started without
torchrun needs nothing here: every helper then does the single-process thing.
"""

from __future__ import annotations

import datetime
import gc
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from trainval.errors import ConfigError, TrainvalError

T = TypeVar("T")
_TIMEOUT = datetime.timedelta(minutes=30)  # a rank waiting longer than this for the others gives up
_TORCHRUN_VARIABLE = "TORCHELASTIC_RUN_ID"  # set for every process torchrun starts


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0  # 0..size-1; rank 0 prints, writes files and checkpoints
    size: int = 1
    local_rank: int = 0  # rank on this machine: picks the GPU
    grouped: bool = False  # in a torch.distributed process group (launched by torchrun), even of one process

    @property
    def is_main(self) -> bool:
        """True on the one process that prints and writes."""
        return self.rank == 0


def launched_world() -> World:
    """The world torchrun described in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), else one process."""
    try:
        return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                     int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as error:
        raise ConfigError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers ({error}); launch with torchrun") from error


def setup(device: str | None = None) -> World:
    """Join the process group torchrun prepared, once; a process started without torchrun needs and does nothing.

    The backend is NCCL when the processes train on CUDA GPUs (each on GPU ``LOCAL_RANK``) and
    gloo on CPUs. Returns this process's :class:`World`.
    """
    world = launched_world()
    if dist.is_initialized() or (world.size == 1 and _TORCHRUN_VARIABLE not in os.environ):
        return current_world()
    use_cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    if use_cuda:
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=_TIMEOUT)
    return current_world()


def launch_with_torchrun(nproc: int, program: list[str]) -> int:
    """Run ``program`` (e.g. ``["-m", "trainval", "train", ...]``) in ``nproc`` processes on this machine
    with torchrun, and return its exit status. Ctrl-C is passed on, so torchrun stops every process."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *program]
    print(f"Launching {nproc} processes: torchrun {' '.join(command[3:])}", flush=True)
    launcher = subprocess.Popen(command)
    try:
        return launcher.wait()
    except KeyboardInterrupt:
        launcher.send_signal(signal.SIGINT)
        launcher.wait()
        raise


def current_world() -> World:
    """This process's world: from the initialised process group, else a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), grouped=True)


def backend_name() -> str:
    """The process group's backend (``"gloo"``, ``"nccl"``), or ``"none"`` in a single process."""
    return dist.get_backend() if dist.is_available() and dist.is_initialized() else "none"


def shutdown() -> None:
    """Leave the process group (at the end of a run), once every process has got there: a process that
    left while another still talked to it would bring that one down."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        # DistributedDataParallel wrappers left in reference cycles hold the process group; freeing them now
        # rather than during interpreter exit keeps the group's threads from being torn down half-way.
        gc.collect()
        dist.destroy_process_group()


def on_main_then_shared(action: Callable[[], T]) -> T:
    """Run ``action`` on rank 0 alone (creating a folder, reading a file only it may see) and return its
    result on every rank; a TrainvalError it raises is raised on every rank."""
    result, error = None, None
    if current_world().is_main:
        try:
            result = action()
        except TrainvalError as raised:
            error = raised
    result, error = broadcast_from_main((result, error))
    if error is not None:
        raise error
    return result  # type: ignore[return-value]


def local_main_first(action: Callable[[], T]) -> T:
    """Run ``action`` on every rank, on each machine's local rank 0 before the others (so a download
    or a decoding into the machine's cache happens once, and the others read the cache)."""
    world = current_world()
    if not world.grouped:
        return action()
    if world.local_rank == 0:
        result = action()
        dist.barrier()
        return result
    dist.barrier()
    return action()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over every rank (in place); unchanged in a single process."""
    if current_world().grouped:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_from_main(value: T) -> T:
    """Rank 0's ``value`` on every rank (any picklable object); unchanged in a single process."""
    if not current_world().grouped:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_to_all(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank; ``[value]`` in a single process."""
    world = current_world()
    if not world.grouped:
        return [value]
    values: list[Any] = [None] * world.size
    dist.all_gather_object(values, value)
    return values
