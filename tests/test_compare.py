"""``trainval compare``: runs side by side, McNemar's exact test against the best run, the spread of a seeds set."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from trainval.cli import main
from trainval.reports.comparison import compare_runs
from trainval.reports.predictions_file import SavedPredictions
from trainval.stats import mcnemar_exact

from cifar_files import write_cifar10_folder

TINY = ["--epochs", "2", "--batch-size", "8", "--holdout-size", "10", "--verbose", "0", "--checkpoint-every", "epoch"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs that differ only by seed, and a set of two seeds, trained on a tiny CIFAR-10."""
    root = tmp_path_factory.mktemp("compare")
    write_cifar10_folder(root / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root / "cache"))
        common = ["train", "--data-dir", str(root / "data"), "--runs-dir", str(root / "runs"), *TINY]
        for name, extra in (("s0", []), ("s1", ["--seed", "1"]), ("set", ["--seeds", "2", "--epochs", "1"])):
            assert main([*common, "--name", name, *extra]) == 0
    return root / "runs"


@pytest.mark.parametrize("only_first, only_second, expected", [
    (10, 2, 2 * (1 + 12 + 66) / 2**12),  # two-sided binomial tail, worked by hand
    (2, 10, 2 * (1 + 12 + 66) / 2**12),
    (0, 12, 2 / 2**12),
    (5, 5, 1.0),
    (0, 0, 1.0),
    (1, 0, 1.0),
])
def test_mcnemars_exact_test_is_the_two_sided_binomial_on_the_discordant_images(only_first, only_second, expected):
    assert mcnemar_exact(only_first, only_second) == pytest.approx(expected, rel=1e-12)


def test_mcnemars_exact_test_stays_exact_for_a_whole_test_set_of_discordant_images():
    p_value = mcnemar_exact(2600, 2400)  # 5,000 discordant images: 2**5000 is far beyond a float
    assert 0 < p_value < 0.01
    assert math.isclose(p_value, mcnemar_exact(2400, 2600))


def test_compare_prints_a_table_paired_tests_and_the_seed_spread_and_writes_the_plot_and_json(runs, tmp_path,
                                                                                               capsys):
    (runs / "notes.txt").write_text("not a run")
    (runs / "scratch").mkdir()
    paths = sorted(str(path) for path in runs.iterdir())  # what the shell gives for runs/*
    assert main(["compare", *paths, "--plot", str(tmp_path / "curves.png"), "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert f"Note: skipped {runs / 'notes.txt'}: not a folder" in out
    assert f"Note: skipped {runs / 'scratch'}: not a trainval run folder (no config.json)" in out
    table = out.split("\n\n")[0].splitlines()
    header = next(line for line in table if line.startswith("run"))
    assert header.split() == ["run", "preset", "data", "set", "epochs", "test", "accuracy", "(95%", "CI)", "time"]
    rows = {line.split()[0]: line for line in table[table.index(header) + 1:]}
    assert set(rows) == {str(runs / "s0"), str(runs / "s1"), str(runs / "set")}
    assert rows[str(runs / "s0")].split()[1:4] == ["94", "cifar10", "2"]
    assert "% over 2 seeds" in rows[str(runs / "set")]
    assert "Paired tests against the most accurate run" in out and "McNemar's exact p" in out
    assert re.search(rf"{re.escape(str(runs / 'set'))}: test accuracy \d+\.\d\d ± \d+\.\d\d% \(min [\d.]+, max [\d.]+\) "
                     r"over 2 seeds: the seed alone moves it by \d+\.\d\d points \(std\)", out)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "c.json").read_text())
    assert [run["kind"] for run in saved["runs"]] == ["run", "run", "seeds"]
    assert len(saved["paired_tests"]) == 1 and saved["plot"] == str(tmp_path / "curves.png")
    test = saved["paired_tests"][0]
    assert test["p_value"] == mcnemar_exact(test["only_best"], test["only_other"])


