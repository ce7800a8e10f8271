"""A run folder, ``runs/<name>/``: everything one training run leaves behind, and how to find it again.

::

    config.json              the resolved configuration and the software versions
    metrics.csv, .jsonl      one row per epoch: epoch, loss, acc, val_loss, val_acc, lr, seconds
    checkpoints/last.safetensors   the whole training state, for --resume
    checkpoints/best/        the model with the best monitored validation score
    model/                   the final model (trainval.load_model)
    test_predictions.safetensors   class probabilities of every test image (the report is made from them)
    result.json              the test scores, per class too: its presence means the run finished
    plots/*.png, report.html learning curves, confusion matrix, per-class accuracy, confident mistakes
    tensorboard/             TensorBoard event files, with --tensorboard
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not on Windows: run folders are then not locked
    fcntl = None  # type: ignore[assignment]

from trainval.atomic_files import remove_stale_temporaries, write_bytes_atomically
from trainval.errors import CheckpointError, ConfigError, OutputError
from trainval.runs.record import RunRecord, RunResult

CONFIG_FILE, RESULT_FILE = "config.json", "result.json"
LOCK_FILE = ".lock"  # held (flock) by the process training in the folder


_NAME_BYTES = 200  # a run folder's name, leaving room in a file system's 255 for the staging and seed suffixes


def check_run_name(name: str) -> None:
    """A ConfigError unless ``name`` can be a run folder's name: one plain, visible folder name."""
    if not name.strip() or name != name.strip() or any(not char.isprintable() for char in name):
        raise ConfigError(f"--name must be a visible folder name, without leading or trailing spaces or control "
                          f"characters; got {name!r}")
    if "/" in name or os.sep in name or name in (".", ".."):
        raise ConfigError(f"--name must be a plain folder name (no slashes); got {name!r}")
    if len(name.encode()) > _NAME_BYTES:
        raise ConfigError(f"--name is {len(name.encode())} bytes long; a run folder's name may have at most "
                          f"{_NAME_BYTES}")


