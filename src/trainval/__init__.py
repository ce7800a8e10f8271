"""trainval: train and validate image classifiers with Keras's verbs, fast on a CPU and faster on a GPU.

>>> import trainval
>>> (x_train, y_train), (x_test, y_test) = trainval.datasets.cifar10.load_data()   # doctest: +SKIP
>>> model = trainval.create_model("seed-cnn")                                       # doctest: +SKIP
>>> model.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=10, batch_size=100)  # doctest: +SKIP
"""

__version__ = "0.1.0"

from trainval import callbacks, datasets, distributed, errors, presets
from trainval.api import create_model, describe_model, list_models, load_model
from trainval.config import TrainConfig
from trainval.data.augment import Augmentation
from trainval.experiment import resume_training, run_training
from trainval.model import Model
from trainval.training import losses, optimizers
from trainval.training.averaging import Lookahead
from trainval.training.callbacks import Callback, History

__all__ = ["Augmentation", "Callback", "History", "Lookahead", "Model", "TrainConfig", "callbacks", "create_model",
           "datasets", "describe_model", "distributed", "errors", "list_models", "load_model", "losses", "optimizers",
           "presets", "resume_training", "run_training", "__version__"]
