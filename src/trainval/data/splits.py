"""Hold out a validation set from training data, class by class, so that it mirrors the whole."""

from __future__ import annotations

import numpy as np

from trainval.errors import ConfigError


def holdout_split(labels: np.ndarray, size: float | int, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into (train, validation), stratified by class and shuffled.

    ``size`` is a fraction in (0, 1) or a number of samples. Each class contributes in proportion to
    its share of ``labels`` (largest-remainder rounding). A fraction also keeps at least one image of
    every class on each side, so it works on data sets of any size (a class with a single image
    cannot be split, which is an error); a count is exact. Both index arrays come back sorted, so
    the remaining training data keeps its original order.

    >>> train, val = holdout_split(np.repeat(np.arange(10), 100), 0.1, seed=0)
    >>> len(train), len(val)
    (900, 100)
    """
    labels = np.asarray(labels).reshape(-1)
    total = len(labels)
    classes, class_counts = np.unique(labels, return_counts=True)
    if isinstance(size, float):
        if not 0.0 < size < 1.0:
            raise ConfigError(f"the validation fraction must lie strictly between 0 and 1; got {size}")
        quotas = _fraction_quotas(classes, class_counts, size)
    else:
        count = int(size)
        if not 0 < count < total:
            raise ConfigError(f"a validation set of {count} leaves no training data or no validation data "
                              f"from {total} samples; choose a size between 1 and {total - 1}")
        quotas = _largest_remainder(class_counts * (count / total), count)
    rng = np.random.default_rng(seed)
    validation = []
    for cls, quota in zip(classes, quotas):
        members = np.flatnonzero(labels == cls)
        validation.append(rng.permutation(members)[:quota])
    validation_idx = np.sort(np.concatenate(validation))
    train_mask = np.ones(total, dtype=bool)
    train_mask[validation_idx] = False
    return np.flatnonzero(train_mask), validation_idx


def _fraction_quotas(classes: np.ndarray, class_counts: np.ndarray, fraction: float) -> np.ndarray:
    """Each class's share of ``round(fraction * total)``, moved into 1..count-1 so both sides see every class."""
    too_small = classes[class_counts < 2]
    if len(too_small):
        raise ConfigError(f"class {too_small[0]} has a single training image, so it cannot appear in both the "
                          "training and the validation data; add images of it, or pass --validation none")
    total = int(class_counts.sum())
    quotas = _largest_remainder(class_counts * fraction, round(fraction * total))
    return np.clip(quotas, 1, class_counts - 1)


def _largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    quotas = np.floor(shares).astype(np.int64)
    leftover = total - int(quotas.sum())
    order = np.argsort(-(shares - quotas), kind="stable")
    quotas[order[:leftover]] += 1
    return quotas