class RunFolder:
    """Paths inside one run folder, and its two JSON files."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.best_model = self.checkpoints / "best"
        self.final_model = self.path / "model"
        self.metrics_csv = self.path / "metrics.csv"
        self.metrics_jsonl = self.path / "metrics.jsonl"
        self.config_file = self.path / CONFIG_FILE
        self.result_file = self.path / RESULT_FILE
        self.test_predictions = self.path / "test_predictions.safetensors"
        self.plots = self.path / "plots"
        self.report_file = self.path / "report.html"
        self.tensorboard = self.path / "tensorboard"

    @classmethod
    def create(cls, runs_dir: str | os.PathLike[str], name: str | None, record: RunRecord) -> RunFolder:
        """Make a new ``runs_dir/name`` (default name: the date and time) holding ``record`` as config.json.

        The folder is built under a temporary name and renamed into place, so a run folder that
        exists always has its config.json (a kill in between leaves only a hidden temporary).
        """
        if name is not None:
            check_run_name(name)
        base = name or time.strftime("%Y%m%d-%H%M%S")
        try:
            Path(runs_dir).mkdir(parents=True, exist_ok=True)
            staging = cls(Path(runs_dir) / f".{base}.{uuid.uuid4().hex[:8]}.tmp")
            staging.path.mkdir()
        except OSError as error:
            raise OutputError(f"cannot create a run folder in {runs_dir} ({error.strerror or error}); "
                              "choose a writable --runs-dir") from error
        try:
            staging.write_record(record)
            for attempt in range(1, 100):
                candidate = Path(runs_dir) / (base if attempt == 1 else f"{base}-{attempt}")
                if candidate.exists():
                    if name is None:
                        continue
                    existing = cls(candidate)
                    if not existing.is_blank():
                        raise ConfigError(f"the run folder {candidate} exists already; resume it with "
                                          f"--resume {candidate}, or pick another --name")
                    with existing.locked():  # a run that is starting in it must not lose its folder
                        shutil.rmtree(candidate)
                try:
                    os.rename(staging.path, candidate)
                except OSError as error:
                    raise OutputError(f"cannot create the run folder {candidate} ({error.strerror or error}); "
                                      "choose a writable --runs-dir") from error
                return cls(candidate)
            raise ConfigError(f"too many runs named {base} in {runs_dir}; pass --name")
        finally:
            shutil.rmtree(staging.path, ignore_errors=True)  # nothing left to remove after a successful rename

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunFolder:
        """An existing run folder, to resume; a ConfigError if ``path`` is not one. Temporary files of
        writes a killed process never finished are removed."""
        folder = cls(path)
        if not folder.config_file.is_file():
            raise ConfigError(f"{path} is not a trainval run folder (it has no {CONFIG_FILE}); pass the folder "
                              "a trainval train run created, e.g. runs/<name>")
        for subfolder in (folder.path, folder.checkpoints, folder.best_model, folder.final_model, folder.plots):
            remove_stale_temporaries(subfolder)
        return folder

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder for this process while it trains there; an OutputError if another process holds it.

        The lock is the operating system's (``flock``), so it goes with the process, however it ends.
        """
        try:
            handle = open(self.path / LOCK_FILE, "a+")
        except OSError as error:
            raise OutputError(f"cannot lock the run folder {self.path} ({error.strerror or error}); make it "
                              "writable") from error
        with handle:
            if fcntl is not None:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    handle.seek(0)
                    holder = handle.read().strip()
                    raise OutputError(f"the run folder {self.path} is in use by another trainval process"
                                      f"{f' (pid {holder})' if holder.isdigit() else ''}; wait for it to end or "
                                      "stop it, then try again") from None
            handle.truncate(0)
            handle.write(str(os.getpid()))
            handle.flush()
            yield

    def is_blank(self) -> bool:
        """True if the folder holds no training state: nothing but configs, its lock, temporaries of
        unfinished writes and TensorBoard logs (a run that stopped before its first checkpoint)."""
        return all(entry.is_dir() or entry.name in (CONFIG_FILE, LOCK_FILE)
                   or (entry.name.startswith(".") and entry.name.endswith(".tmp")) or self.tensorboard in entry.parents
                   for entry in self.path.rglob("*"))

    @contextlib.contextmanager
    def removed_if_blank_on_failure(self) -> Iterator[None]:
        """Remove the folder if the block fails before it saved any training state, so that the same
        --name can start afresh (nothing would be lost: there is nothing to resume)."""
        try:
            yield
        except BaseException:
            if self.path.is_dir() and self.is_blank():
                shutil.rmtree(self.path, ignore_errors=True)
            raise

    def owned_subfolder(self, path: Path) -> Path:
        """``path``, a folder inside the run folder that trainval writes into; an OutputError if it is a
        symbolic link or leads out of the run folder (writes must stay inside it)."""
        if path.is_symlink() or (path.exists() and not path.resolve().is_relative_to(self.path.resolve())):
            raise OutputError(f"{path} is a symbolic link or leads out of the run folder; trainval writes only "
                              f"inside {self.path}: remove it, then try again")
        return path

    def write_json(self, path: Path, values: dict[str, Any]) -> None:
        """Replace ``path`` atomically with ``values`` as indented JSON."""
        try:
            write_bytes_atomically(path, (json.dumps(values, indent=2) + "\n").encode())
        except OSError as error:
            raise OutputError(f"cannot write {path} ({error.strerror or error}); free disk space or make "
                              f"{self.path} writable") from error

    def write_record(self, record: RunRecord) -> None:
        """Replace config.json with ``record``."""
        self.write_json(self.config_file, record.to_dict())

    def write_result(self, result: RunResult) -> None:
        """Write result.json, the last file of a finished run."""
        self.write_json(self.result_file, result.to_dict())

    def read_config(self) -> RunRecord:
        """What ``config.json`` holds; a CheckpointError if it is unreadable."""
        try:
            return RunRecord.from_dict(json.loads(self.config_file.read_text()))
        except (OSError, ValueError) as error:
            raise CheckpointError(f"{self.config_file} is unreadable or corrupt ({error}); this run cannot be "
                                  "resumed, start a new one") from error

    def read_result(self, hint: str = "score the run's model again with trainval evaluate") -> RunResult:
        """What ``result.json`` holds (the run's test scores); a CheckpointError, ending with ``hint``,
        if it is unreadable."""
        try:
            return RunResult.from_dict(json.loads(self.result_file.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{self.result_file} is unreadable or corrupt ({error}); {hint}") from error

    def seeds(self) -> list[int] | None:
        """The seeds of a ``--seeds`` set whose parent folder this is; None for a single run."""
        return self.read_config().seeds

    def seed_run(self, seed: int) -> RunFolder:
        """The run folder of ``seed`` inside this parent folder of a ``--seeds`` set."""
        return RunFolder(self.path / f"seed-{seed}")

    def refuse_seeds_parent(self) -> None:
        """A ConfigError if this is the parent folder of a ``--seeds`` run rather than one run."""
        seeds = self.seeds()
        if seeds:
            raise ConfigError(f"{self.path} holds one run per seed ({len(seeds)} of them) and a summary.json; "
                              f"pass one of the runs, e.g. {self.seed_run(seeds[0]).path}")

    def command_hint(self) -> str:
        """The command that resumes this run (the whole set, for one seed of a ``--seeds`` set)."""
        parent = RunFolder(self.path.parent)
        if parent.config_file.exists() and parent.seeds():
            return f"trainval train --resume {parent.path}"
        return f"trainval train --resume {self.path}"
