"""After training: predict image files, evaluate a run or a saved model, regenerate the report."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

import trainval
from browser import assert_report_rendered, find_chromium, screenshot
from cifar_files import write_cifar10_folder
from trainval.cli import main
from trainval.evaluation import evaluate_saved_model
from trainval.config import TrainConfig
from trainval.experiment import run_training
from trainval.reports.predictions_file import SavedPredictions


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One short real run (preset quick: TTA 1, label smoothing) on a tiny CIFAR-10, shared by the tests."""
    root = tmp_path_factory.mktemp("run")
    write_cifar10_folder(root / "data", train_per_batch=8, test_size=24)
    result = run_training(TrainConfig(preset="quick", data_dir=str(root / "data"), holdout_size=10, verbose=0,
                                      runs_dir=str(root / "runs"), name="done"), announce=lambda line: None)
    return result


def test_a_run_saves_its_per_class_scores_and_test_predictions(finished_run):
    folder = finished_run.run_folder
    result = json.loads((folder / "result.json").read_text())
    scores = result["test_scores"]
    assert sum(map(sum, scores["confusion"])) == result["test_samples"] == 24
    assert scores["correct"] == round(result["test_accuracy"] * 24)
    assert [c["name"] for c in scores["classes"]] == list(trainval.datasets.cifar10.CLASS_NAMES)
    assert result["tta"] == 1 and result["model"] == "fastnet"
    for name in ("learning_curves", "confusion_matrix", "per_class_accuracy", "confident_mistakes"):
        assert Image.open(folder / "plots" / f"{name}.png").format == "PNG"
    assert (folder / "report.html").stat().st_size > 10_000


def test_evaluate_reproduces_the_runs_own_test_score(finished_run, capsys):
    folder = finished_run.run_folder
    result = json.loads((folder / "result.json").read_text())
    assert main(["evaluate", str(folder), "--json", "scores.json"]) == 0
    out = capsys.readouterr().out
    assert "TTA level 1" in out and "true \\ predicted" in out and "95% CI of recall" in out
    scores = json.loads(open("scores.json").read())
    assert scores["accuracy"] == result["test_accuracy"]
    assert scores["loss"] == pytest.approx(result["test_loss"], rel=1e-6)  # the recipe's label smoothing too
    assert scores["confusion"] == result["test_scores"]["confusion"]


def test_evaluate_splits_are_the_runs_own(finished_run):
    folder = finished_run.run_folder
    assert evaluate_saved_model(folder, "validation").scores.samples == 10
    assert evaluate_saved_model(folder, "train").scores.samples == 30
    saved_model = evaluate_saved_model(folder / "model", "test", data_dir=finished_run.config.data_dir)
    assert saved_model.scores.samples == 24 and saved_model.tta == 1


def test_evaluate_refuses_what_it_cannot_do(finished_run, capsys):
    model_folder = str(finished_run.run_folder / "model")
    data = ["--data-dir", finished_run.config.data_dir]
    assert main(["evaluate", model_folder, "--split", "validation", *data]) == 2
    assert "no validation split of its own" in capsys.readouterr().err
    assert main(["evaluate", "nowhere"]) == 1
    err = capsys.readouterr().err
    assert "nowhere is neither a saved model (it has no model.json) nor a run folder" in err and "Traceback" not in err


def write_images(folder):
    """PNG and JPEG files of several sizes and modes, one corrupt file and one missing file."""
    rng = np.random.default_rng(0)
    files = {
        "rgb32.png": Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)),
        "wide.jpg": Image.fromarray(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)),
        "gray.png": Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)),
        "alpha.png": Image.fromarray(rng.integers(0, 256, (20, 30, 4), dtype=np.uint8), "RGBA"),
    }
    for name, image in files.items():
        image.save(folder / name)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    return [folder / name for name in ("rgb32.png", "broken.png", "wide.jpg", "missing.png", "gray.png", "alpha.png")]


