"""The trainval command runs the whole workflow and fails with one clear line."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

import trainval
from trainval.cli import main
from cifar_files import write_cifar10_folder

ACCURACY_LINE = re.compile(r"^Accuracy: \d+\.\d\d% \(95% CI \d+\.\d\d-\d+\.\d\d%, \d+ test images\)$", re.M)


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TRAINVAL_DATA", raising=False)
    write_cifar10_folder(tmp_path / "data")
    return tmp_path / "data"


def train(cifar_dir, *extra):
    return main(["train", "--data-dir", str(cifar_dir), "--epochs", "1", "--batch-size", "8",
                 "--holdout-size", "10", "--verbose", "2", *extra])


def test_train_runs_end_to_end_and_prints_the_accuracy_with_its_interval(cifar_dir, tmp_path, capsys):
    assert train(cifar_dir, "--output", str(tmp_path / "model")) == 0
    out = capsys.readouterr().out
    assert ACCURACY_LINE.search(out), out
    assert "Train on 20 samples, validate on 10 samples" in out  # 30 training images, 10 held out
    assert "Epoch 1/1" in out
    model = trainval.load_model(tmp_path / "model")
    assert model.class_names == list(trainval.datasets.cifar10.CLASS_NAMES)
    assert model.predict(np.zeros((2, 32, 32, 3), np.uint8)).shape == (2, 10)


def test_validation_on_the_test_set_comes_with_a_warning(cifar_dir, capsys):
    assert train(cifar_dir, "--validation", "test") == 0
    out = capsys.readouterr().out
    assert "not an unbiased" in out or "biased" in out
    assert "validate on 10 samples" in out and ACCURACY_LINE.search(out)


def test_validation_none_trains_on_everything(cifar_dir, capsys):
    assert train(cifar_dir, "--validation", "none") == 0
    out = capsys.readouterr().out
    assert "Train on 30 samples\n" in out and "val_acc" not in out


def test_same_seed_same_cli_result(cifar_dir, capsys):
    results = []
    for _ in range(2):
        assert train(cifar_dir, "--seed", "4", "--epochs", "2") == 0
        results.append(ACCURACY_LINE.search(capsys.readouterr().out).group(0))
    assert results[0] == results[1]


@pytest.mark.parametrize("args, status, message", [
    (["--epochs", "-1"], 2, "epochs must be"),
    (["--batch-size", "0"], 2, "batch-size must be"),
    (["--model", "nope"], 2, "unknown model 'nope'"),
    (["--holdout-size", "30"], 2, "validation set of 30"),
])
def test_bad_options_give_one_line_and_a_usage_exit_status(cifar_dir, capsys, args, status, message):
    assert train(cifar_dir, *args) == status
    err = capsys.readouterr().err
    assert err.startswith("trainval: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_data_gives_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TRAINVAL_DATA", raising=False)
    assert main(["train", "--data-dir", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--data-dir" in err and "nowhere" in err


def test_argparse_rejects_unknown_choices_with_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--precision", "fp8"])
    assert exit_info.value.code == 2


def test_module_entry_point_explains_every_train_option():
    result = subprocess.run([sys.executable, "-m", "trainval", "train", "--help"], capture_output=True, text=True,
                            check=True)
    for option in ("--dataset", "--model", "--epochs", "--batch-size", "--seed", "--data-dir", "--precision",
                   "--validation", "--output"):
        assert option in result.stdout
