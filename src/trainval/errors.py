"""The project's exceptions: every failure a user can cause or fix is one of these.

Each message says what was wrong and what to do about it. The CLI prints them as one line
without a traceback.
"""

from __future__ import annotations


class TrainvalError(Exception):
    """Base class of every error trainval raises on purpose."""


class DataError(TrainvalError):
    """A data set is missing, truncated, corrupt or in the wrong format."""


class ConfigError(TrainvalError, ValueError):
    """An option, hyperparameter or name (model, data set, precision) is invalid."""


class InputError(TrainvalError, ValueError):
    """Arrays passed to fit/evaluate/predict have the wrong shape, type or values."""


class ModelFileError(TrainvalError):
    """A saved model is missing, unreadable or does not match what it is loaded into."""


class CheckpointError(TrainvalError):
    """A checkpoint is missing, truncated, corrupt, or belongs to another model or another fit."""


class OutputError(TrainvalError):
    """An output folder or file cannot be written (no permission, disk full, a file in the way)."""


class TrainingDiverged(TrainvalError):
    """The loss or the weights became NaN or infinite; training stopped before saving them."""


class ReportError(TrainvalError):
    """A run folder lacks, or holds damaged, files its report is made from."""


class ExportError(TrainvalError):
    """A model cannot be exported in the asked format (a missing package, an unsupported layer)."""
