"""The whole train-and-validate workflow, as the CLI runs it: load, split, train, test once, save."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from trainval import datasets, presets
from trainval.data.splits import holdout_split
from trainval.errors import ConfigError
from trainval.model import Model
from trainval.presets import Preset
from trainval.stats import wilson_interval
from trainval.training.callbacks import History

VALIDATION_MODES = ("holdout", "test", "none")


@dataclass(frozen=True)
class TrainConfig:
    """One training run: a preset, the data, and the few things a user commonly overrides."""

    preset: str | Preset | None = None  # a name from trainval.presets.names(), a Preset, or None: see resolve_preset
    dataset: str = "cifar10"
    model: str | None = None  # None: the preset's
    epochs: int | None = None  # None: the preset's
    batch_size: int | None = None  # None: the preset's; the learning rate scales with it
    seed: int = 0  # seeds weight init, the holdout split, shuffling, augmentation and dropout
    data_dir: str | None = None  # None: TRAINVAL_DATA, else the download cache
    precision: str = "auto"  # auto | bf16 | fp32
    validation: str = "holdout"  # holdout: from training data; test: the tutorial's way; none
    holdout_size: int = 5000  # images held out of training when validation == "holdout"
    output: str | None = None  # folder to save the trained model in; None: do not save
    verbose: int | str = "auto"

    def check(self) -> None:
        """Raise ConfigError for values no run could use."""
        if self.validation not in VALIDATION_MODES:
            raise ConfigError(f"validation must be one of {', '.join(VALIDATION_MODES)}; got {self.validation!r}")
        for name, minimum in (("epochs", 0), ("batch_size", 1), ("holdout_size", 1), ("seed", 0)):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < minimum):
                raise ConfigError(f"{name.replace('_', '-')} must be an integer >= {minimum}; got {value!r}")

    def resolve_preset(self) -> Preset:
        """The preset with this config's overrides applied. With no preset named, a named model
        brings its own recipe (``seed-cnn``: the tutorial's) and otherwise the ``94`` preset runs."""
        if self.preset is None:
            preset = presets.for_model(self.model)
        else:
            preset = self.preset if isinstance(self.preset, Preset) else presets.get(self.preset)
        return preset.with_overrides(self.model, self.epochs, self.batch_size)


@dataclass
class TrainResult:
    """What a run measured: the test set is scored exactly once, at the end."""

    config: TrainConfig
    preset: Preset
    model: Model
    history: History
    train_samples: int
    validation_samples: int
    test_samples: int
    test_loss: float
    test_accuracy: float
    test_interval: tuple[float, float]  # 95% Wilson interval of the test accuracy
    seconds: dict[str, float] = field(default_factory=dict)  # data, training, test, total


def run_training(config: TrainConfig, announce: Callable[[str], None] = print) -> TrainResult:
    """Run ``config`` end to end; ``announce`` receives the lines a user should see before training."""
    config.check()
    preset = config.resolve_preset()
    started = time.perf_counter()
    dataset = datasets.get(config.dataset)
    (x_train, y_train), (x_test, y_test) = dataset.load_data(config.data_dir)
    data_seconds = time.perf_counter() - started

    validation_data = None
    if config.validation == "holdout":
        train_idx, val_idx = holdout_split(y_train, config.holdout_size, seed=config.seed)
        validation_data = (x_train[val_idx], y_train[val_idx])
        x_train, y_train = x_train[train_idx], y_train[train_idx]
    elif config.validation == "test":
        validation_data = (x_test, y_test)
        announce("Note: validating on the test set, as the tutorial does, makes the test accuracy below a "
                 "biased (optimistic) estimate; use --validation holdout for an honest one.")

    num_classes = len(dataset.CLASS_NAMES)
    model = preset.build_model(num_classes, x_train.shape[1:], seed=config.seed, class_names=dataset.CLASS_NAMES,
                               precision=config.precision)
    announce(f"Preset {preset.name}: {preset.to_dict()}")
    announce(f"Model {preset.model}: {model.count_params():,} parameters on {model.device.type}, "
             f"precision {model.precision}; seed {config.seed}")

    fit_started = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=preset.batch_size, epochs=preset.epochs, verbose=config.verbose,
                        validation_data=validation_data, seed=config.seed,
                        callbacks=preset.callbacks())
    test_started = time.perf_counter()
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    finished = time.perf_counter()
    if config.output:
        model.save(Path(config.output))
    correct = int(round(test_accuracy * len(x_test)))
    return TrainResult(
        config=config, preset=preset, model=model, history=history, train_samples=len(x_train),
        validation_samples=0 if validation_data is None else len(validation_data[0]), test_samples=len(x_test),
        test_loss=test_loss, test_accuracy=test_accuracy, test_interval=wilson_interval(correct, len(x_test)),
        seconds={"data": data_seconds, "training": test_started - fit_started, "test": finished - test_started,
                 "total": time.perf_counter() - started},
    )


def accuracy_line(accuracy: float, interval: tuple[float, float], samples: int) -> str:
    """``Accuracy: 74.87% (95% CI 74.01-75.71%, 10000 test images)``, the tutorial's line plus its uncertainty."""
    low, high = (bound * 100 for bound in interval)
    return f"Accuracy: {accuracy * 100:.2f}% (95% CI {low:.2f}-{high:.2f}%, {samples} test images)"
