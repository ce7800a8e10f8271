"""Uncertainty on a measured accuracy."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from statistics import NormalDist


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion, e.g. test accuracy = correct / images.

    Better than the normal approximation near 0 and 1 and for small samples.

    >>> low, high = wilson_interval(7487, 10000)
    >>> round(low, 4), round(high, 4)
    (0.7401, 0.7571)
    """
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0; got {successes}/{trials}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # The interval always contains p; the clamps only undo rounding (p = 1 could give 0.9999999999999999).
    return max(0.0, min(p, centre - half_width)), min(1.0, max(p, centre + half_width))


def mean_proportion_interval(successes: Sequence[int], trials: Sequence[int],
                             confidence: float = 0.95) -> tuple[float, float]:
    """Interval for the unweighted mean of independent proportions, e.g. balanced accuracy (the mean of
    the per-class recalls, each class's correct / images).

    A normal approximation whose per-class variances use Agresti and Coull's adjusted proportions
    (z^2/2 successes and failures added), so a class scored 0/n or n/n still adds its uncertainty.

    >>> low, high = mean_proportion_interval([90, 40], [100, 50])
    >>> round(low, 4), round(high, 4)
    (0.7866, 0.9134)
    """
    if not trials or len(successes) != len(trials) or any(n <= 0 or not 0 <= k <= n for k, n in zip(successes, trials)):
        raise ValueError(f"need as many successes as trials, each 0 <= successes <= trials > 0; got {successes}/{trials}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    mean = statistics.fmean(k / n for k, n in zip(successes, trials))
    variance = sum(_adjusted_variance(k, n, z) for k, n in zip(successes, trials)) / len(trials) ** 2
    half_width = z * math.sqrt(variance)
    return max(0.0, mean - half_width), min(1.0, mean + half_width)


def _adjusted_variance(successes: int, trials: int, z: float) -> float:
    adjusted = (successes + z * z / 2) / (trials + z * z)
    return adjusted * (1 - adjusted) / (trials + z * z)


MISSING = "—"  # shown for a score that does not exist (precision of a class never predicted)


def format_percent(fraction: float | None, digits: int = 2) -> str:
    """0.9412 -> ``94.12%``; None -> an em dash."""
    return MISSING if fraction is None else f"{fraction * 100:.{digits}f}%"


def format_interval(interval: tuple[float, float] | None, digits: int = 2) -> str:
    """(0.9364, 0.9457) -> ``93.64-94.57%``; None -> an em dash."""
    return MISSING if interval is None else f"{interval[0] * 100:.{digits}f}-{interval[1] * 100:.{digits}f}%"


def format_accuracy(accuracy: float, interval: tuple[float, float], samples: int | None = None,
                    what: str = "test images") -> str:
    """``74.87% (95% CI 74.01-75.71%, 10000 test images)``; without ``samples``, no count."""
    count = "" if samples is None else f", {samples} {what}"
    return f"{format_percent(accuracy)} (95% CI {format_interval(interval)}{count})"


def accuracy_line(accuracy: float, interval: tuple[float, float], samples: int, what: str = "test images") -> str:
    """``Accuracy: 74.87% (95% CI 74.01-75.71%, 10000 test images)``, the tutorial's line plus its uncertainty."""
    return f"Accuracy: {format_accuracy(accuracy, interval, samples, what)}"


def format_balanced_accuracy(accuracy: float, interval: tuple[float, float], classes: int) -> str:
    """``61.20% (95% CI 55.10-67.30%, mean recall of 10 classes)``."""
    return f"{format_percent(accuracy)} (95% CI {format_interval(interval)}, mean recall of {classes} classes)"


def spread(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max of repeated measurements."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def format_spread(values: dict[str, float], scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    """``74.93 ± 0.40% (min 74.50, max 75.40)`` from a :func:`spread`, each figure times ``scale``."""
    mean, std, low, high = (values[key] * scale for key in ("mean", "std", "min", "max"))
    return f"{mean:.{digits}f} ± {std:.{digits}f}{unit} (min {low:.{digits}f}, max {high:.{digits}f})"
