"""Watching one metric for improvement, the way Keras's EarlyStopping and ModelCheckpoint do."""

from __future__ import annotations

import math
from typing import Any

from trainval.errors import ConfigError
from trainval.callbacks.base import Logs

MODES = ("auto", "min", "max")


class Monitor:
    """Which metric to watch and which direction is better.

    ``mode="auto"`` means higher is better for accuracies (names containing ``acc``) and lower
    for everything else. ``min_delta``: changes smaller than this do not count as improvement.
    """

    def __init__(self, monitor: str, mode: str = "auto", min_delta: float = 0.0, owner: str = "callback") -> None:
        if mode not in MODES:
            raise ConfigError(f"{owner}: mode must be one of {', '.join(MODES)}; got {mode!r}")
        if not isinstance(monitor, str) or not monitor:
            raise ConfigError(f"{owner}: monitor must be a metric name such as 'val_loss'; got {monitor!r}")
        self.name = monitor
        self.owner = owner
        self.higher_is_better = "acc" in monitor if mode == "auto" else mode == "max"
        self.min_delta = abs(min_delta)

    @property
    def worst(self) -> float:
        """A value every real score improves on."""
        return -math.inf if self.higher_is_better else math.inf

    def check_available(self, params: dict[str, Any]) -> None:
        """A ConfigError before training if the metric will never be logged (validation metric, no validation)."""
        if self.name.startswith("val_") and not params.get("val_samples"):
            raise ConfigError(f"{self.owner} monitors {self.name!r}, but this fit has no validation data; pass "
                              f"validation_data or validation_split, or monitor {self.name[4:]!r}")

    def value(self, logs: Logs | None) -> float:
        """The monitored value in an epoch's logs."""
        logs = logs or {}
        if self.name not in logs:
            raise ConfigError(f"{self.owner} monitors {self.name!r}, but the epoch logs hold only "
                              f"{', '.join(logs) or 'nothing'}; monitor one of those")
        return float(logs[self.name])

    def improves(self, current: float, reference: float) -> bool:
        """Whether ``current`` is better than ``reference`` by more than ``min_delta``."""
        if self.higher_is_better:
            return current - self.min_delta > reference
        return current + self.min_delta < reference
