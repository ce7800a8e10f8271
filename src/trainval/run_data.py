"""The images one run trains, validates and tests on: its data set loaded and split, in one place.

``trainval train``, ``--resume``, ``--seeds`` and ``trainval evaluate`` all take a run's splits
from here, so the holdout a run validated on is the one ``evaluate --split validation`` scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainval import datasets
from trainval.config import TrainConfig
from trainval.data.splits import holdout_split

Pair = tuple[np.ndarray, np.ndarray]  # uint8 images (N, H, W, C), uint8 labels (N, 1)


@dataclass(frozen=True)
class RunData:
    """A run's training, validation (None without validation) and test images with their labels."""

    dataset: datasets.Dataset
    train: Pair
    validation: Pair | None
    test: Pair

    @property
    def validates_on_test(self) -> bool:
        """True for the tutorial's way (``--validation test``), which biases the test score."""
        return self.validation is self.test


def load_run_data(config: TrainConfig) -> RunData:
    """Load ``config``'s data set and split it as its ``validation`` setting says.

    ``holdout``: a stratified share of the training images (``holdout_size``), drawn with the
    run's seed; ``test``: the test set, as the Keras tutorial does; ``none``: no validation.
    """
    dataset = config.find_dataset()
    (x_train, y_train), test = dataset.load_data(config.data_dir)
    if config.validation == "holdout":
        train_idx, val_idx = holdout_split(y_train, config.holdout_size, seed=config.seed)
        return RunData(dataset, (x_train[train_idx], y_train[train_idx]), (x_train[val_idx], y_train[val_idx]), test)
    return RunData(dataset, (x_train, y_train), test if config.validation == "test" else None, test)
