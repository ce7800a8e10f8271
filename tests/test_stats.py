"""Confidence intervals on accuracy."""

from __future__ import annotations

import pytest

from trainval.stats import wilson_interval


@pytest.mark.parametrize("successes, trials, low, high", [
    # Reference values computed independently from the Wilson formula (z = 1.959964).
    (7487, 10000, 0.740104, 0.757105),
    (0, 10, 0.0, 0.277533),
    (10, 10, 0.722467, 1.0),
    (50, 100, 0.403832, 0.596168),
])
def test_wilson_interval_matches_reference_values(successes, trials, low, high):
    assert wilson_interval(successes, trials) == pytest.approx((low, high), abs=1e-6)


def test_wilson_interval_narrows_with_more_trials():
    narrow = wilson_interval(9000, 10000)
    wide = wilson_interval(90, 100)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


@pytest.mark.parametrize("successes, trials", [(1, 0), (-1, 5), (6, 5)])
def test_wilson_interval_refuses_impossible_counts(successes, trials):
    with pytest.raises(ValueError):
        wilson_interval(successes, trials)


def test_wilson_interval_always_contains_the_observed_accuracy():
    # Rounding once put the upper bound of 1/1, 3/3, ... just below 1.0.
    for trials in range(1, 200):
        for successes in range(trials + 1):
            low, high = wilson_interval(successes, trials)
            assert 0.0 <= low <= successes / trials <= high <= 1.0, (successes, trials)
