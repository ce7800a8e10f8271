"""The trainval command runs the whole workflow and fails with one clear line."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

import trainval
from trainval.cli import main

ACCURACY_LINE = re.compile(r"^Accuracy: \d+\.\d\d% \(95% CI \d+\.\d\d-\d+\.\d\d%, \d+ test images\)$", re.M)


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
    assert "biased (optimistic) estimate" in out
    assert "validate on 10 samples" in out and ACCURACY_LINE.search(out)


def test_validation_none_trains_on_everything(cifar_dir, capsys):
    assert train(cifar_dir, "--validation", "none") == 0
    out = capsys.readouterr().out
    assert "Train on 30 samples\n" in out and "val_acc" not in out


def test_same_seed_same_cli_result_and_weights(cifar_dir, tmp_path, capsys):
    outputs, weights = [], []
    for run in range(2):
        assert train(cifar_dir, "--seed", "4", "--epochs", "2", "--output", str(tmp_path / f"m{run}")) == 0
        lines = capsys.readouterr().out.splitlines()
        outputs.append([re.sub(r"\d+s \d+ms/step", "", line) for line in lines if "loss" in line or "Accuracy" in line])
        weights.append((tmp_path / f"m{run}" / "model.safetensors").read_bytes())
    assert outputs[0] == outputs[1] and weights[0] == weights[1]


def test_a_different_seed_gives_different_weights(cifar_dir, tmp_path):
    for seed in ("1", "2"):
        assert train(cifar_dir, "--seed", seed, "--output", str(tmp_path / seed)) == 0
    assert (tmp_path / "1" / "model.safetensors").read_bytes() != (tmp_path / "2" / "model.safetensors").read_bytes()


@pytest.mark.parametrize("args, status, message", [
    (["--epochs", "-1"], 2, "epochs must be"),
    (["--batch-size", "0"], 2, "batch-size must be"),
    (["--model", "nope"], 2, "unknown model 'nope'"),
    (["--holdout-size", "30"], 2, "validation set of 30"),
    (["--seed", "-1"], 2, "seed must be"),
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
