"""The README's command-line examples run as written, with default options, on tiny generated data.

A new user's first commands must not hit a dead end on a small data set: the CIFAR-format files
hold 30 training images (so the default holdout, batch size and TTA must all adapt), the image
folder 24 photos, and the set-of-seeds and data-parallel lines run too.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from PIL import Image

from trainval.cli import main

from cifar_files import write_cifar10_folder
from dataset_files import write_photos

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    """The ``trainval ...`` lines of the README's command-line block, comments dropped."""
    block = re.search(r"## The command line\n\n```bash\n(.*?)```", README.read_text(), re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("trainval ")]


def test_the_readme_lists_the_commands_this_test_runs():
    commands = readme_commands()
    assert "trainval train" in commands and "trainval train --preset quick --seeds 5" in commands
    assert "trainval train --dataset folder:photos --image-size 64" in commands
    assert "trainval train --nproc 2" in commands


@pytest.fixture
def tiny_world(tmp_path, monkeypatch):
    """What the README's commands expect to find: data via TRAINVAL_DATA, photos/, two image files."""
    write_cifar10_folder(tmp_path / "data")
    monkeypatch.setenv("TRAINVAL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    write_photos(tmp_path / "photos")
    for name, colour in (("cat.jpg", (200, 120, 40)), ("dog.png", (30, 60, 90))):
        Image.new("RGB", (48, 40), colour).save(tmp_path / name)
    return tmp_path


def run_as_written(line: str, runs: Path) -> int:
    arguments = shlex.split(line)[1:]
    latest = max((folder for folder in runs.iterdir() if (folder / "result.json").exists()),
                 key=lambda folder: folder.stat().st_mtime, default=None) if runs.exists() else None
    arguments = [str(latest) if argument == "runs/<name>" else argument for argument in arguments]
    try:
        return main(arguments)
    except SystemExit as stop:  # --help
        return int(stop.code or 0)


def test_every_readme_command_runs_on_tiny_data_with_default_options(tiny_world, capfd):
    outcomes = {}
    for line in readme_commands():
        outcomes[line] = run_as_written(line, tiny_world / "runs")
        out, err = capfd.readouterr()  # fd level: --nproc prints from its own processes
        if "--compare" in line:  # 30 images cannot time 50 steps of 256: an accurate refusal, nothing else
            assert outcomes[line] == 2 and "--compare needs at least 512 training images" in err, err
            outcomes[line] = 0
        assert "Traceback" not in out + err, (line, err)
        if line.startswith("trainval train") and "--help" not in line:
            assert "Accuracy:" in out or "test accuracy" in out, (line, out, err)
    assert outcomes == dict.fromkeys(outcomes, 0), outcomes
    assert (tiny_world / "model" / "model.json").exists()  # the tutorial line's --output
    assert list((tiny_world / "runs").glob("*/export/model.onnx"))
