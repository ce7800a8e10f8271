"""Per-class scores, the confusion matrix and the most confident mistakes, against hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainval.metrics import confusion_matrix, most_confident_mistakes, score_predictions
from trainval.reports.text_tables import class_table, confusion_table
from trainval.stats import format_spread, spread, wilson_interval


def one_hot(predicted, num_classes=3, confidence=0.8):
    probabilities = np.full((len(predicted), num_classes), (1 - confidence) / (num_classes - 1), np.float32)
    probabilities[np.arange(len(predicted)), predicted] = confidence
    return probabilities


def test_scores_of_a_hand_made_case():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 0, 1])
    scores = score_predictions(one_hot(predicted), labels, ["a", "b", "c"], loss=0.5)
    assert scores.confusion.tolist() == [[2, 1, 0], [1, 1, 0], [0, 1, 0]]
    assert (scores.samples, scores.correct, scores.loss) == (6, 3, 0.5)
    assert scores.accuracy == 0.5 and scores.interval == wilson_interval(3, 6)
    a, b, c = scores.classes
    assert (a.support, a.predicted, a.correct, a.precision, a.recall) == (3, 3, 2, 2 / 3, 2 / 3)
    assert (b.precision, b.recall) == (1 / 3, 1 / 2)
    assert c.precision is None and c.recall == 0.0  # nothing predicted as c
    assert c.recall_interval == wilson_interval(0, 1)
    assert scores.class_names == ["a", "b", "c"]


def test_a_class_without_images_has_no_recall():
    scores = score_predictions(one_hot(np.array([0, 2])), np.array([0, 0]))
    assert scores.classes[1].recall is None and scores.classes[1].recall_interval is None
    assert scores.classes[2].precision == 0.0
    assert "—" in class_table(scores)


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 12).flatmap(lambda k: st.tuples(
    st.just(k), st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), min_size=1, max_size=200))))
def test_confusion_matrix_sums(case):
    num_classes, pairs = case
    labels, predicted = (np.array(column) for column in zip(*pairs))
    matrix = confusion_matrix(predicted, labels, num_classes)
    assert matrix.sum() == len(pairs)
    assert matrix.sum(axis=1).tolist() == np.bincount(labels, minlength=num_classes).tolist()  # rows: true
    assert matrix.sum(axis=0).tolist() == np.bincount(predicted, minlength=num_classes).tolist()  # columns: predicted
    assert np.trace(matrix) == int((labels == predicted).sum())


def test_most_confident_mistakes_come_first_and_exclude_correct_answers():
    probabilities = np.array([[0.9, 0.1], [0.3, 0.7], [0.95, 0.05], [0.4, 0.6], [0.8, 0.2]], np.float32)
    labels = np.array([0, 0, 1, 0, 1])  # wrong: 1 (0.7), 2 (0.95), 3 (0.6), 4 (0.8)
    assert most_confident_mistakes(probabilities, labels, 3).tolist() == [2, 4, 1]
    assert most_confident_mistakes(probabilities, np.array([0, 1, 0, 1, 0]), 5).tolist() == []


def test_text_tables_name_every_class_and_count():
    scores = score_predictions(one_hot(np.array([0, 1, 1])), np.array([0, 1, 2]), ["cat", "dog", "frog"])
    table = confusion_table(scores)
    assert table.splitlines()[0].split()[-3:] == ["cat", "dog", "frog"]
    assert table.splitlines()[3].split() == ["frog", "0", "1", "0"]
    assert "100.00%" in class_table(scores)


def test_spread_and_its_format():
    values = spread([0.7, 0.8, 0.9])
    assert values["mean"] == pytest.approx(0.8) and values["std"] == pytest.approx(0.1)
    assert (values["min"], values["max"]) == (0.7, 0.9)
    assert format_spread(values, 100, 2, "%") == "80.00 ± 10.00% (min 70.00, max 90.00)"
    assert spread([3.0])["std"] == 0.0
