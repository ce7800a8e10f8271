"""Bad input to `trainval train` gives one clear line, no traceback: exit 2 for usage, 1 for runtime failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainval.cli import main

TINY = ["--epochs", "1", "--batch-size", "8", "--holdout-size", "10", "--verbose", "0", "--checkpoint-every", "epoch"]


def _write_garbage_over(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def _runs_dir_under_a_file(root: Path) -> str:
    (root / "a-file").write_text("not a folder")
    return str(root / "a-file" / "runs")


# (what is wrong, extra arguments (a callable gets tmp_path and the data folder), exit code, message fragment)
BAD_INPUTS = [
    ("batch size 0", ["--batch-size", "0"], 2, "batch-size must be an integer >= 1; got 0"),
    ("negative epochs", ["--epochs", "-1"], 2, "epochs must be an integer >= 0; got -1"),
    ("learning rate 0", ["--lr", "0"], 2, "learning-rate must be a positive finite number; got 0.0"),
    ("negative learning rate", ["--learning-rate", "-0.1"], 2, "learning-rate must be a positive finite number; got -0.1"),
    ("validation fraction 1.5", ["--holdout-size", "1.5"], 2, "must lie strictly between 0 and 1; got 1.5"),
    ("validation fraction 0.0", ["--holdout-size", "0.0"], 2, "must lie strictly between 0 and 1; got 0.0"),
    ("holdout larger than the data", ["--holdout-size", "30"], 2, "choose a size between 1 and 29"),
    ("unknown model", ["--model", "resnet9000"], 2, "unknown model 'resnet9000'"),
    ("bad checkpoint interval", ["--checkpoint-every", "5x"], 2, "checkpoint-every must be a number of steps"),
    ("name with a slash", ["--name", "a/b"], 2, "--name must be a plain folder name"),
    ("patience without validation", ["--patience", "2", "--validation", "none"], 2, "needs validation"),
    ("unwritable runs folder", lambda tmp, data: ["--runs-dir", _runs_dir_under_a_file(tmp)], 1,
     "cannot create a run folder in"),
    ("truncated data file", lambda tmp, data: _write_garbage_over(data / "cifar-10-batches-py" / "data_batch_1") or [],
     1, "data_batch_1"),
    ("missing data folder", lambda tmp, data: ["--data-dir", str(tmp / "nowhere")], 1, "nowhere"),
    ("diverging learning rate", ["--lr", "1e30", "--epochs", "2"], 1, "training diverged"),
]


@pytest.mark.parametrize("what, extra, code, message", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_gives_one_clear_line_and_the_right_exit_code(cifar_dir, tmp_path, capsys, what, extra, code,
                                                                message):
    if callable(extra):
        extra = extra(tmp_path, cifar_dir)
    assert main(["train", "--data-dir", str(cifar_dir), *TINY, *extra]) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("trainval: error: ") and message in err, err
    assert "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize("choice", [["--preset", "nope"], ["--verbose", "3"], ["--monitor", "auc"]])  # --dataset: test_cli_datasets
def test_unknown_choices_are_usage_errors(choice, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *choice])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def _train(cifar_dir, *extra):
    return main(["train", "--data-dir", str(cifar_dir), *TINY, *extra])


def test_resume_refuses_changed_settings_a_finished_run_and_a_folder_that_is_no_run(cifar_dir, tmp_path, capsys):
    assert _train(cifar_dir, "--name", "done") == 0
    capsys.readouterr()
    assert main(["train", "--resume", "runs/done", "--epochs", "3"]) == 2
    assert "drop --epochs" in capsys.readouterr().err
    assert main(["train", "--resume", "runs/done", "--data-dir", str(cifar_dir)]) == 2
    assert "has finished; its test score is in runs/done/result.json" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "is not a trainval run folder" in capsys.readouterr().err
    assert _train(cifar_dir, "--name", "done") == 2
    assert "exists already; resume it with --resume runs/done" in capsys.readouterr().err


def test_resume_from_a_corrupt_checkpoint_fails_clearly(cifar_dir, capsys):
    assert _train(cifar_dir, "--name", "r", "--epochs", "2") == 0
    run = Path("runs/r")
    (run / "result.json").unlink()  # as if killed before the end
    _write_garbage_over(run / "checkpoints" / "last.safetensors")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--data-dir", str(cifar_dir)]) == 1
    assert "last.safetensors is truncated or corrupt" in capsys.readouterr().err


def test_a_run_folder_holds_config_metrics_checkpoints_and_models(cifar_dir, capsys):
    assert _train(cifar_dir, "--name", "full", "--epochs", "2") == 0
    run = Path("runs/full")
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["epochs"] == 2 and config["preset"]["name"] == "94"
    assert {"trainval", "torch", "numpy", "python"} <= set(config["versions"])
    assert len((run / "metrics.csv").read_text().splitlines()) == 3
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [0, 1]
    for folder in (run / "model", run / "checkpoints" / "best"):
        assert {p.name for p in folder.iterdir()} == {"model.json", "model.safetensors"}
    assert (run / "checkpoints" / "last.safetensors").is_file()
    result = json.loads((run / "result.json").read_text())
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["epochs_trained"] == 2


def test_resume_with_a_damaged_config_json_fails_clearly(cifar_dir, capsys):
    assert _train(cifar_dir, "--name", "r") == 0
    run = Path("runs/r")
    (run / "result.json").unlink()
    config = json.loads((run / "config.json").read_text())
    config["config"]["learning_rate"] = "0.1"
    (run / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--data-dir", str(cifar_dir)]) == 1
    assert "config.json holds a setting this trainval cannot use" in capsys.readouterr().err
