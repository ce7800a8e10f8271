"""Defaults that work on any data set, no dead-end run folders, and one clear line for every hostile input.

Each test here failed before the fix it guards (issue "defaults that work on any data").
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import trainval
from trainval.cli import main
from trainval.data.splits import holdout_split
from trainval.datasets.memory_budget import check_images_fit
from trainval.errors import ConfigError, DataError
from trainval.reports import plots
from trainval.runs.record import RunRecord
from trainval.runs.run_folder import RunFolder

from dataset_files import write_photos

QUICK = ["--preset", "quick", "--epochs", "1", "--verbose", "0", "--checkpoint-every", "epoch"]


@pytest.fixture
def photos(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return write_photos(tmp_path / "photos")  # 3 classes of 8: 6 training images each after the test split


@pytest.fixture
def finished_run(cifar_dir, capsys) -> Path:
    assert main(["train", "--data-dir", str(cifar_dir), *QUICK, "--name", "done"]) == 0
    capsys.readouterr()
    return Path("runs/done")


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("trainval: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def run_folders() -> list[str]:
    return sorted(path.name for path in Path("runs").iterdir()) if Path("runs").exists() else []


# -- defaults that scale ----------------------------------------------------------------------------


def test_the_default_holdout_trains_on_a_small_image_folder_and_small_cifar_files(photos, cifar_dir, capsys):
    assert main(["train", "--dataset", f"folder:{photos}", "--verbose", "0", "--name", "photos"]) == 0
    assert main(["train", "--data-dir", str(cifar_dir), "--verbose", "0", "--name", "cifar"]) == 0
    result = json.loads(Path("runs/cifar/result.json").read_text())
    assert result["validation_samples"] == 10 and result["train_samples"] == 20  # 30 images of 10 classes: 1 each
    assert "Accuracy:" in capsys.readouterr().out


@pytest.mark.parametrize("counts", [[2] * 10, [2, 3, 5, 40], [3, 2, 2, 9, 11, 2]])
def test_a_fractional_holdout_keeps_every_class_on_both_sides(counts):
    labels = np.repeat(np.arange(len(counts)), counts)
    train, validation = holdout_split(labels, 0.1, seed=0)
    assert set(labels[train]) == set(labels[validation]) == set(range(len(counts)))
    assert len(np.intersect1d(train, validation)) == 0 and len(train) + len(validation) == len(labels)


def test_the_default_fraction_holds_out_exactly_the_5000_images_it_always_did_on_cifar10():
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 5000))
    by_fraction, by_count = holdout_split(labels, 0.1, seed=3), holdout_split(labels, 5000, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(by_fraction, by_count)) and len(by_fraction[1]) == 5000


def test_a_class_with_one_image_cannot_be_split_and_says_so():
    with pytest.raises(ConfigError, match="single training image.*--validation none"):
        holdout_split(np.array([0, 0, 1, 2, 2]), 0.5)


def test_a_batch_larger_than_the_data_becomes_the_data_with_its_learning_rate_scaled(cifar_dir, capsys):
    assert main(["train", "--data-dir", str(cifar_dir), *QUICK, "--batch-size", "100000", "--name", "big"]) == 0
    assert "Note: a batch of 100000 is more than the 20 training images; training on batches of 20" in \
        capsys.readouterr().out
    preset = json.loads(Path("runs/big/config.json").read_text())["preset"]
    quick = trainval.presets.get("quick")
    assert preset["batch_size"] == 20
    assert preset["optimizer"]["learning_rate"] == pytest.approx(
        quick.optimizer.scaled_to_batch(20 / quick.batch_size).learning_rate)


# -- no dead ends ------------------------------------------------------------------------------------


def test_a_split_that_cannot_be_made_leaves_no_run_folder(cifar_dir, capsys):
    assert main(["train", "--data-dir", str(cifar_dir), *QUICK, "--holdout-size", "30", "--name", "x"]) == 2
    assert "choose a size between 1 and 29" in one_error_line(capsys)
    assert run_folders() == []


def test_a_run_that_fails_before_its_first_checkpoint_frees_its_name(cifar_dir, capsys):
    failing = ["train", "--data-dir", str(cifar_dir), *QUICK, "--batch-size", "4", "--lr", "1e30", "--name", "r"]
    assert main(failing) == 1
    assert "training diverged" in one_error_line(capsys)
    assert run_folders() == []
    assert main(["train", "--data-dir", str(cifar_dir), *QUICK, "--name", "r"]) == 0


def test_a_set_of_seeds_that_fails_before_its_first_checkpoint_frees_its_name(cifar_dir, capsys):
    failing = ["train", "--data-dir", str(cifar_dir), *QUICK, "--batch-size", "4", "--lr", "1e30", "--seeds", "2",
               "--name", "s"]
    assert main(failing) == 1
    assert "training diverged" in one_error_line(capsys)
    assert run_folders() == []


def test_a_folder_killed_before_its_first_checkpoint_is_reused_by_its_name(cifar_dir, capsys):
    killed = RunFolder.create("runs", "k", RunRecord({"stale": True}, {}))  # what a SIGKILL at that moment leaves
    (killed.checkpoints).mkdir()
    (killed.checkpoints / ".last.safetensors.x1.tmp").write_bytes(b"half")
    assert main(["train", "--data-dir", str(cifar_dir), *QUICK, "--name", "k"]) == 0
    assert "stale" not in (killed.config_file).read_text()


def test_a_run_folder_in_use_is_refused_with_a_clear_line(cifar_dir, capsys):
    folder = RunFolder.create("runs", "busy", RunRecord({}, {}))
    with folder.locked():
        assert main(["train", "--resume", "runs/busy"]) == 1
        assert f"in use by another trainval process (pid {os.getpid()})" in one_error_line(capsys)
        assert main(["train", "--data-dir", str(cifar_dir), *QUICK, "--name", "busy"]) == 1
        assert "in use" in one_error_line(capsys)
    assert Path("runs/busy/config.json").exists()


def test_an_unwritable_output_is_refused_before_training(cifar_dir, tmp_path, capsys, monkeypatch):
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setattr(trainval.Model, "fit", lambda *args, **kwargs: pytest.fail("trained before the check"))
    assert main(["train", "--data-dir", str(cifar_dir), *QUICK, "--output", str(tmp_path / "a-file" / "m")]) == 1
    assert "cannot save the model to --output" in one_error_line(capsys)
    assert run_folders() == []


def test_an_absurd_image_size_is_refused_before_anything_is_read(photos, capsys):
    assert main(["train", "--dataset", f"folder:{photos}", "--image-size", "100000", *QUICK]) == 2
    assert "image-size must be a whole number of pixels from 1 to 4096; got 100000" in one_error_line(capsys)
    assert run_folders() == []


def test_an_image_size_too_large_for_memory_is_refused_before_decoding(photos, capsys, monkeypatch):
    monkeypatch.setattr("trainval.datasets.memory_budget.available_memory", lambda: 100_000_000)
    monkeypatch.setattr("trainval.data.image_files._decode", lambda path: pytest.fail("decoded before the check"))
    assert main(["train", "--dataset", f"folder:{photos}", "--image-size", "2000", *QUICK]) == 1
    err = one_error_line(capsys)
    assert "the 24 images of" in err and "at 2000x2000 pixels needs 288.0 MB" in err
    assert "100.0 MB of memory available; use --image-size 745 or less" in err
    assert run_folders() == []


def test_the_memory_estimate_names_the_largest_size_that_fits():
    check_images_fit(1000, 64, 3, "x", available=10**9)
    with pytest.raises(DataError, match=r"needs 49\.2 MB .* 100\.0 MB of memory available; use --image-size 115 or less"):
        check_images_fit(1000, 128, 3, "photos", available=10**8)


# -- run folders after the fact --------------------------------------------------------------------------


def test_evaluate_report_and_resume_work_from_another_folder_after_a_relative_data_dir(cifar_dir, tmp_path,
                                                                                       monkeypatch, capsys):
    shutil.copytree(cifar_dir, tmp_path / "here" / "cifar")
    monkeypatch.chdir(tmp_path / "here")
    assert main(["train", "--data-dir", "cifar", *QUICK, "--name", "rel", "--runs-dir", str(tmp_path / "runs")]) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "runs/rel"]) == 0
    assert main(["report", "runs/rel"]) == 0
    config = json.loads((tmp_path / "runs/rel/config.json").read_text())["config"]
    assert config["data_dir"] == str(tmp_path / "here" / "cifar")


def test_a_resume_records_the_data_folder_it_used(cifar_dir, tmp_path, capsys):
    folder = RunFolder.create("runs", "moved", RunRecord({}, {}))
    assert main(["train", "--data-dir", str(cifar_dir), *QUICK, "--name", "first"]) == 0
    shutil.rmtree(folder.path)
    shutil.copytree("runs/first", folder.path, ignore=shutil.ignore_patterns("result.json", "model", "report.html"))
    shutil.move(str(cifar_dir), tmp_path / "new-place")
    assert main(["train", "--resume", "runs/moved", "--data-dir", str(tmp_path / "new-place")]) == 0
    config = json.loads(Path("runs/moved/config.json").read_text())["config"]
    assert config["data_dir"] == str(tmp_path / "new-place")
    assert main(["evaluate", "runs/moved"]) == 0


def test_a_finished_run_without_its_model_gets_consistent_advice_and_still_reports(finished_run, capsys):
    shutil.rmtree(finished_run / "model")
    for command in (["predict", str(finished_run), "x.png"], ["evaluate", str(finished_run)]):
        assert main(command) == 1
        assert "has finished, but its final model" in one_error_line(capsys)
    assert main(["train", "--resume", str(finished_run)]) == 2
    assert "has finished" in one_error_line(capsys)
    (finished_run / "report.html").unlink()
    assert main(["report", str(finished_run)]) == 0
    assert (finished_run / "report.html").exists()


def test_an_interrupt_while_the_report_is_written_leaves_the_run_resumable(cifar_dir, capsys, monkeypatch):
    write_report = trainval.experiment.write_report

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("trainval.experiment.write_report", interrupted)
    assert main(["train", "--data-dir", str(cifar_dir), *QUICK, "--name", "ctrl-c"]) == 130
    assert not Path("runs/ctrl-c/result.json").exists()
    monkeypatch.setattr("trainval.experiment.write_report", write_report)
    assert main(["train", "--resume", "runs/ctrl-c"]) == 0
    assert Path("runs/ctrl-c/result.json").exists() and Path("runs/ctrl-c/report.html").exists()


@pytest.mark.parametrize("subfolder, command", [("plots", ["report"]), ("export", ["export"])])
def test_report_and_export_do_not_follow_a_link_out_of_the_run_folder(finished_run, tmp_path, capsys, subfolder,
                                                                     command):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(finished_run / subfolder, ignore_errors=True)
    (finished_run / subfolder).symlink_to(outside)
    assert main([*command, str(finished_run)]) == 1
    assert "symbolic link or leads out of the run folder" in one_error_line(capsys)
    assert list(outside.iterdir()) == []


# -- model files ------------------------------------------------------------------------------------------


def edit_spec(model_folder: Path, **changes) -> None:
    spec_file = model_folder / "model.json"
    spec = json.loads(spec_file.read_text())
    for key, value in changes.items():
        if key == "widths":
            spec["architecture"]["options"]["widths"] = value
        else:
            spec[key] = value
    spec_file.write_text(json.dumps(spec))


@pytest.mark.parametrize("changes, message", [
    ({"widths": [32, 64, 1000000]}, "describes a network whose weights are not those in"),
    ({"num_classes": 10**12}, "has num_classes 1000000000000"),
    ({"input_shape": [100000, 100000, 3]}, "has input_shape [100000, 100000, 3]"),
    ({"class_names": [1, 2]}, "has class_names that are not 10 strings"),
    ({"architecture": {"name": "resnet9000", "options": {}}}, "names the architecture 'resnet9000'"),
], ids=["huge width", "huge class count", "huge input", "bad class names", "unknown architecture"])
@pytest.mark.parametrize("command", ["predict", "evaluate", "export"])
def test_an_edited_model_json_is_refused_before_anything_is_built(finished_run, capsys, changes, message, command):
    edit_spec(finished_run / "model", **changes)
    arguments = {"predict": [str(finished_run), "x.png"]}.get(command, [str(finished_run)])
    assert main([command, *arguments]) == 1
    err = one_error_line(capsys)
    assert message in err and "model.json" in err


def test_weights_that_are_a_link_to_an_endless_device_are_refused(finished_run, capsys):
    weights = finished_run / "model" / "model.safetensors"
    weights.unlink()
    weights.symlink_to("/dev/zero")
    assert main(["evaluate", str(finished_run)]) == 1
    assert "not a regular file" in one_error_line(capsys)


def test_class_names_must_be_strings_one_per_class():
    with pytest.raises(ConfigError, match="2 names for 10 classes"):
        trainval.create_model("seed-cnn", class_names=["a", "b"])
    with pytest.raises(ConfigError, match="sequence of strings"):
        trainval.create_model("seed-cnn", num_classes=2, class_names=[1, 2])


# -- the small ones --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, message", [
    ("x" * 300, "--name is 300 bytes long"),
    (" ", "--name must be a visible folder name"),
    ("a\nb", "--name must be a visible folder name"),
    (" lead", "--name must be a visible folder name"),
])
def test_run_names_that_cannot_be_folders_are_refused(cifar_dir, capsys, name, message):
    assert main(["train", "--data-dir", str(cifar_dir), *QUICK, "--name", name]) == 2
    assert message in one_error_line(capsys)
    assert run_folders() == []


def test_a_file_given_as_the_data_folder_is_called_a_file(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    assert main(["train", "--data-dir", str(tmp_path / "notes.txt"), *QUICK]) == 1
    assert "notes.txt is a file, not a folder" in one_error_line(capsys)


def test_monitoring_validation_without_validation_is_refused(cifar_dir, capsys):
    assert main(["train", "--data-dir", str(cifar_dir), *QUICK, "--validation", "none", "--monitor", "val_loss"]) == 2
    assert "--monitor val_loss watches val_loss, which needs validation" in one_error_line(capsys)


def test_models_lists_sizes_for_a_folder_of_images(photos, capsys):
    assert main(["models", "--dataset", f"folder:{photos}", "--image-size", "24"]) == 0
    assert "24x24x3 images, 3 classes" in capsys.readouterr().out


def test_bench_compare_on_small_data_gives_advice_that_can_be_followed(cifar_dir, capsys):
    assert main(["bench", "--preset", "quick", "--seeds", "1", "--compare", "--data-dir", str(cifar_dir)]) == 2
    assert "--compare needs at least 512 training images" in one_error_line(capsys)


def test_plots_of_class_names_in_other_scripts_make_no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.confusion_matrix_plot(np.eye(3, dtype=np.int64), ["猫", "犬", "鳥"])
        plots.mistakes_grid(np.zeros((1, 8, 8, 3), np.uint8), ["猫"], ["犬"], np.array([0.9]))


def test_the_prediction_module_is_reachable_after_import_trainval():
    code = "import trainval; print(trainval.prediction.predict_image_files.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "predict_image_files"


def test_ctrl_c_while_the_command_starts_prints_one_line_and_no_traceback():
    process = subprocess.Popen([sys.executable, "-m", "trainval", "datasets"], stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)  # torch takes seconds to import: the interrupt lands while it loads
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err.strip() == "trainval: interrupted", err
