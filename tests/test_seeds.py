"""``trainval train --seeds N``: one run folder per seed, a summary, and resume of the whole set."""

from __future__ import annotations

import json

import pytest

from trainval import seeds as seeds_module
from trainval.cli import main
from trainval.errors import TrainingDiverged

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


def test_an_interrupted_set_of_seeds_resumes_where_it_stopped(cifar_dir, monkeypatch, capsys):
    assert main(["train", "--data-dir", str(cifar_dir), *ARGS, "--seeds", "2", "--name", "whole"]) == 0
    whole = json.loads(open("runs/whole/summary.json").read())

    real_run_training = seeds_module.run_training
    def crash_on_second_seed(config, announce):
        if config.seed == 1:
            raise TrainingDiverged("simulated crash")
        return real_run_training(config, announce=announce)
    monkeypatch.setattr(seeds_module, "run_training", crash_on_second_seed)
    assert main(["train", "--data-dir", str(cifar_dir), *ARGS, "--seeds", "2", "--name", "cut"]) == 1
    assert [row["seed"] for row in json.loads(open("runs/cut/summary.json").read())["seeds"]] == [0]

    monkeypatch.setattr(seeds_module, "run_training", real_run_training)
    assert main(["train", "--resume", "runs/cut"]) == 0
    resumed = json.loads(open("runs/cut/summary.json").read())
    assert [row["test_accuracy"] for row in resumed["seeds"]] == [row["test_accuracy"] for row in whole["seeds"]]
    assert "2 seeds: test accuracy" in capsys.readouterr().out


def test_seeds_refuse_settings_that_cannot_apply(cifar_dir, capsys):
    assert main(["train", "--data-dir", str(cifar_dir), *ARGS, "--seeds", "0"]) == 2
    assert "seeds must be an integer >= 1" in capsys.readouterr().err
    assert main(["train", "--data-dir", str(cifar_dir), *ARGS, "--seeds", "2", "--output", "m"]) == 2
    assert "with --seeds each seed's model is in its run folder" in capsys.readouterr().err
