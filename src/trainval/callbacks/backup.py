"""Exact resume: Keras's BackupAndRestore, but to the step, not just the epoch."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import torch

from trainval.atomic_files import remove_stale_temporaries
from trainval.distributed import broadcast_from_main, current_world
from trainval.errors import CheckpointError, ConfigError, TrainingDiverged
from trainval.runs.state_file import read_state, write_state
from trainval.callbacks.base import Callback, Logs

CHECKPOINT_FILE = "last.safetensors"
_CLOCK_EVERY_STEPS = 16  # data-parallel fits: steps between looks at rank 0's clock for time-based saves


class BackupAndRestore(Callback):
    """Save the whole training state to ``backup_dir`` as training goes; restore it when a fit starts.

    Run the same ``fit`` again after a crash, a kill or a reboot, with this callback pointing at
    the same folder, and it continues from the last save: same weights, same optimiser, same
    position inside the epoch, same random draws, so the result is bit for bit the one an
    uninterrupted fit gives (on the same machine and software).

    Args:
        backup_dir: folder for the checkpoint file (``last.safetensors``).
        save_freq: ``"epoch"`` saves at the end of every epoch; an integer N also saves every N steps.
        save_every_seconds: also save mid-epoch whenever this many seconds have passed since the last save.
        delete_checkpoint: remove the checkpoint when training ends (Keras's default); set False to keep it.

    Every save replaces the file atomically, and a failed save (full disk) keeps the previous one.
    """

    order = 1  # save after every other callback has updated its own state

    def __init__(self, backup_dir: str | os.PathLike[str], save_freq: str | int = "epoch",
                 save_every_seconds: float | None = None, delete_checkpoint: bool = True) -> None:
        super().__init__()
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise ConfigError(f"save_freq must be 'epoch' or a number of steps >= 1; got {save_freq!r}")
        if save_every_seconds is not None and not save_every_seconds > 0:
            raise ConfigError(f"save_every_seconds must be positive; got {save_every_seconds!r}")
        self.path = Path(backup_dir) / CHECKPOINT_FILE
        self.save_steps = None if save_freq == "epoch" else save_freq
        self.save_every_seconds = save_every_seconds
        self.delete_checkpoint = delete_checkpoint
        self._steps_since_save = 0
        self._last_save = time.monotonic()

    def on_train_begin(self, logs: Logs | None = None) -> None:
        # In a data-parallel fit rank 0 owns the file (other machines may not see it) and hands its state round.
        state = None
        if current_world().is_main:
            remove_stale_temporaries(self.path.parent, self.path.name)
            state = read_state(self.path) if self.path.exists() else None
        state = broadcast_from_main(state)
        self._steps_since_save, self._last_save = 0, time.monotonic()
        if state is not None:
            self.model.load_training_state(state, str(self.path))

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self._steps_since_save += 1
        due = self.save_steps is not None and self._steps_since_save >= self.save_steps  # the same on every rank
        if not due and self.save_every_seconds is not None:
            due = self._time_to_save()
        if due:
            self.save()

    def _time_to_save(self) -> bool:
        """Whether the save interval has passed. In a data-parallel fit rank 0's clock decides for every
        rank, asked every few steps only (each asking is a broadcast, which waits for the device)."""
        if current_world().grouped and self._steps_since_save % _CLOCK_EVERY_STEPS:
            return False
        return broadcast_from_main(time.monotonic() - self._last_save >= self.save_every_seconds)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self.save()

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.delete_checkpoint and current_world().is_main:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def save(self) -> None:
        """Write the training state now (the callback calls this on its schedule; in a data-parallel fit,
        every rank calls it at the same step and rank 0 writes)."""
        state = self.model.training_state()
        _check_finite(state["module"])
        if not current_world().is_main:
            self._steps_since_save, self._last_save = 0, time.monotonic()
            return
        try:
            write_state(self.path, state)
        except TypeError as error:
            raise CheckpointError(f"cannot checkpoint this fit: {error} (a callback's state or a logged metric "
                                  "must be numbers, strings, tensors, or lists and dicts of them)") from error
        except OSError as error:
            previous = "the previous checkpoint there is intact" if self.path.exists() else "no checkpoint was kept"
            raise CheckpointError(f"cannot write the checkpoint {self.path} ({error.strerror or error}); {previous}. "
                                  "Free disk space or make the folder writable, then resume") from error
        self._steps_since_save, self._last_save = 0, time.monotonic()


def _check_finite(weights: dict[str, Any]) -> None:
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise TrainingDiverged(f"training diverged: {name} holds NaN or infinite values; the checkpoint was not "
                                   "written, so the last one saved is the last good state. Try a lower learning "
                                   "rate or fp32 precision")


def peek(path: str | os.PathLike[str]) -> dict[str, int]:
    """Where the checkpoint in ``path`` (a backup folder) stands: ``{"epoch": e, "step": s}`` (0-based epoch)."""
    state = read_state(Path(path) / CHECKPOINT_FILE)
    try:
        return {"epoch": int(state["fit"]["epoch"]), "step": int(state["fit"]["batch"])}
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path} does not hold a trainval training state") from error


