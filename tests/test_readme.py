"""The README's Python example runs unchanged (on a tiny generated CIFAR-10 via TRAINVAL_DATA)."""

from __future__ import annotations

import re
from pathlib import Path

from cifar_files import write_cifar10_folder

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_tutorial_snippet_runs_unchanged(tmp_path, monkeypatch, capsys):
    snippet = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert "model.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=10, batch_size=100)" in snippet
    write_cifar10_folder(tmp_path / "data")
    monkeypatch.setenv("TRAINVAL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    exec(compile(snippet, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "Epoch 10/10" in out
    assert re.search(r"^Accuracy: \d+\.\d\d%$", out, re.M)
