"""The CLI across data sets: listings, a folder of one's own images end to end, recipes fitted to the data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import trainval
from trainval.cli import main
from trainval.config import TrainConfig

from cifar_files import write_cifar10_folder
from dataset_files import write_cifar100_folder, write_mnist_folder, write_photos


@pytest.fixture
def photos(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return write_photos(tmp_path / "photos")


def train_on(dataset: str, *extra: str) -> int:
    return main(["train", "--dataset", dataset, "--preset", "quick", "--epochs", "1", "--batch-size", "8",
                 "--holdout-size", "3", "--verbose", "0", "--name", "run", *extra])


def test_train_evaluate_predict_and_report_on_a_folder_of_images(photos, capsys):
    assert train_on(f"folder:{photos}", "--image-size", "24") == 0
    out = capsys.readouterr().out
    assert "Accuracy:" in out and "6 test images" in out  # 8 per class, 20% held out: 2 of each of 3 classes
    model = trainval.load_model("runs/run")
    assert model.class_names == ["cat", "dog", "owl"]
    assert model.input_shape == (24, 24, 3)  # a colour image among them makes the set RGB
    result = json.loads(Path("runs/run/result.json").read_text())

    assert main(["evaluate", "runs/run"]) == 0
    evaluated = capsys.readouterr().out
    assert f"{result['test_accuracy'] * 100:.2f}%" in evaluated and "folder:" in evaluated

    assert main(["predict", "runs/run", str(photos / "owl" / "1.png"), "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)
    assert {entry["class"] for entry in predicted["predictions"][0]["top"]} == {"cat", "dog", "owl"}
    assert Path("runs/run/report.html").stat().st_size > 0


def test_a_grayscale_folder_trains_a_one_channel_model_that_still_predicts_colour_files(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    photos = write_photos(tmp_path / "scans", grayscale=True)
    colour = tmp_path / "colour.png"
    Image.fromarray(np.full((40, 30, 3), 120, np.uint8)).save(colour)
    assert train_on(f"folder:{photos}") == 0
    assert trainval.load_model("runs/run").input_shape == (32, 32, 1)
    assert main(["predict", "runs/run", str(colour)]) == 0


def test_a_folder_with_its_own_train_and_test_split_is_scored_on_its_test_images(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    write_photos(tmp_path / "split" / "train", per_class=6)
    write_photos(tmp_path / "split" / "test", per_class=3)
    assert train_on(f"folder:{tmp_path / 'split'}") == 0
    assert "9 test images" in capsys.readouterr().out
    assert main(["train", "--dataset", f"folder:{tmp_path / 'split'}", "--test-fraction", "0.3"]) == 2
    assert "does not apply" in capsys.readouterr().err


def test_folder_options_on_a_registered_data_set_are_a_usage_error(capsys):
    assert main(["train", "--dataset", "cifar10", "--image-size", "64"]) == 2
    assert "folder data sets" in capsys.readouterr().err


def test_a_missing_image_folder_is_one_clear_error_line(tmp_path, capsys):
    assert main(["train", "--dataset", f"folder:{tmp_path / 'nowhere'}"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


def test_an_unknown_data_set_name_lists_the_known_ones(capsys):
    assert main(["train", "--dataset", "imagenet"]) == 2
    err = capsys.readouterr().err
    assert "cifar100" in err and "fashion-mnist" in err


def test_datasets_lists_every_registered_data_set_and_the_folder_form(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in trainval.datasets.names():
        dataset = trainval.datasets.get(name)
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert f" {dataset.num_classes} " in row and "x".join(map(str, dataset.image_shape)) in row
    assert "folder:PATH" in out


def test_models_lists_every_architecture_with_its_parameters_for_the_data_set(capsys):
    assert main(["models", "--dataset", "mnist"]) == 0
    out = capsys.readouterr().out
    assert "28x28x1" in out
    for name in trainval.list_models():
        described = trainval.describe_model(name, 10, (28, 28, 1))
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert f"{described.parameters:,}" in row and f"{described.flops_per_image / 1e6:,.1f}" in row


@pytest.mark.parametrize("preset", trainval.presets.names())
def test_presets_drop_flips_for_digits_and_keep_them_for_clothes(preset):
    digits = TrainConfig(preset=preset, dataset="mnist").resolve_preset()
    clothes = TrainConfig(preset=preset, dataset="fashion-mnist").resolve_preset()
    assert digits.tta == 0 and (digits.augmentation is None or digits.augmentation.flip == "none")
    assert clothes == trainval.presets.get(preset)


@pytest.mark.parametrize("model", trainval.list_models())
def test_every_model_trains_end_to_end_on_a_folder_of_images(photos, model, capsys):
    assert train_on(f"folder:{photos}", "--model", model, "--image-size", "28") == 0
    assert "Accuracy:" in capsys.readouterr().out
    saved = trainval.load_model("runs/run")
    assert saved.input_shape == (28, 28, 3) and saved.num_classes == 3
    assert json.loads(Path("runs/run/result.json").read_text())["model"] == model


WRITERS = {
    "cifar10": lambda root: write_cifar10_folder(root / "cifar10"),
    "cifar100": lambda root: write_cifar100_folder(root / "cifar100", train_size=40),
    "cifar100-coarse": lambda root: write_cifar100_folder(root / "cifar100", train_size=40),
    "mnist": lambda root: write_mnist_folder(root / "mnist", train_size=40),
    "fashion-mnist": lambda root: write_mnist_folder(root / "fashion-mnist", train_size=40),
}


def test_every_registered_data_set_has_a_generated_twin_here():
    # synthetic-cifar10 reads no files: test_dataset_registry.py loads it, the GPU check's bench trains on it
    assert sorted(WRITERS) == sorted(name for name in trainval.datasets.names() if not name.startswith("synthetic-"))


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_every_registered_data_set_trains_end_to_end_from_its_official_files(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    WRITERS[name](tmp_path / "data")  # one data folder holds them all, each in its own sub-folder
    assert train_on(name, "--data-dir", str(tmp_path / "data")) == 0
    assert "Accuracy:" in capsys.readouterr().out
    dataset = trainval.datasets.get(name)
    model = trainval.load_model("runs/run")
    assert model.input_shape == dataset.image_shape and model.class_names == list(dataset.class_names)
    preset = json.loads(Path("runs/run/config.json").read_text())["preset"]
    assert (preset["augmentation"]["flip"] == "none") == (not dataset.mirror_safe)
    assert main(["evaluate", "runs/run"]) == 0
