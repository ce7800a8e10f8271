"""``TrainConfig``: one training run's settings, as the CLI takes them and config.json keeps them."""

from __future__ import annotations

import argparse
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from trainval import datasets, models, presets, saving
from trainval.callbacks.tensorboard import INSTALL_HINT, parse_update_freq, summary_writer_class
from trainval.checks import require_int
from trainval.data.class_weights import BALANCED
from trainval.datasets import image_folder
from trainval.errors import CheckpointError, ConfigError
from trainval.model_factory import PUBLISHED_WEIGHTS, saved_model_folder
from trainval.models import timm_models
from trainval.presets import Preset
from trainval.runs.run_folder import check_run_name
from trainval.training.precision import PRECISIONS

VALIDATION_MODES = ("holdout", "test", "none")
MONITORS = ("val_acc", "val_loss", "acc", "loss")  # what a run logs each epoch
_CHECKPOINT_EVERY = re.compile(r"^(?:(?P<steps>\d+)|(?P<amount>\d+(?:\.\d+)?)(?P<unit>[smh]))$")
_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600}


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def parse_checkpoint_every(text: str) -> tuple[int | None, float | None]:
    """``"500"``: every 500 steps; ``"90s"``, ``"10m"``, ``"1h"``: every so long; ``"epoch"``: epoch ends only.

    Returns (steps, seconds), at most one of them set.
    """
    if text == "epoch":
        return None, None
    match = _CHECKPOINT_EVERY.match(text.strip()) if isinstance(text, str) else None
    if match is None or (match["steps"] is not None and int(match["steps"]) < 1) or \
            (match["amount"] is not None and float(match["amount"]) <= 0):
        raise ConfigError(f"checkpoint-every must be a number of steps (500), a time (90s, 10m, 1h) or 'epoch'; "
                          f"got {text!r}")
    if match["steps"] is not None:
        return int(match["steps"]), None
    return None, float(match["amount"]) * _SECONDS_PER_UNIT[match["unit"]]


def count_or_fraction(text: str) -> int | float:
    """``--holdout-size``'s value: ``"5000"`` is a count, ``"0.1"`` a fraction."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a count (5000) or a fraction (0.1); got {text!r}") from None


def verbose_level(text: str) -> int | str:
    """``--verbose``'s value: ``"auto"``, or a level 0, 1 or 2 as a number."""
    return text if text == "auto" else int(text)


def _option(default: Any, help: str, *flags: str, **argparse_settings: Any) -> Any:
    """A TrainConfig field that is also an option of ``trainval train``: its help, and how argparse reads it
    (``flags`` default to the field's name, ``--batch-size`` for ``batch_size``)."""
    return field(default=default, metadata={"cli": {"help": help, "flags": flags, **argparse_settings}})


_PRESET_HELP = ("training recipe: " + "; ".join(f"{name}: {presets.get(name).description}".replace("%", "%%")
                                                for name in presets.names())
                + f" (default: {presets.DEFAULT}, or the recipe of the --model given: tutorial for seed-cnn)")
DATASET_HELP = (f"data set: {', '.join(datasets.names())}, or {datasets.FOLDER_PREFIX}PATH for a folder with one "
                "sub-folder of images per class (see trainval datasets)")
PRECISION_HELP = ("auto: bf16 on GPUs and on CPUs with native bf16 (AVX-512 BF16/AMX), else fp32 "
                  "(default: %(default)s)")


