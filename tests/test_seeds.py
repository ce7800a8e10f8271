"""``trainval train --seeds N``: one run folder per seed, a summary, and resume of the whole set."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from trainval import presets
from trainval import seeds as seeds_module
from trainval.cli import main
from trainval.config import TrainConfig
from trainval.errors import CheckpointError, TrainingDiverged
from trainval.seeds import resume_seeds, run_seeds

ARGS = ["--preset", "quick", "--epochs", "1", "--batch-size", "8", "--validation", "none", "--verbose", "0"]


def test_seeds_train_one_run_each_and_summarise(cifar_dir, capsys):
    assert main(["train", "--data-dir", str(cifar_dir), *ARGS, "--seeds", "3", "--seed", "5", "--name", "s"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(open("runs/s/summary.json").read())
    accuracies = [row["test_accuracy"] for row in summary["seeds"]]
    assert [row["seed"] for row in summary["seeds"]] == [5, 6, 7]
    for row in summary["seeds"]:
        result = json.loads(open(f"runs/s/seed-{row['seed']}/result.json").read())
        assert row["test_accuracy"] == result["test_accuracy"] and row["seconds"] == result["seconds"]["total"]
    assert summary["test_accuracy"]["mean"] == pytest.approx(sum(accuracies) / 3)
    assert (summary["test_accuracy"]["min"], summary["test_accuracy"]["max"]) == (min(accuracies), max(accuracies))
    assert "3 seeds: test accuracy" in out and "± " in out and "(min " in out
    assert "3 seeds: time per run" in out and "Seed 7: test accuracy" in out
    for command in ("evaluate", "report", "export"):
        assert main([command, "runs/s"]) == 2
        assert "runs/s holds one run per seed (3 of them)" in capsys.readouterr().err


@pytest.fixture
def second_seed_crashes(monkeypatch):
    """Make training seed 1 fail; returns the real run_training, to put back with monkeypatch."""
    real_run_training = seeds_module.run_training

    def crash_on_second_seed(config, announce):
        if config.seed == 1:
            raise TrainingDiverged("simulated crash")
        return real_run_training(config, announce=announce)
    monkeypatch.setattr(seeds_module, "run_training", crash_on_second_seed)
    return real_run_training


def test_an_interrupted_set_of_seeds_resumes_where_it_stopped(cifar_dir, monkeypatch, capsys, second_seed_crashes):
    assert main(["train", "--data-dir", str(cifar_dir), *ARGS, "--seeds", "2", "--name", "cut"]) == 1
    assert [row["seed"] for row in json.loads(open("runs/cut/summary.json").read())["seeds"]] == [0]

    monkeypatch.setattr(seeds_module, "run_training", second_seed_crashes)  # the real one again
    assert main(["train", "--resume", "runs/cut"]) == 0
    resumed = json.loads(open("runs/cut/summary.json").read())
    assert "2 seeds: test accuracy" in capsys.readouterr().out
    assert main(["train", "--data-dir", str(cifar_dir), *ARGS, "--seeds", "2", "--name", "whole"]) == 0
    whole = json.loads(open("runs/whole/summary.json").read())
    assert [row["test_accuracy"] for row in resumed["seeds"]] == [row["test_accuracy"] for row in whole["seeds"]]


def test_seeds_refuse_settings_that_cannot_apply(cifar_dir, capsys):
    assert main(["train", "--data-dir", str(cifar_dir), *ARGS, "--seeds", "0"]) == 2
    assert "seeds must be an integer >= 1" in capsys.readouterr().err
    assert main(["train", "--data-dir", str(cifar_dir), *ARGS, "--seeds", "2", "--output", "m"]) == 2
    assert "with --seeds each seed's model is in its run folder" in capsys.readouterr().err


def test_a_set_started_from_a_preset_object_resumes_only_with_that_recipe(cifar_dir, monkeypatch):
    recipe = replace(presets.get("quick"), epochs=2, label_smoothing=0.0, batch_size=8)
    config = TrainConfig(preset=recipe, data_dir=str(cifar_dir), validation="none", verbose=0, name="obj")

    def stop_after_first(run):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run_seeds(config, 2, announce=lambda line: None, on_seed=stop_after_first)
    with pytest.raises(CheckpointError, match="differs from the one the run in runs/obj started with"):
        resume_seeds("runs/obj", announce=lambda line: None)  # the named preset 'quick' is another recipe
    result = resume_seeds("runs/obj", preset=recipe, announce=lambda line: None)
    assert [run.seed for run in result.runs] == [0, 1]
    for seed in (0, 1):
        saved = json.loads(open(f"runs/obj/seed-{seed}/config.json").read())["preset"]
        assert (saved["epochs"], saved["label_smoothing"]) == (2, 0.0)


def test_resuming_a_set_refuses_output_and_each_seed_points_at_the_set(cifar_dir, capsys, second_seed_crashes):
    assert main(["train", "--data-dir", str(cifar_dir), *ARGS[:-2], "--verbose", "2", "--seeds", "2",
                 "--name", "set"]) == 1
    assert "if interrupted: trainval train --resume runs/set)" in capsys.readouterr().out
    assert main(["train", "--resume", "runs/set", "--output", "m"]) == 2
    assert "with --seeds each seed's model is in its run folder" in capsys.readouterr().err
