"""Photos at real sizes: stems that fold large images, parallel decoding with a progress bar, the same
resize for training and prediction, and memory checked before decoding and before training."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import trainval
from trainval import datasets
from trainval.cli import main
from trainval.data import image_files
from trainval.data.image_files import load_image_files
from trainval.model_factory import create_model
from trainval.models.fastnet import FastNet
from trainval.models.stems import stem_stride
from trainval.prediction import predict_image_files
from trainval.training.memory_fit import training_memory

from dataset_files import write_image_folder, write_photos


@pytest.fixture
def photos(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return write_photos(tmp_path / "photos")  # 3 classes of 8


def train(*options: str) -> int:
    return main(["train", "--preset", "quick", "--holdout-size", "3", "--verbose", "0", "--checkpoint-every", "epoch",
                 *options])


# -- stems ------------------------------------------------------------------------------------------------


def test_the_stem_stride_doubles_each_time_the_image_side_doubles_past_63_pixels():
    assert [stem_stride(side, side) for side in (9, 32, 63, 64, 127, 128, 224, 255, 256, 512)] == \
        [1, 1, 1, 2, 2, 4, 4, 4, 8, 16]
    assert stem_stride(224, 100) == 2  # the shorter side decides


def test_fastnet_folds_large_images_so_224_pixels_cost_a_few_times_32_not_fifty():
    flops = {side: trainval.describe_model("fastnet", 10, (side, side, 3)).flops_per_image for side in (32, 224)}
    unfolded = trainval.describe_model("fastnet", 10, (224, 224, 3), stem_stride=1).flops_per_image
    assert unfolded > 50 * flops[32]  # the network built for 32 pixels, run on 224: (223 / 31)^2 the positions
    assert flops[224] < 6 * flops[32]
    stem = create_model("fastnet", 10, (224, 224, 3)).module.whiten.conv
    assert stem.stride == (4, 4) and stem.kernel_size == (4, 4) and stem.out_channels == 2 * 3 * 4 * 4


def test_fastnets_strided_stem_whitens_the_patches_it_sees():
    rng = np.random.default_rng(0)
    smooth = torch.tensor(rng.uniform(size=(24, 3, 16, 16)), dtype=torch.float32)
    images = torch.nn.functional.interpolate(smooth, size=64, mode="bilinear")  # neighbouring pixels correlate
    net = FastNet(10, (64, 64, 3), widths=(8, 8, 8))
    net.initialize_from_data(images)
    with torch.no_grad():
        out = net.whiten((images - net.mean) / net.std)
    assert out.shape == (24, 24, 32, 32)  # 2x2 patches, 2 apart: 12 dims and their negatives, on 32x32 positions
    whitened = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12).double()
    moment = whitened.T @ whitened / len(whitened)
    off_diagonal = moment - torch.diag(torch.diag(moment))
    assert off_diagonal.abs().max() < 1e-3 and torch.diag(moment).max() < 1.0001


def test_resnet18_takes_imagenets_stem_from_128_pixels_and_costs_what_torchvisions_does_at_224():
    assert isinstance(create_model("resnet18", 10, (128, 128, 3)).module.stem[-1], torch.nn.MaxPool2d)
    assert create_model("resnet18", 10, (64, 64, 3)).module.stem[0].stride == (2, 2)
    flops = trainval.describe_model("resnet18", 1000, (224, 224, 3)).flops_per_image
    assert 3.6e9 < flops < 3.7e9  # torchvision's ResNet-18: 1.82 G multiply-adds


@pytest.mark.parametrize("name", ["fastnet", "resnet18"])
@pytest.mark.parametrize("side", [64, 128])
def test_fast_models_train_a_step_on_large_images(name, side):
    images = np.random.default_rng(0).integers(0, 256, size=(4, side, side, 3), dtype=np.uint8)
    model = create_model(name, 3, (side, side, 3), seed=0, **({"widths": (8, 8, 8)} if name == "fastnet" else {}))
    model.compile(optimizer="sgd", precision="fp32")
    history = model.fit(images, np.arange(4) % 3, batch_size=4, epochs=1, verbose=0, seed=0)
    assert np.isfinite(history.history["loss"][0]) and model.predict(images).shape == (4, 3)


def test_a_data_initialised_model_looks_at_as_many_pixels_of_large_images_as_of_5000_small_ones(monkeypatch):
    seen = []
    monkeypatch.setattr(FastNet, "initialize_from_data", lambda self, images: seen.append(len(images)))
    for side, expected in ((32, 5000), (128, 312)):
        images = np.zeros((6000, side, side, 1), np.uint8)
        create_model("fastnet", 2, (side, side, 1), widths=(4, 4, 4))._initialize_from_data(
            torch.from_numpy(images).permute(0, 3, 1, 2))
        assert seen[-1] == expected


# -- decoding ---------------------------------------------------------------------------------------------


def test_parallel_decoding_gives_what_one_thread_gives_in_order_with_unreadable_files_listed(tmp_path):
    write_photos(tmp_path / "p", per_class=6)
    paths = sorted((tmp_path / "p").rglob("*.*"))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    paths.insert(3, tmp_path / "bad.png")
    one = load_image_files(paths, 40, 40, 3, workers=1)
    four = load_image_files(paths, 40, 40, 3, workers=4)
    np.testing.assert_array_equal(one.images, four.images)
    assert one.paths == four.paths == [path for path in paths if path.name != "bad.png"]
    assert [bad.path for bad in four.unreadable] == [tmp_path / "bad.png"] and len(four.images) == len(paths) - 1


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_progress_bar_shows_in_a_terminal_and_a_quick_load_leaves_a_log_alone(tmp_path, monkeypatch):
    write_photos(tmp_path / "p", per_class=3)
    paths = sorted((tmp_path / "p").rglob("*.*"))
    monkeypatch.setattr(image_files, "_BAR_DELAY_TERMINAL", 0.0)
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    load_image_files(paths, 16, 16, 3, progress="Decoding p")
    assert "Decoding p" in terminal.getvalue() and "9/9" in terminal.getvalue()
    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    load_image_files(paths, 16, 16, 3, progress="Decoding p")
    assert log.getvalue() == ""


def test_predict_resizes_a_file_exactly_as_the_folder_data_set_did_for_training(photos, capsys):
    assert train("--dataset", f"folder:{photos}", "--image-size", "40", "--name", "run") == 0
    model = trainval.load_model("runs/run")
    folder = datasets.image_folder.ImageFolder.scan(photos, 40)
    (x_train, _), (x_test, _) = folder.load_data()
    path, _ = folder.test_files[0]
    assert Image.open(path).size != (40, 40)  # a file that needs the crop and resize
    predicted = predict_image_files(model, [path], top_k=3).predictions[0]
    probabilities = model.predict(x_test[:1])[0]
    names = model.class_names
    assert [name for name, _ in predicted.top] == [names[i] for i in np.argsort(-probabilities, kind="stable")]
    assert [p for _, p in predicted.top] == pytest.approx(sorted(probabilities, reverse=True), abs=0)


# -- memory -----------------------------------------------------------------------------------------------


def test_a_folder_at_128_pixels_trains_end_to_end_and_the_memory_estimate_is_shown(photos, capsys):
    assert train("--dataset", f"folder:{photos}", "--image-size", "128", "--name", "big", "--verbose", "2") == 0
    out = capsys.readouterr().out
    assert "Memory: the decoded images take 1.2 MB; training fastnet on 128x128x3 images in batches of 15" in out
    assert "Accuracy:" in out
    assert trainval.load_model("runs/big").input_shape == (128, 128, 3)
    assert main(["evaluate", "runs/big"]) == 0


def quick_memory(side: int):
    with torch.device("meta"):
        module = create_model("fastnet", 3, (side, side, 3), device="meta", widths=(32, 64, 128)).module
    return training_memory(module, (side, side, 3))


def test_a_batch_too_large_for_memory_becomes_the_largest_that_fits_with_a_note(photos, capsys, monkeypatch):
    memory = quick_memory(64)
    monkeypatch.setattr("trainval.memory_plan.device_memory_available",
                        lambda device: (memory.fixed + 5 * memory.per_image) / 0.8)
    assert train("--dataset", f"folder:{photos}", "--image-size", "64", "--batch-size", "12", "--name", "low") == 0
    out = capsys.readouterr().out
    assert "Note: training fastnet on 64x64 images in batches of 12 needs about" in out
    assert "that a training step may take; training on batches of 4 instead, learning rate" in out
    record = json.loads(Path("runs/low/config.json").read_text())
    assert record["config"]["batch_size"] == 4 and record["preset"]["batch_size"] == 4


def test_a_set_of_seeds_says_once_that_its_batch_was_lowered_and_every_seed_trains_with_it(photos, capsys,
                                                                                           monkeypatch):
    memory = quick_memory(64)
    monkeypatch.setattr("trainval.memory_plan.device_memory_available",
                        lambda device: (memory.fixed + 5 * memory.per_image) / 0.8)
    assert train("--dataset", f"folder:{photos}", "--image-size", "64", "--batch-size", "12", "--name", "set",
                 "--seeds", "2") == 0
    assert capsys.readouterr().out.count("training on batches of 4 instead") == 1
    for seed in (0, 1):
        assert json.loads(Path(f"runs/set/seed-{seed}/config.json").read_text())["preset"]["batch_size"] == 4


def test_a_resumed_run_whose_batch_no_longer_fits_is_refused_in_one_line(photos, capsys, monkeypatch):
    assert train("--dataset", f"folder:{photos}", "--image-size", "64", "--batch-size", "8", "--name", "r",
                 "--epochs", "2") == 0
    Path("runs/r/result.json").unlink()  # as if it had stopped before the end
    memory = quick_memory(64)
    monkeypatch.setattr("trainval.memory_plan.device_memory_available",
                        lambda device: (memory.fixed + 5 * memory.per_image) / 0.8)
    capsys.readouterr()
    assert main(["train", "--resume", "runs/r"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trainval: error: training fastnet on 64x64 images in batches of 8 needs about")
    assert err.endswith("that a training step may take; this run trains with that batch, so resume it where more "
                        "memory is free (a new run would train on batches of 4)")


def test_a_model_that_cannot_train_on_two_images_is_refused_before_the_run_folder(photos, capsys, monkeypatch):
    monkeypatch.setattr("trainval.memory_plan.device_memory_available", lambda device: 10_000_000)
    assert train("--dataset", f"folder:{photos}", "--image-size", "224", "--model", "resnet18", "--name", "no") == 2
    err = capsys.readouterr().err
    assert "training resnet18 on 224x224 images in batches of 15 needs about" in err
    assert "even a batch of 2 does not fit: use a smaller --image-size, a smaller model, or a machine with more " \
           "memory" in err
    assert not Path("runs/no").exists()


# -- class weights on the command line ----------------------------------------------------------------------


@pytest.fixture
def uneven(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    write_image_folder(tmp_path / "uneven", {"cat": 30, "dog": 6, "owl": 6})
    return tmp_path / "uneven"


def test_class_weight_balanced_trains_reports_its_weights_and_balanced_accuracy(uneven, capsys):
    assert train("--dataset", f"folder:{uneven}", "--image-size", "16", "--class-weight", "balanced",
                 "--name", "w") == 0
    out = capsys.readouterr().out
    assert "Training images per class: 4 (dog) to 22 (cat); class weights (balanced) 0.47 to 2.58" in out
    assert "Balanced accuracy:" in out and "mean recall of 3 classes" in out
    result = json.loads(Path("runs/w/result.json").read_text())
    assert result["train_class_counts"] == [22, 4, 5]  # 3 of the 34 training images held out for validation
    np.testing.assert_allclose(result["class_weights"], [31 / (3 * 22), 31 / (3 * 4), 31 / (3 * 5)])
    assert "balanced_accuracy" in result["test_scores"]
    report = Path("runs/w/report.html").read_text()
    assert "training images" in report and "class weight" in report and "Balanced accuracy" in report
    assert main(["evaluate", "runs/w", "--json", "scores.json"]) == 0
    assert "Balanced accuracy:" in capsys.readouterr().out
    assert json.loads(Path("scores.json").read_text())["balanced_accuracy"] == pytest.approx(
        result["test_scores"]["balanced_accuracy"])


def test_uneven_classes_without_weights_get_a_hint_and_even_ones_nothing(uneven, photos, capsys):
    assert train("--dataset", f"folder:{uneven}", "--image-size", "16", "--name", "u") == 0
    assert "--class-weight balanced would make every class count alike" in capsys.readouterr().out
    assert train("--dataset", f"folder:{photos}", "--image-size", "16", "--name", "e") == 0
    out = capsys.readouterr().out
    assert "Training images per class: 5" in out and "Balanced accuracy" not in out


def test_an_unknown_class_weight_is_a_usage_error(photos, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train("--dataset", f"folder:{photos}", "--class-weight", "even")
    assert exit_info.value.code == 2 and "invalid choice: 'even'" in capsys.readouterr().err
