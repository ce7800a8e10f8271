"""Learning-rate multipliers as functions of the training step."""

from __future__ import annotations

from dataclasses import dataclass

from trainval.errors import ConfigError


@dataclass(frozen=True)
class WarmupLinearDecay:
    """Rise linearly from ``start`` to 1 over the first ``warmup`` fraction of steps, then fall
    linearly toward ``end``, which it reaches at step ``total_steps`` (one past the last update).
    The speed runs' triangular schedule."""

    warmup: float = 0.23  # fraction of all steps
    start: float = 0.2  # multiplier at step 0
    end: float = 0.07  # multiplier the decay heads for, reached at step total_steps

    def __post_init__(self) -> None:
        if not 0.0 <= self.warmup < 1.0:
            raise ConfigError(f"warmup must be a fraction in [0, 1); got {self.warmup}")

    def multiplier(self, step: int, total_steps: int) -> float:
        """The learning-rate multiplier for ``step`` (0-based) of ``total_steps``."""
        warmup_steps = self.warmup * total_steps
        if step < warmup_steps:
            return self.start + (1.0 - self.start) * step / warmup_steps
        remaining = max(total_steps - warmup_steps, 1.0)
        progress = min((step - warmup_steps) / remaining, 1.0)
        return 1.0 + (self.end - 1.0) * progress
