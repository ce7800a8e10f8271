"""Hold out a validation set from training data, class by class, so that it mirrors the whole."""

from __future__ import annotations

import numpy as np

from trainval.errors import ConfigError


def holdout_split(labels: np.ndarray, size: float | int, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into (train, validation), stratified by class and shuffled.

    ``size`` is a fraction in (0, 1) or a number of samples. Each class contributes in proportion to
    its share of ``labels`` (largest-remainder rounding, so the total is exact). Both index arrays
    come back sorted, so the remaining training data keeps its original order.

    >>> train, val = holdout_split(np.repeat(np.arange(10), 100), 0.1, seed=0)
    >>> len(train), len(val)
    (900, 100)
    """
    labels = np.asarray(labels).reshape(-1)
    total = len(labels)
    if isinstance(size, float):
        if not 0.0 < size < 1.0:
            raise ConfigError(f"the validation fraction must lie strictly between 0 and 1; got {size}")
        count = round(size * total)
    else:
        count = int(size)
    if not 0 < count < total:
        raise ConfigError(f"a validation set of {count} leaves no training data or no validation data "
                          f"from {total} samples; choose a size between 1 and {total - 1}")
    rng = np.random.default_rng(seed)
    classes, class_counts = np.unique(labels, return_counts=True)
    quotas = _largest_remainder(class_counts * (count / total), count)
    validation = []
    for cls, quota in zip(classes, quotas):
        members = np.flatnonzero(labels == cls)
        validation.append(rng.permutation(members)[:quota])
    validation_idx = np.sort(np.concatenate(validation))
    train_mask = np.ones(total, dtype=bool)
    train_mask[validation_idx] = False
    return np.flatnonzero(train_mask), validation_idx


def _largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    quotas = np.floor(shares).astype(np.int64)
    leftover = total - int(quotas.sum())
    order = np.argsort(-(shares - quotas), kind="stable")
    quotas[order[:leftover]] += 1
    return quotas