@dataclass(frozen=True)
class TrainConfig:
    """One training run: a preset, the data, and the few things a user commonly overrides.

    Each field is also an option of ``trainval train`` (its help is in the field's metadata), so the
    command line and the Python API take the same settings.
    """

    # a name from trainval.presets.names(), a Preset, or None: see resolve_preset
    preset: str | Preset | None = _option(None, _PRESET_HELP, choices=presets.names())
    dataset: str = _option("cifar10", DATASET_HELP + " (default: %(default)s)")
    model: str | None = _option(None, f"architecture, one of: {', '.join(models.registered_names())}, or timm:NAME "
                                      "with the timm extra (default: the preset's)")
    init_from: str | None = _option(None, "start from a trained model (a run folder or a saved model) with a new head "
                                          "for this data's classes: its architecture and every tensor but the "
                                          "head's; trains with the finetune preset unless --preset is given",
                                    metavar="RUN_OR_MODEL")
    pretrained: str | None = _option(None, "start --model's body from a weights file (.safetensors, or a state dict "
                                           "or timm checkpoint saved with torch.save) with a new head; 'timm' "
                                           "downloads timm's published weights of a timm:NAME model; trains with the "
                                           "finetune preset unless --preset is given", metavar="FILE_OR_timm")
    epochs: int | None = _option(None, "passes over the training data (default: the preset's)", type=int)
    batch_size: int | None = _option(None, "images per training step; the learning rate scales with it "
                                           "(linearly; Muon's filter rate with its root; default: the preset's)", type=int)
    learning_rate: float | None = _option(None, "base learning rate (Muon: the filters' rate, the rest "
                                                "keeping its ratio to it; default: the preset's, scaled to the batch "
                                                "size)", "--learning-rate", "--lr", type=float)
    seed: int = _option(0, "seeds initial weights, the holdout split, shuffling, augmentation and dropout (same seed, "
                           "same result on CPU; default: %(default)s)", type=int)
    data_dir: str | None = _option(None, "folder holding the data set files (default: $TRAINVAL_DATA, else download "
                                         "to ~/.cache/trainval)")
    image_size: int | None = _option(None, "folder data sets: images are cropped to a square and resized to this "
                                           f"many pixels a side (default: {image_folder.DEFAULT_IMAGE_SIZE})",
                                     type=int, metavar="PIXELS")
    test_fraction: float | None = _option(None, "folder data sets without train/ and test/ sub-folders: the share of "
                                                "each class's images held out as the test set (default: "
                                                f"{image_folder.DEFAULT_TEST_FRACTION})", type=float,
                                          metavar="FRACTION")
    precision: str = _option("auto", PRECISION_HELP, choices=PRECISIONS)
    compile: bool = _option(False, "run the model through torch.compile: faster steps on GPUs after a one-off compile "
                                   "(its time is reported apart; on CPUs compiling takes minutes)",
                            action="store_true")
    validation: str = _option("holdout", "holdout: validate on images held out of the training set (honest); test: "
                                         "on the test set, as the Keras tutorial does (biases the test score); none: "
                                         "train on all training images without validation (default: %(default)s)",
                              choices=VALIDATION_MODES)
    holdout_size: int | float = _option(0.1, "training images held out, stratified by class, with --validation "
                                             "holdout: a fraction (at least one image of every class each way) or a "
                                             "count such as 5000 (default: %(default)s, which is 5,000 of CIFAR-10's "
                                             "50,000)", type=count_or_fraction)
    class_weight: str | None = _option(None, "balanced: weigh each training image's loss by n_images / (n_classes * "
                                             "images of its class), so that every class counts alike however many "
                                             "images it has (default: every image weighs 1)",
                                       choices=[BALANCED])
    patience: int | None = _option(None, "stop after this many epochs without a better --monitor score and keep the "
                                         "best weights (default: train all epochs)", type=int)
    monitor: str | None = _option(None, "metric that picks the best model and drives --patience (default: val_acc)",
                                  choices=MONITORS)
    runs_dir: str | None = _option("runs", "where run folders go: config, metrics, checkpoints, models (default: "
                                           "%(default)s)")  # None: write no run folder
    name: str | None = _option(None, "the run folder's name (default: the date and time)")
    sync_bn: bool = _option(False, "in data-parallel training on GPUs, compute BatchNorm statistics over the global "
                                   "batch (PyTorch's SyncBatchNorm) instead of each process's share",
                            action="store_true")
    checkpoint_every: str = _option("60s", "also checkpoint mid-epoch: a number of steps (500), a time (90s, 10m) or "
                                           "'epoch' for epoch ends only (default: %(default)s)")
    output: str | None = _option(None, "also save the final model in this folder (load with trainval.load_model)")
    # None: no TensorBoard logs; else Keras's update_freq: "epoch", "batch" or a number of steps
    tensorboard: str | int | None = _option(
        None, "also write TensorBoard logs in RUN/tensorboard/ (view with tensorboard --logdir runs): loss, accuracy "
              "and learning rate per epoch, the test scores and the configuration; with a value, also the running "
              f"loss and learning rate every 'batch' or every N steps (needs {INSTALL_HINT})",
        nargs="?", const="epoch", metavar="UPDATE_FREQ")
    verbose: int | str = _option("auto", "0 silent, 1 live progress bar, 2 one line per epoch; auto: 1 in a terminal, "
                                         "else 2", choices=["auto", 0, 1, 2], type=verbose_level)

    def check(self) -> None:
        """Raise ConfigError for values no run could use."""
        if self.validation not in VALIDATION_MODES:
            raise ConfigError(f"validation must be one of {', '.join(VALIDATION_MODES)}; got {self.validation!r}")
        for name, minimum in (("epochs", 0), ("batch_size", 1), ("seed", 0), ("patience", 0)):
            if getattr(self, name) is not None:
                require_int(name.replace("_", "-"), getattr(self, name), minimum)
        if self.learning_rate is not None and (isinstance(self.learning_rate, bool)
                                               or not isinstance(self.learning_rate, (int, float))
                                               or not 0 < self.learning_rate < math.inf):
            raise ConfigError(f"learning-rate must be a positive finite number; got {self.learning_rate!r}")
        for name in ("dataset", "precision", "checkpoint_every"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name.replace('_', '-')} must be a string; got {getattr(self, name)!r}")
        for name in ("sync_bn", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name.replace('_', '-')} must be true or false; got {getattr(self, name)!r}")
        for name in ("model", "data_dir", "runs_dir", "name", "output", "monitor", "init_from", "pretrained"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name.replace('_', '-')} must be a string or None; got {getattr(self, name)!r}")
        if self.name is not None:
            check_run_name(self.name)
        size = self.holdout_size
        if isinstance(size, bool) or not isinstance(size, (int, float)) or (isinstance(size, int) and size < 1):
            raise ConfigError(f"holdout-size must be a count >= 1 or a fraction in (0, 1); got {size!r}")
        if isinstance(size, float) and not 0.0 < size < 1.0:
            raise ConfigError(f"holdout-size as a fraction must lie strictly between 0 and 1; got {size!r}")
        if self.class_weight not in (None, BALANCED):
            raise ConfigError(f"class-weight must be {BALANCED!r} or None; got {self.class_weight!r}")
        if self.monitor is not None and self.monitor not in MONITORS:
            raise ConfigError(f"monitor must be one of {', '.join(MONITORS)}; got {self.monitor!r}")
        if self.validation == "none" and self.watched_metric.startswith("val_") and \
                (self.monitor is not None or self.patience is not None):
            what = "--patience" if self.monitor is None else f"--monitor {self.monitor}"
            raise ConfigError(f"{what} watches {self.watched_metric}, which needs validation: drop --validation none, "
                              "or monitor a training metric (--monitor loss or --monitor acc)")
        parse_checkpoint_every(self.checkpoint_every)
        if self.tensorboard is not None:
            parse_update_freq(self.tensorboard)
            summary_writer_class()  # the tensorboard package is there
        self.find_dataset()
        self._check_model_and_weights()

    def _check_model_and_weights(self) -> None:
        """--init-from and --pretrained: one at most, naming something that is there; a timm model: timm there."""
        if self.init_from is not None and self.pretrained is not None:
            raise ConfigError("--init-from and --pretrained both give the starting weights; pass one of them")
        if self.init_from is not None:
            self.init_architecture()
        model = self.resolve_preset().model
        if model.startswith(timm_models.PREFIX):  # timm installed and knowing the name: checked before any data is loaded
            timm_models.check_name(model[len(timm_models.PREFIX):])
        if self.pretrained == PUBLISHED_WEIGHTS:
            if not model.startswith(timm_models.PREFIX):
                raise ConfigError(f"--pretrained {PUBLISHED_WEIGHTS} takes timm's published weights, which only timm "
                                  f"models have, not {model}: add --model timm:NAME, or pass a weights file")
        elif self.pretrained is not None and not os.path.exists(self.pretrained):
            raise ConfigError(f"--pretrained {self.pretrained} does not exist; pass a weights file (.safetensors, "
                              f".pth) or {PUBLISHED_WEIGHTS!r} for timm's published weights")

    @property
    def weights(self) -> str | None:
        """Where the run's starting weights come from (--init-from or --pretrained), or None."""
        return self.init_from if self.init_from is not None else self.pretrained

    def init_architecture(self) -> dict[str, Any]:
        """The architecture (name and options) of the model ``init_from`` names; a ModelFileError or
        ConfigError if it names no saved model, or one trainval cannot rebuild by name."""
        assert self.init_from is not None
        folder = saved_model_folder(self.init_from)
        architecture = saving.read_spec(folder).get("architecture")
        if not architecture:
            raise ConfigError(f"--init-from {self.init_from} holds a custom module's weights, which trainval train "
                              "cannot rebuild by name; fine-tune it in Python: trainval.load_model(path, module=...)")
        return architecture

    @property
    def watched_metric(self) -> str:
        """The metric that picks the best model and drives early stopping: ``monitor``, else val_acc."""
        return self.monitor or "val_acc"

    def with_absolute_paths(self) -> TrainConfig:
        """This config with its data folder and image folder as absolute paths, so that the run's files name
        them from anywhere (evaluate, report and resume may run in another working folder)."""
        dataset = self.dataset
        if isinstance(dataset, str) and dataset.startswith(datasets.FOLDER_PREFIX):
            dataset = datasets.FOLDER_PREFIX + _absolute(dataset[len(datasets.FOLDER_PREFIX):])
        data_dir, init_from, pretrained = (_absolute(path) if isinstance(path, str) else path
                                           for path in (self.data_dir, self.init_from, self.pretrained))
        if self.pretrained == PUBLISHED_WEIGHTS:
            pretrained = self.pretrained
        return replace(self, dataset=dataset, data_dir=data_dir, init_from=init_from, pretrained=pretrained)

    def find_dataset(self) -> datasets.Dataset:
        """The data set this config names, with its folder options."""
        return datasets.get(self.dataset, image_size=self.image_size, test_fraction=self.test_fraction)

    def resolve_preset(self, train_samples: int | None = None) -> Preset:
        """The preset with this config's overrides applied, fitted to the data set (no mirroring where it
        changes classes). With no preset named, a model started from pretrained weights fine-tunes
        (``finetune``), a named model brings its own recipe (``seed-cnn``: the tutorial's) and
        otherwise the ``94`` preset runs. ``init_from`` brings its architecture unless ``model`` is
        given. Given the number of ``train_samples``, a batch larger than that becomes the whole
        training set (its learning rate scaled to it)."""
        if self.preset is None:
            preset = presets.get(presets.FINE_TUNING) if self.weights is not None else presets.for_model(self.model)
        else:
            preset = self.preset if isinstance(self.preset, Preset) else presets.get(self.preset)
        if self.init_from is not None and self.model is None:
            architecture = self.init_architecture()
            preset = replace(preset, model=architecture["name"], model_options=architecture.get("options", {}))
        preset = preset.with_overrides(self.model, self.epochs, self.batch_size, self.learning_rate)
        if train_samples is not None and preset.batch_size > train_samples >= 1:
            return replace(self, batch_size=train_samples).resolve_preset()
        # A folder of one's own images is taken as mirror-safe, which spares scanning it here.
        mirror_safe = self.dataset.startswith(datasets.FOLDER_PREFIX) or self.find_dataset().mirror_safe
        return preset if mirror_safe else preset.without_mirroring()

    def to_dict(self) -> dict[str, Any]:
        """Plain values for config.json (a Preset object is recorded by its name)."""
        values = asdict(self)
        if isinstance(self.preset, Preset):
            values["preset"] = self.preset.name
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """The config :meth:`to_dict` wrote; a CheckpointError for entries this trainval does not know."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise CheckpointError(f"config.json has settings this trainval does not know ({', '.join(unknown)}); "
                                  "resume it with the trainval version that started it")
        return cls(**values)
