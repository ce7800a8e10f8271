"""The README's tutorial in a real Jupyter kernel: a live bar redrawn in place, and one short output per epoch.

The notebook runs with nbclient in an ipykernel, as Jupyter runs it, on a tiny generated CIFAR-10.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from cifar_files import write_cifar10_folder  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
KERAS_LINE = re.compile(r"^Epoch (\d+)/10\n30/30 \[={30}\] - \d+s \d+ms/step - loss: \d\.\d{4} - acc: \d\.\d{4} - "
                        r"val_loss: \d\.\d{4} - val_acc: \d\.\d{4}$")


class RecordingClient(nbclient.NotebookClient):
    """Counts the messages each cell's outputs got: redraws in place and widget traffic (the saved
    notebook keeps only the outcome)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.redraws: Counter[int] = Counter()
        self.widget_messages: Counter[int] = Counter()

    def process_message(self, msg, cell, cell_index):
        if msg["msg_type"] == "update_display_data":
            self.redraws[cell_index] += 1
        elif msg["msg_type"].startswith("comm_"):
            self.widget_messages[cell_index] += 1
        return super().process_message(msg, cell, cell_index)


def tutorial_notebook(without_widgets: bool) -> nbformat.NotebookNode:
    """The README's tutorial snippet, one statement a cell, as someone following it in Jupyter types it."""
    snippet = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    cells = [line for line in snippet.splitlines() if line.strip()]
    if without_widgets:  # as if ipywidgets were not installed
        cells.insert(0, "import sys\nsys.modules['ipywidgets'] = None")
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])


@pytest.fixture
def kernel_name(tmp_path, monkeypatch):
    """A kernel spec for this interpreter, so the kernel imports the trainval under test."""
    spec = tmp_path / "jupyter" / "kernels" / "trainval-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "trainval tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    write_cifar10_folder(tmp_path / "data")
    monkeypatch.setenv("TRAINVAL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return "trainval-test"


@pytest.mark.parametrize("bar", ["widget", "text"])
def test_the_readme_tutorial_in_a_jupyter_kernel_shows_a_live_bar_and_keeps_one_short_line_per_epoch(
        tmp_path, kernel_name, bar):
    if bar == "widget":
        pytest.importorskip("ipywidgets")
    notebook = tutorial_notebook(without_widgets=bar == "text")
    client = RecordingClient(notebook, timeout=300, kernel_name=kernel_name,
                             resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError if a cell fails

    fit = next(index for index, cell in enumerate(notebook.cells) if "model.fit(" in cell.source)
    outputs = notebook.cells[fit].outputs
    assert outputs[0].output_type == "stream" and outputs[0].text == "Train on 30 samples, validate on 10 samples\n"
    epochs = [output for output in outputs if output.output_type == "display_data"]
    assert [int(KERAS_LINE.match(output.data["text/plain"])[1]) for output in epochs] == list(range(1, 11))
    assert all(output.data.keys() == {"text/plain"} for output in epochs)  # text, readable anywhere: no widget left
    # Each epoch's output was drawn, then redrawn in place (the bar), instead of adding outputs.
    assert client.redraws[fit] >= 2 * 10
    if bar == "widget":
        assert client.widget_messages[fit] > 0
    assert len(json.dumps([cell.outputs for cell in notebook.cells])) < 4000
    printed = "".join(output.get("text", "") for output in notebook.cells[-1].outputs)
    assert re.fullmatch(r"Accuracy: \d+\.\d\d%\n", printed)
