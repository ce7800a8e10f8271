"""Class and sample weights in fit (Keras's meaning), and balanced accuracy beside accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import trainval
from trainval.callbacks import BackupAndRestore
from trainval.data.class_weights import class_weights, sample_weights
from trainval.data.splits import holdout_split
from trainval.errors import CheckpointError, ConfigError, InputError
from trainval.metrics import score_predictions
from trainval.optimizers import SGD
from trainval.stats import mean_proportion_interval, wilson_interval
from trainval.training.targets import BatchTargets

from tiny_data import TinyNet, tiny_images


def test_balanced_weights_are_n_samples_over_classes_times_count():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    np.testing.assert_allclose(class_weights("balanced", labels, 3), [10 / (3 * 6), 10 / (3 * 3), 10 / (3 * 1)])


def test_balanced_weights_give_every_class_the_same_total_and_average_1_over_the_samples():
    labels = np.random.default_rng(0).integers(0, 5, 300) ** 2 % 5  # uneven
    weights = class_weights("balanced", labels, 5)
    totals = weights * np.bincount(labels, minlength=5)
    present = totals > 0
    np.testing.assert_allclose(totals[present], totals[present][0])
    assert weights[labels].mean() == pytest.approx(1.0)


def test_balanced_weights_count_only_the_classes_present_and_leave_absent_ones_at_1():
    np.testing.assert_allclose(class_weights("balanced", np.array([0, 0, 0, 2]), 4), [4 / 6, 1.0, 4 / 2, 1.0])


def test_a_dict_weighs_the_classes_it_names_and_leaves_the_rest_at_1_as_keras_does():
    np.testing.assert_allclose(class_weights({1: 5.0, 2: 0}, np.array([0, 1, 2]), 3), [1.0, 5.0, 0.0])


@pytest.mark.parametrize("class_weight, match", [
    ("even", "'balanced' or a dict"), ([1.0, 2.0], "'balanced' or a dict"), ({3: 1.0}, "class indices 0..2"),
    ({-1: 1.0}, "class indices 0..2"), ({0: -1.0}, r"class_weight\[0\] must be a finite weight >= 0"),
    ({0: float("nan")}, "finite weight"), ({"0": 1.0}, "class indices"),
])
def test_a_bad_class_weight_is_a_config_error_saying_what_to_pass(class_weight, match):
    with pytest.raises(ConfigError, match=match):
        class_weights(class_weight, np.array([0, 1, 2]), 3)


def test_class_weight_and_sample_weight_together_are_refused_as_keras_does():
    with pytest.raises(ConfigError, match="not both"):
        sample_weights(torch.tensor([0, 1]), 2, "balanced", np.ones(2))


@pytest.mark.parametrize("weights, match", [(np.ones(3), r"shape \(3,\)"), ([1.0, -1.0], "finite weights >= 0"),
                                            ([0.0, 0.0], "weight 0"), (["a", "b"], "array of numbers")])
def test_bad_sample_weights_are_input_errors(weights, match):
    with pytest.raises(InputError, match=match):
        sample_weights(torch.tensor([0, 1]), 2, None, weights)


def test_no_weights_leave_the_loss_exactly_as_it_was():
    assert sample_weights(torch.tensor([0, 1]), 2, None, None) is None


def test_the_weighted_loss_sums_weight_times_loss_over_the_batch_size_as_keras_does():
    torch.manual_seed(0)
    logits, classes = torch.randn(5, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 2, 1])
    weights = torch.tensor([0.5, 1.0, 2.0, 0.0, 3.0], dtype=torch.float64)
    expected = (weights * F.cross_entropy(logits, classes, reduction="none")).sum() / 5
    assert float(BatchTargets(classes, weights).loss(F.cross_entropy, logits)) == pytest.approx(float(expected))


def _model() -> trainval.Model:
    torch.manual_seed(0)
    model = trainval.Model(TinyNet(), num_classes=4)
    model.compile(optimizer=SGD(learning_rate=0.05, momentum=0.9))
    return model


def _uneven_data() -> tuple[np.ndarray, np.ndarray]:
    x, y = tiny_images(count=60, size=8)
    keep = np.concatenate([np.flatnonzero(y != 3), np.flatnonzero(y == 3)[:3]])
    return x[keep], y[keep]


def test_class_weight_trains_exactly_as_the_same_weights_given_per_sample():
    x, y = _uneven_data()
    by_class = _model().fit(x, y, batch_size=8, epochs=2, seed=1, verbose=0, class_weight={3: 4.0, 0: 0.5})
    per_class = np.array([0.5, 1.0, 1.0, 4.0])
    by_sample = _model().fit(x, y, batch_size=8, epochs=2, seed=1, verbose=0, sample_weight=per_class[y])
    assert by_class.history == by_sample.history


def test_balanced_class_weights_change_training_on_uneven_classes_and_acc_stays_unweighted():
    x, y = _uneven_data()
    plain = _model().fit(x, y, batch_size=8, epochs=2, seed=1, verbose=0).history
    weighted = _model().fit(x, y, batch_size=8, epochs=2, seed=1, verbose=0, class_weight="balanced").history
    assert plain["loss"] != weighted["loss"]
    assert all(0 <= value <= 1 for value in weighted["acc"])


def test_sample_weights_follow_their_samples_through_a_validation_split():
    x, y = tiny_images(count=40, size=8)
    weights = np.linspace(0.0, 2.0, len(y))
    split = _model().fit(x, y, batch_size=8, epochs=2, seed=1, verbose=0, validation_split=0.25,
                         sample_weight=weights).history
    train, held = holdout_split(y, 0.25, 1)
    by_hand = _model().fit(x[train], y[train], batch_size=8, epochs=2, seed=1, verbose=0,
                           validation_data=(x[held], y[held]), sample_weight=weights[train]).history
    assert split == by_hand


def test_weights_with_a_loss_that_returns_only_a_mean_are_a_config_error():
    model = trainval.Model(TinyNet(), num_classes=4)
    model.compile(loss=lambda logits, classes: F.cross_entropy(logits, classes))
    x, y = tiny_images(count=16, size=8)
    with pytest.raises(ConfigError, match="weight per sample"):
        model.fit(x, y, epochs=1, verbose=0, class_weight="balanced")


def test_a_checkpoint_of_a_fit_with_other_class_weights_is_refused(tmp_path):
    x, y = _uneven_data()
    backup = BackupAndRestore(tmp_path, delete_checkpoint=False)
    _model().fit(x, y, batch_size=8, epochs=1, seed=1, verbose=0, class_weight="balanced", callbacks=[backup])
    with pytest.raises(CheckpointError, match="data_fingerprint"):
        _model().fit(x, y, batch_size=8, epochs=1, seed=1, verbose=0, callbacks=[backup])


# -- balanced accuracy ----------------------------------------------------------------------------------


def one_hot(predicted: list[int], classes: int = 3) -> np.ndarray:
    return np.eye(classes)[predicted]


def test_balanced_accuracy_is_the_mean_recall_of_the_classes_with_images():
    labels = [0] * 8 + [1] * 2 + [2] * 0
    predicted = [0] * 8 + [0, 1]
    scores = score_predictions(one_hot(predicted), np.array(labels))
    assert scores.accuracy == pytest.approx(9 / 10)
    assert scores.balanced_accuracy == pytest.approx((8 / 8 + 1 / 2) / 2)
    assert scores.uneven
    low, high = scores.balanced_interval
    assert low < scores.balanced_accuracy < high
    assert "mean recall of 2 classes" in scores.balanced_summary()
    assert scores.to_dict()["balanced_accuracy"] == pytest.approx(0.75)


def test_even_classes_are_not_uneven_and_balanced_accuracy_equals_accuracy():
    scores = score_predictions(one_hot([0, 1, 1, 2, 2, 0]), np.array([0, 0, 1, 1, 2, 2]))
    assert not scores.uneven and scores.balanced_accuracy == pytest.approx(scores.accuracy)


def test_the_interval_of_one_class_is_as_wide_as_wilsons_and_every_interval_holds_the_estimate():
    low, high = mean_proportion_interval([30], [40])
    wilson = wilson_interval(30, 40)
    assert high - low == pytest.approx(wilson[1] - wilson[0], rel=0.05)
    for correct, total in (([0, 10], [10, 10]), ([5, 5], [5, 5]), ([1, 49], [3, 60])):
        low, high = mean_proportion_interval(correct, total)
        mean = np.mean(np.array(correct) / np.array(total))
        assert 0 <= low <= mean <= high <= 1 and high - low > 0
