"""Every callback ``Model.fit`` accepts, under Keras's names: ``from trainval.callbacks import EarlyStopping``."""

from trainval.runs.backup import BackupAndRestore
from trainval.runs.metric_logs import CSVLogger, JSONLogger
from trainval.runs.model_checkpoint import ModelCheckpoint
from trainval.training.averaging import Lookahead
from trainval.training.callbacks import Callback, History
from trainval.training.early_stopping import EarlyStopping
from trainval.training.lr_scheduler import LearningRateScheduler
from trainval.training.nan_guard import TerminateOnNaN

__all__ = ["BackupAndRestore", "CSVLogger", "Callback", "EarlyStopping", "History", "JSONLogger",
           "LearningRateScheduler", "Lookahead", "ModelCheckpoint", "TerminateOnNaN"]
