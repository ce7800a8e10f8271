"""Slow: training on the real CIFAR-10 (TRAINVAL_DATA or ../shared/data/cifar10). Run with -m slow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import trainval
from browser import assert_report_rendered, find_chromium, screenshot
from trainval.evaluation import evaluate_saved_model
from trainval.config import TrainConfig
from trainval.experiment import run_training
from trainval.export import check_onnx, export_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
DATA_DIR = os.environ.get("TRAINVAL_DATA") or (str(SHARED) if SHARED.is_dir() else None)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(DATA_DIR is None, reason="real CIFAR-10 not found: set TRAINVAL_DATA"),
]


def test_real_cifar10_loads_with_keras_shapes():
    (x_train, y_train), (x_test, y_test) = trainval.datasets.cifar10.load_data(DATA_DIR)
    assert x_train.shape == (50000, 32, 32, 3) and y_train.shape == (50000, 1)
    assert x_test.shape == (10000, 32, 32, 3) and y_test.shape == (10000, 1)
    assert sorted(set(y_test.ravel().tolist())) == list(range(10))


def test_seed_cnn_learns_real_cifar10_well_above_chance_in_three_epochs_on_10k_images():
    (x_train, y_train), (x_test, y_test) = trainval.datasets.cifar10.load_data(DATA_DIR)
    model = trainval.create_model("seed-cnn", seed=0)
    model.fit(x_train[:10000], y_train[:10000], epochs=3, batch_size=100, seed=0, verbose=0)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"seed-cnn, 3 epochs on 10,000 real images: test accuracy {accuracy:.4f}, loss {loss:.4f}")
    assert accuracy > 0.25  # chance is 0.10


def test_quick_preset_beats_70_percent_and_its_report_evaluation_and_onnx_agree(tmp_path):
    result = run_training(TrainConfig(preset="quick", data_dir=DATA_DIR, validation="none", verbose=0,
                                      runs_dir=str(tmp_path / "runs"), name="quick"), announce=lambda line: None)
    print(f"quick preset, seed 0: test accuracy {result.test_accuracy:.4f}")
    assert result.test_accuracy > 0.70

    evaluation = evaluate_saved_model(result.run_folder, data_dir=DATA_DIR)
    assert evaluation.scores.accuracy == result.test_accuracy  # same model, same TTA, same precision

    (_, _), (x_test, _) = trainval.datasets.cifar10.load_data(DATA_DIR)
    model = trainval.load_model(result.run_folder, precision="fp32")
    onnx_file = export_model(model, tmp_path / "model.onnx", "onnx")
    check = check_onnx(model, onnx_file, x_test)
    print(f"ONNX vs PyTorch fp32 on the test set: {check}")
    assert check.same_top1 == len(x_test) and check.max_probability_difference < 1e-4

    if find_chromium() is not None:
        screenshot(result.run_folder / "report.html", tmp_path / "report.png", 1200, 2400)
        assert_report_rendered(tmp_path / "report.png", (1200, 2400))