def with_predictions(source: Path, target: Path, correct: np.ndarray) -> Path:
    """A copy of run ``source`` whose saved test predictions are right exactly where ``correct`` says."""
    shutil.copytree(source, target)
    labels = np.arange(len(correct)) % 10
    predicted = np.where(correct, labels, (labels + 1) % 10)
    probabilities = np.eye(10, dtype=np.float32)[predicted]
    SavedPredictions.of(probabilities, labels, np.zeros((len(labels), 32, 32, 3), np.uint8)).write(
        target / "test_predictions.safetensors")
    return target


def test_each_run_is_tested_against_the_best_on_exactly_the_images_only_one_of_them_got_right(runs, tmp_path):
    best = np.ones(200, bool)
    best[:20] = False  # 180 right
    worse = best.copy()
    worse[20:35] = False  # 15 more wrong: 15 right only in the best, none the other way
    close = best.copy()
    close[20:23], close[:2] = False, True  # 3 right only in the best, 2 only in this one
    comparison = compare_runs([with_predictions(runs / "s0", tmp_path / name, correct)
                               for name, correct in (("worse", worse), ("best", best), ("close", close))])
    tests = {test.other: test for test in comparison.tests}
    assert set(tests) == {str(tmp_path / "worse"), str(tmp_path / "close")}
    far, near = tests[str(tmp_path / "worse")], tests[str(tmp_path / "close")]
    assert (far.best, far.images, far.only_best, far.only_other) == (str(tmp_path / "best"), 200, 15, 0)
    assert far.p_value == 2 / 2**15 and "7.50 points below" in far.verdict() and "beyond chance" in far.verdict()
    assert (near.only_best, near.only_other, near.p_value) == (3, 2, 1.0)
    assert "within chance" in near.verdict() and "no evidence that either is better" in near.verdict()


def test_runs_on_different_test_sets_or_without_predictions_are_compared_but_not_paired(runs, tmp_path):
    other_set = with_predictions(runs / "s0", tmp_path / "other", np.ones(30, bool))  # 30 test images, not 10
    no_predictions = tmp_path / "bare"
    shutil.copytree(runs / "s1", no_predictions)
    (no_predictions / "test_predictions.safetensors").unlink()
    comparison = compare_runs([runs / "s0", other_set, no_predictions])
    assert comparison.tests == [] and len(comparison.runs) == 3
    notes = "\n".join(comparison.notes)
    assert f"{no_predictions} is left out of the paired tests" in notes
    assert "no other run here was tested on its test set (cifar10, 30 images)" in notes


def test_an_unfinished_run_is_skipped_with_the_command_that_finishes_it(runs, tmp_path):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(runs / "s1", unfinished)
    (unfinished / "result.json").unlink()
    comparison = compare_runs([runs / "s0", runs / "s1", unfinished])
    assert [run.name for run in comparison.runs] == [str(runs / "s0"), str(runs / "s1")]
    assert f"skipped {unfinished}: it has not finished; finish it with trainval train --resume {unfinished}" in \
        comparison.notes


@pytest.mark.parametrize("paths, message", [
    (["s0"], "compare needs at least two finished runs; found only {runs}/s0 among the 1 path(s) given"),
    (["s0", "nowhere"], "{runs}/nowhere does not exist; pass finished run folders"),
    (["s0", "s0/"], "compare needs at least two finished runs; found only {runs}/s0"),
])
def test_too_few_runs_or_a_missing_path_is_one_clear_line(runs, capsys, paths, message):
    assert main(["compare", *(f"{runs}/{path}" for path in paths)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("trainval: error: " + message.format(runs=runs)) and err.count("\n") == 1


def test_a_pattern_the_shell_did_not_expand_is_expanded_in_name_order(runs):
    comparison = compare_runs([f"{runs}/s*"])
    assert [run.name for run in comparison.runs] == [str(runs / "s0"), str(runs / "s1"), str(runs / "set")]
