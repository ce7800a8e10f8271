"""Keras-style progress output, as a callback: a live bar (verbose=1) or one line per epoch (verbose=2).

The live bar is tqdm's, drawn on the terminal; in a Jupyter kernel, each epoch's bar is one output of
the cell, redrawn in place (:mod:`trainval.callbacks.notebook_bar`).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from tqdm import tqdm

from trainval.errors import ConfigError
from trainval.callbacks.base import Callback, Logs

if TYPE_CHECKING:
    from trainval.callbacks.notebook_bar import NotebookBars

_BAR_WIDTH = 30
_REFRESH_SECONDS = 0.25  # notebooks and logs must not flood
_LIVE_FORMAT = "{n_fmt}/{total_fmt} [{bar:%d}] - ETA: {remaining_s:.0f}s - {desc}" % _BAR_WIDTH
_DONE_FORMAT = "{n_fmt}/{total_fmt} [{bar:%d}] - {desc}" % _BAR_WIDTH


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (JupyterLab, Notebook, VS Code, Colab), whose stdout is not a
    terminal though the cell shows output live."""
    ipython = sys.modules.get("IPython")  # a kernel has imported it; importing it here would be slow
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in shell.config


def resolve_verbose(verbose: int | str, stream: TextIO | None = None) -> int:
    """``"auto"`` is 1 (live bar) in a terminal or a Jupyter notebook and 2 (a line per epoch) otherwise,
    e.g. in logs."""
    if verbose == "auto":
        return 1 if (stream or sys.stdout).isatty() or (stream is None and in_notebook()) else 2
    if verbose not in (0, 1, 2):
        raise ConfigError(f"verbose must be 0, 1, 2 or 'auto'; got {verbose!r}")
    return int(verbose)


def format_metrics(logs: Logs) -> str:
    """``loss: 1.7090 - acc: 0.3742 - ...`` for every number in ``logs``, in order."""
    return " - ".join(f"{key}: {value:.4f}" for key, value in logs.items() if isinstance(value, (int, float)))


def format_timing(seconds: float, steps: int) -> str:
    """``12s 31ms/step``: the epoch's wall time and the mean time per step."""
    return f"{seconds:.0f}s {1000 * seconds / max(steps, 1):.0f}ms/step"


class ProgressLogger(Callback):
    """Prints what Keras prints: the sample counts, ``Epoch i/N`` and the epoch's metrics.

    Without a ``stream``, in a Jupyter kernel, the live bar is redrawn in place in the cell.
    """

    def __init__(self, verbose: int, stream: TextIO | None = None) -> None:
        super().__init__()
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self._notebook: NotebookBars | None = None
        if verbose == 1 and stream is None and in_notebook():
            from trainval.callbacks.notebook_bar import NotebookBars  # loads IPython's display: kernels only
            self._notebook = NotebookBars()
        self._bar: tqdm | None = None
        self._epoch_start = 0.0
        self._last_postfix = 0.0

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def on_train_begin(self, logs: Logs | None = None) -> None:
        validation = self.params.get("val_samples")
        suffix = f", validate on {validation} samples" if validation else ""
        self._print(f"Train on {self.params['samples']} samples{suffix}")

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        header = f"Epoch {epoch + 1}/{self.params['epochs']}"
        self._epoch_start = time.perf_counter()
        if self._notebook is None:
            self._print(header)
        if self.verbose == 1:
            settings = {"total": self.params["samples"], "ascii": ".>=", "mininterval": _REFRESH_SECONDS,
                        "bar_format": _LIVE_FORMAT}
            self._bar = (self._notebook.bar(header, **settings) if self._notebook is not None
                         else tqdm(file=self.stream, **settings))
            self._last_postfix = self._epoch_start

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if self._bar is None or logs is None:
            return
        now = time.perf_counter()
        if now - self._last_postfix >= _REFRESH_SECONDS:
            # Reading the running averages waits for the device, so do it only when the bar redraws.
            self._bar.set_description_str(format_metrics(logs["running"].result()), refresh=False)
            self._last_postfix = now
        self._bar.update(logs["seen"] - self._bar.n)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        summary = f"{format_timing(time.perf_counter() - self._epoch_start, self.params['steps'])} - {format_metrics(logs or {})}"
        if self._bar is not None:
            self._bar.bar_format = _DONE_FORMAT
            self._bar.set_description_str(summary, refresh=False)
            self._bar.update(self.params["samples"] - self._bar.n)
            self._bar.close()
            self._bar = None
        else:
            samples = self.params["samples"]
            self._print(f"{samples}/{samples} [{'=' * _BAR_WIDTH}] - {summary}")

    def on_train_end(self, logs: Any = None) -> None:
        self.close()

    def on_test_begin(self, logs: Logs | None = None) -> None:
        self._epoch_start = time.perf_counter()

    def on_test_end(self, logs: Logs | None = None) -> None:
        samples = self.params["samples"]
        self._print(f"{samples}/{samples} - {format_timing(time.perf_counter() - self._epoch_start, self.params['steps'])}"
                    f" - {format_metrics(logs or {})}")

    def close(self) -> None:
        """Finish a bar left open (training ended or failed mid-epoch)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._notebook is not None:
            self._notebook.close()
