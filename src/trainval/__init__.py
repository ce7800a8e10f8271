"""trainval: train and validate image classifiers with Keras's verbs, fast on a CPU and faster on a GPU.

>>> import trainval
>>> (x_train, y_train), (x_test, y_test) = trainval.datasets.cifar10.load_data()   # doctest: +SKIP
>>> model = trainval.create_model("seed-cnn")                                       # doctest: +SKIP
>>> model.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=10, batch_size=100)  # doctest: +SKIP

The names below load on first use (PEP 562), so ``import trainval`` is instant and the
``trainval`` command can answer Ctrl-C cleanly while torch is still loading.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trainval.version import __version__

# public name -> the module that defines it (a module of its own when the name is the module's last part)
_LAZY = {
    "Augmentation": "trainval.data.augment", "Callback": "trainval.callbacks.base",
    "History": "trainval.callbacks.base", "Lookahead": "trainval.callbacks.lookahead", "Model": "trainval.model",
    "TrainConfig": "trainval.config", "create_model": "trainval.model_factory", "describe_model": "trainval.model_factory",
    "list_models": "trainval.model_factory", "load_model": "trainval.model_factory", "resume_training": "trainval.experiment",
    "run_training": "trainval.experiment",
    "callbacks": "trainval.callbacks", "datasets": "trainval.datasets", "distributed": "trainval.distributed",
    "errors": "trainval.errors", "losses": "trainval.training.losses", "optimizers": "trainval.optimizers",
    "prediction": "trainval.prediction", "presets": "trainval.presets",
}

__all__ = ["Augmentation", "Callback", "History", "Lookahead", "Model", "TrainConfig", "__version__", "callbacks",
           "create_model", "datasets", "describe_model", "distributed", "errors", "list_models", "load_model", "losses",
           "optimizers", "prediction", "presets", "resume_training", "run_training"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'trainval' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if module.__name__.rsplit(".", 1)[-1] == name else getattr(module, name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # what the names are, for type checkers and IDEs
    from trainval import (
        callbacks,
        datasets,
        distributed,
        errors,
        optimizers,
        prediction,
        presets,
    )
    from trainval.callbacks.base import Callback, History
    from trainval.callbacks.lookahead import Lookahead
    from trainval.config import TrainConfig
    from trainval.data.augment import Augmentation
    from trainval.experiment import resume_training, run_training
    from trainval.model import Model
    from trainval.model_factory import (
        create_model,
        describe_model,
        list_models,
        load_model,
    )
    from trainval.training import losses
