"""Live progress bars in a Jupyter kernel, where stdout is not a terminal but output shows as it comes.

Each epoch gets one output of the running cell, redrawn in place through its display id: a widget bar
where ipywidgets is installed, else the terminal's text bar (tqdm redraws it at most 4 times a second).
When the epoch ends that output becomes the epoch's text line, as Keras prints it, so a saved
notebook holds one short text output per epoch, readable anywhere.

Only :class:`~trainval.callbacks.progress.ProgressLogger` imports this module, and only in a kernel:
it loads IPython's display machinery and, where installed, ipywidgets.
"""

from __future__ import annotations

import re
from typing import Any

from IPython.display import display
from tqdm import tqdm
from tqdm.notebook import tqdm_notebook

try:
    import ipywidgets
except ImportError:  # the text bar stands in
    ipywidgets = None

_TEXT_BAR = re.compile(r"\[\{bar(?::\d+)?\}\]")  # the text bar's field; the widget draws the bar itself


class CellOutput:
    """One output of the running cell under a header line, replaced in place on every change.

    It is also the file tqdm's text bar writes to: each redraw (``"\\r"`` and the bar's line)
    replaces the line under the header instead of adding to the cell's output.
    """

    def __init__(self, header: str) -> None:
        self.header = header
        self._handle = display(self._text(""), raw=True, display_id=True)

    def _text(self, line: str) -> dict[str, str]:
        return {"text/plain": f"{self.header}\n{line}" if line else self.header}

    def show_text(self, line: str) -> None:
        """Show ``line`` under the header."""
        self._handle.update(self._text(line), raw=True)

    def show_widget(self, widget: Any) -> None:
        """Show ``widget`` (which carries the header itself) in place of the text."""
        self._handle.update(widget)

    def write(self, text: str) -> int:
        line = text.rsplit("\r", 1)[-1].rstrip()
        if line:  # tqdm also writes bare newlines and empty strings
            self.show_text(line)
        return len(text)

    def flush(self) -> None:
        """Each write is shown at once; nothing waits."""


class NotebookBars:
    """Makes one fit's epoch bars, each in a new output of the running cell.

    Widgets are made once a fit and shown again in each epoch's output: tools that save a notebook's
    widget state (nbclient, papermill) keep every widget ever made, so a widget bar per epoch would
    add kilobytes to the notebook every epoch.
    """

    def __init__(self) -> None:
        self._header: Any = None  # the widgets, once made: a label over tqdm's bar, in a box
        self._bar: Any = None
        self._box: Any = None

    def bar(self, header: str, **settings: Any) -> tqdm:
        """A tqdm bar (``settings`` as for tqdm) under ``header``: a widget where ipywidgets is installed, else text."""
        output = CellOutput(header)
        if ipywidgets is None:
            return tqdm(file=output, **settings)
        bar = _WidgetBar(output, self._bar, **settings)
        if self._box is None:
            self._header, self._bar = ipywidgets.Label(), bar.container
            self._box = ipywidgets.VBox([self._header, self._bar])
        self._header.value = header
        output.show_widget(self._box)
        return bar

    def close(self) -> None:
        """Close the widgets (the outputs that showed them hold text by now)."""
        if self._box is not None:
            for widget in (*self._bar.children, self._bar, self._header, self._box):
                widget.close()
            self._box = None


class _WidgetBar(tqdm_notebook):
    """tqdm's notebook bar on a reused widget (``container``, or a new one when None) that leaves its text line
    in ``output`` when closed."""

    def __init__(self, output: CellOutput, container: Any, **settings: Any) -> None:
        self._output = output
        self._reused = container
        super().__init__(display=False, **settings)

    def status_printer(self, file: Any, total: float | None = None, desc: str | None = None,
                       ncols: int | None = None) -> Any:
        if self._reused is None:
            return tqdm_notebook.status_printer(file, total, desc, ncols)
        _, progress, _ = self._reused.children
        progress.max, progress.value, progress.bar_style = total, 0, ""
        return self._reused

    @property
    def format_dict(self) -> dict[str, Any]:
        values = super().format_dict
        if values.get("bar_format"):
            values["bar_format"] = _TEXT_BAR.sub("{bar}", values["bar_format"])
        return values

    def close(self) -> None:
        if self.disable:
            return
        super().close()
        self._output.show_text(self.format_meter(**super(tqdm_notebook, self).format_dict))