def test_predict_reports_unreadable_files_and_predicts_the_rest(finished_run, tmp_path, capsys):
    paths = write_images(tmp_path)
    assert main(["predict", str(finished_run.run_folder), *map(str, paths), "--top-k", "2"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line.split(":")[0] for line in lines] == [str(paths[i]) for i in (0, 2, 4, 5)]
    assert all(len(line.split(", ")) == 2 and line.endswith("%") for line in lines)
    assert f"{paths[1]}: unreadable: not an image file" in captured.err
    assert f"{paths[3]}: unreadable: no such file" in captured.err
    assert "Note: Images are turned upright" in captured.err  # some files were resized


def test_predict_json_matches_model_predict_on_the_same_pixels(finished_run, tmp_path, capsys):
    paths = write_images(tmp_path)
    assert main(["predict", str(finished_run.run_folder), str(paths[0]), "--json", "--top-k", "10"]) == 0
    output = json.loads(capsys.readouterr().out)
    (prediction,) = output["predictions"]
    assert output["unreadable"] == [] and prediction["resized"] is False
    probabilities = trainval.load_model(finished_run.run_folder).predict(np.asarray(Image.open(paths[0]))[None])[0]
    names = trainval.datasets.cifar10.CLASS_NAMES
    assert {entry["class"]: entry["probability"] for entry in prediction["top"]} == pytest.approx(
        dict(zip(names, probabilities.tolist())), abs=1e-6)
    assert [entry["probability"] for entry in prediction["top"]] == sorted(probabilities.tolist(), reverse=True)


def test_load_model_brings_back_the_recipes_tta_and_loss(finished_run):
    model = trainval.load_model(finished_run.run_folder)
    assert model.tta == 1 and model.loss.label_smoothing == pytest.approx(0.2)


@pytest.mark.skipif(find_chromium() is None, reason="needs Chromium (chromium, chromium-browser or google-chrome)")
def test_a_runs_report_renders_in_headless_chromium(finished_run, tmp_path):
    report = finished_run.run_folder / "report.html"
    assert not re.search(r"(https?:|src=\"//)", report.read_text())  # nothing to fetch from a network
    screenshot(report, tmp_path / "shot.png", 1200, 2400)
    assert_report_rendered(tmp_path / "shot.png", (1200, 2400))


def test_report_is_made_again_from_the_run_folder(finished_run, capsys):
    folder = finished_run.run_folder
    report = folder / "report.html"
    first = report.read_text()
    report.unlink()
    assert main(["report", str(folder)]) == 0
    assert report.read_text() == first  # made from the saved predictions alone: the same every time
    predictions_file = folder / "test_predictions.safetensors"
    saved = predictions_file.read_bytes()
    try:
        predictions = SavedPredictions.read(predictions_file)
        predictions.mistake_indices[0] = 10_000  # outside the 24 test images: a damaged file
        predictions.write(predictions_file)
        assert main(["report", str(folder)]) == 0
        assert "is corrupt (mistake indices outside the test set); scoring the test set again" in capsys.readouterr().out
        assert predictions_file.read_bytes() == saved and report.read_text() == first
        predictions_file.unlink()  # as in run folders made before reports existed
        assert main(["report", str(folder)]) == 0
        assert "test_predictions.safetensors is missing; scoring the test set again" in capsys.readouterr().out
        assert predictions_file.read_bytes() == saved
    finally:
        predictions_file.write_bytes(saved)


def test_a_run_of_zero_epochs_gets_a_report_without_learning_curves(cifar_dir, capsys):
    assert main(["train", "--data-dir", str(cifar_dir), "--epochs", "0", "--name", "e0", "--validation", "none"]) == 0
    assert "report was not written" not in capsys.readouterr().out
    html = open("runs/e0/report.html").read()
    assert html.count("data:image/png;base64,") == 3 and "Learning curves" not in html


def test_report_of_an_unfinished_run_says_how_to_finish_it(cifar_dir, capsys):
    assert main(["train", "--data-dir", str(cifar_dir), "--epochs", "0", "--name", "r", "--validation", "none"]) == 0
    (cifar_dir.parent / "runs" / "r" / "result.json").unlink()
    assert main(["report", "runs/r"]) == 1
    assert "has not finished" in capsys.readouterr().err


def test_evaluate_scores_in_the_runs_own_precision_by_default(cifar_dir, capsys):
    assert main(["train", "--preset", "quick", "--data-dir", str(cifar_dir), "--precision", "fp32", "--name", "f",
                 "--holdout-size", "5"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "runs/f", "--json", "f.json"]) == 0
    assert "(10 images; fp32, TTA level 1)" in capsys.readouterr().out
    assert json.loads(open("f.json").read())["accuracy"] == json.loads(open("runs/f/result.json").read())["test_accuracy"]
