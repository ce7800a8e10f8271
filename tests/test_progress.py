"""``verbose="auto"``: a live bar where someone watches (a terminal, a Jupyter kernel), a line per epoch in logs."""

from __future__ import annotations

import io
import sys
import types

import pytest

from trainval.callbacks.progress import ProgressLogger, in_notebook, resolve_verbose


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def fake_ipython(monkeypatch, config: dict) -> None:
    """An imported IPython whose running shell has ``config`` (a kernel's names its ``IPKernelApp``)."""
    shell = types.SimpleNamespace(config=config)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))


def test_auto_is_a_live_bar_in_a_jupyter_kernel(monkeypatch):
    fake_ipython(monkeypatch, {"IPKernelApp": {}})
    assert in_notebook()
    assert resolve_verbose("auto") == 1


@pytest.mark.parametrize("config", [None, {}], ids=["no-ipython", "ipython-in-a-terminal"])
def test_auto_is_a_line_per_epoch_outside_a_kernel_when_stdout_is_not_a_terminal(monkeypatch, config):
    if config is None:
        monkeypatch.delitem(sys.modules, "IPython", raising=False)
    else:
        fake_ipython(monkeypatch, config)
    assert not in_notebook()
    assert resolve_verbose("auto") == 2  # pytest captures stdout: not a terminal


def test_a_stream_given_decides_alone_even_in_a_kernel(monkeypatch):
    fake_ipython(monkeypatch, {"IPKernelApp": {}})
    assert resolve_verbose("auto", io.StringIO()) == 2
    assert resolve_verbose("auto", Terminal()) == 1
    stream = io.StringIO()
    logger = ProgressLogger(1, stream)  # writes its bar to the stream, not to the notebook
    logger.set_params({"epochs": 1, "samples": 4, "steps": 1})
    logger.on_epoch_begin(0)
    logger.on_epoch_end(0, {"loss": 0.5})
    assert stream.getvalue().startswith("Epoch 1/1\n") and "4/4 [" in stream.getvalue()
