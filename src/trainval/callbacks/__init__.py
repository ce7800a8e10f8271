"""Callbacks: code ``Model.fit`` calls at named moments, with Keras's names and arguments.

``from trainval.callbacks import EarlyStopping``. The training loop only calls hooks; progress
printing, checkpoints, metric logs, early stopping and weight averaging are all callbacks here,
one module each. Subclass :class:`Callback` for your own.
"""

from trainval.callbacks.backup import BackupAndRestore
from trainval.callbacks.base import Callback, CallbackList, History
from trainval.callbacks.early_stopping import EarlyStopping
from trainval.callbacks.lookahead import Lookahead
from trainval.callbacks.lr_scheduler import LearningRateScheduler
from trainval.callbacks.metric_logs import CSVLogger, JSONLogger
from trainval.callbacks.model_checkpoint import ModelCheckpoint
from trainval.callbacks.nan_guard import TerminateOnNaN
from trainval.callbacks.progress import ProgressLogger
from trainval.callbacks.tensorboard import TensorBoard

__all__ = ["BackupAndRestore", "CSVLogger", "Callback", "CallbackList", "EarlyStopping", "History", "JSONLogger",
           "LearningRateScheduler", "Lookahead", "ModelCheckpoint", "ProgressLogger", "TensorBoard",
           "TerminateOnNaN"]
