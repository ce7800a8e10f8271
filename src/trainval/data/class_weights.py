"""Class and sample weights for ``fit``, with Keras's meaning: a sample's weight multiplies its loss.

``class_weight`` maps class indices to weights (classes left out weigh 1, as in Keras) or is
``"balanced"``, which weighs each class by ``n_samples / (n_classes * count)`` as scikit-learn's
``compute_class_weight("balanced", classes=np.unique(y), y=y)`` does: every class then carries the
same total weight, and the weights average 1 over the samples. ``sample_weight`` gives each sample
its own weight; as in Keras 3, the two are not taken together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from trainval.errors import ConfigError, InputError

BALANCED = "balanced"


def class_counts(labels: np.ndarray | torch.Tensor, num_classes: int) -> np.ndarray:
    """Images per class, int64 (num_classes,), from class indices of any shape."""
    return np.bincount(np.asarray(labels).reshape(-1).astype(np.int64), minlength=num_classes)


def class_weights(class_weight: Mapping[int, float] | str, labels: np.ndarray | torch.Tensor,
                  num_classes: int) -> np.ndarray:
    """The weight of each class, float64 (num_classes,), for ``class_weight`` and the training ``labels``.

    >>> class_weights("balanced", np.array([0, 0, 0, 1]), 2).tolist()
    [0.6666666666666666, 2.0]
    """
    counts = class_counts(labels, num_classes)
    if isinstance(class_weight, str):
        if class_weight != BALANCED:
            raise ConfigError(f"class_weight must be {BALANCED!r} or a dict {{class index: weight}}; "
                              f"got {class_weight!r}")
        present = counts > 0
        weights = np.ones(num_classes)
        weights[present] = counts.sum() / (present.sum() * counts[present])
        return weights
    if not isinstance(class_weight, Mapping):
        raise ConfigError(f"class_weight must be {BALANCED!r} or a dict {{class index: weight}}; "
                          f"got {type(class_weight).__name__}")
    weights = np.ones(num_classes)
    for key, value in class_weight.items():
        index = _class_index(key, num_classes)
        weights[index] = _weight(value, f"class_weight[{key!r}]")
    return weights


def sample_weights(labels: torch.Tensor, num_classes: int, class_weight: Mapping[int, float] | str | None,
                   sample_weight: Any) -> torch.Tensor | None:
    """Each sample's loss weight, float32 (N,), from ``class_weight`` or ``sample_weight``; None when neither
    is given (every sample weighs 1, and the loss is computed exactly as without weights)."""
    if class_weight is not None and sample_weight is not None:
        raise ConfigError("fit takes class_weight or sample_weight, not both (as Keras); fold the class weights "
                          "into the sample weights: sample_weight * weights[y]")
    if class_weight is not None:
        per_class = class_weights(class_weight, labels, num_classes)
        weights = torch.from_numpy(per_class.astype(np.float32))[labels]
    elif sample_weight is not None:
        weights = as_sample_weights(sample_weight, len(labels))
    else:
        return None
    if not weights.any():
        raise InputError("every training sample has weight 0, so nothing would be learned; give some a positive "
                         "weight")
    return weights


def as_sample_weights(sample_weight: Any, count: int) -> torch.Tensor:
    """``sample_weight`` as float32 (count,) after checking it: one finite weight >= 0 per sample."""
    if isinstance(sample_weight, torch.Tensor):
        sample_weight = sample_weight.detach().cpu().numpy()
    try:
        array = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(f"sample_weight must be an array of numbers, one per sample ({error})") from error
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.shape != (count,):
        raise InputError(f"sample_weight has shape {array.shape}, but there are {count} training samples; "
                         f"pass one weight per sample, shape ({count},)")
    if not np.isfinite(array).all() or (array < 0).any():
        raise InputError("sample_weight must hold finite weights >= 0; it has negative, NaN or infinite values")
    return torch.from_numpy(array.astype(np.float32))


def _class_index(key: Any, num_classes: int) -> int:
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or not 0 <= key < num_classes:
        raise ConfigError(f"class_weight has the key {key!r}; its keys must be class indices 0..{num_classes - 1}")
    return int(key)


def _weight(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 <= value < math.inf:
        raise ConfigError(f"{name} must be a finite weight >= 0; got {value!r}")
    return float(value)
