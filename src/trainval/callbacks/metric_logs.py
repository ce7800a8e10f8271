"""Per-epoch metric files: Keras's CSVLogger and a JSON-lines twin, safe against crashes and resumes.

Each epoch the whole file is rewritten atomically from the rows kept in memory (a few hundred
bytes an epoch), so a crash never leaves a torn line, and a resumed fit, which gets the rows back
from its checkpoint, never repeats or loses one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path
from typing import Any

from trainval.atomic_files import write_bytes_atomically
from trainval.distributed import current_world
from trainval.errors import OutputError
from trainval.callbacks.base import Callback, Logs


class _EpochRowsLogger(Callback):
    """Keeps one row per epoch (``epoch``, the logs' numbers, ``lr``, ``seconds``) and writes them all."""

    def __init__(self, filename: str | os.PathLike[str], append: bool = False) -> None:
        super().__init__()
        self.filename = Path(filename)
        self.append = append
        self.rows: list[dict[str, Any]] = []
        self._prefix = ""  # what the file held before this fit, kept when appending
        self._epoch_started: float | None = None  # None between epochs
        self._seconds_before_resume = 0.0

    def render(self) -> str:
        """The file's whole text for ``self.rows``."""
        raise NotImplementedError

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.rows = []
        self._prefix = ""
        if self.append and current_world().is_main and self.filename.exists():
            self._prefix = self.filename.read_text()
            if self._prefix and not self._prefix.endswith("\n"):
                self._prefix += "\n"

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._epoch_started = time.perf_counter() - self._seconds_before_resume
        self._seconds_before_resume = 0.0

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        numbers = {key: value for key, value in (logs or {}).items()
                   if isinstance(value, (int, float)) and key != "lr"}
        started = self._epoch_started if self._epoch_started is not None else time.perf_counter()
        self.rows.append({"epoch": epoch, **numbers, "lr": self.model.last_learning_rate,
                          "seconds": round(time.perf_counter() - started, 3)})
        self._epoch_started = None
        if not current_world().is_main:  # one process of a data-parallel fit writes
            return
        try:
            write_bytes_atomically(self.filename, (self._prefix + self.render()).encode())
        except OSError as error:
            raise OutputError(f"cannot write {self.filename} ({error.strerror or error}); free disk space or make "
                              "the folder writable") from error

    def state_dict(self) -> dict[str, Any]:
        in_epoch = 0.0 if self._epoch_started is None else time.perf_counter() - self._epoch_started
        return {"rows": self.rows, "prefix": self._prefix, "seconds_in_epoch": in_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        rows, prefix = state["rows"], state["prefix"]
        if not (isinstance(prefix, str) and isinstance(rows, list) and all(isinstance(row, dict) for row in rows)):
            raise ValueError(f"{type(self).__name__}'s saved rows are malformed")
        self.rows = [dict(row) for row in rows]
        self._prefix = prefix
        self._seconds_before_resume = float(state["seconds_in_epoch"])


class CSVLogger(_EpochRowsLogger):
    """Write each epoch's metrics to a CSV file, as Keras's ``CSVLogger(filename, separator, append)``.

    Columns: ``epoch`` (0-based, as Keras), the logged metrics in order (``loss``, ``acc``,
    ``val_loss``, ``val_acc``, ...), then ``lr`` (the last step's learning rate) and ``seconds``.
    """

    def __init__(self, filename: str | os.PathLike[str], separator: str = ",", append: bool = False) -> None:
        super().__init__(filename, append)
        self.separator = separator

    def render(self) -> str:
        if not self.rows:
            return ""
        buffer = io.StringIO()
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        writer = csv.DictWriter(buffer, fieldnames=columns, delimiter=self.separator, lineterminator="\n")
        if not self._prefix:
            writer.writeheader()
        writer.writerows(self.rows)
        return buffer.getvalue()


class JSONLogger(_EpochRowsLogger):
    """Write each epoch's metrics as one JSON object per line (the same fields as :class:`CSVLogger`)."""

    def render(self) -> str:
        return "".join(json.dumps(row) + "\n" for row in self.rows)
