"""``trainval evaluate``: score a saved model or a run's final model on one split of its data set."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from trainval import datasets, saving
from trainval.model_factory import load_model, saved_model_folder
from trainval.config import TrainConfig
from trainval.errors import ConfigError, ModelFileError, ReportError
from trainval.model import Model
from trainval.metrics import Scores
from trainval.reports.predictions_file import SavedPredictions
from trainval.reports.report import write_report
from trainval.run_data import load_run_data
from trainval.runs.run_folder import RunFolder
from trainval.training.precision import PRECISIONS

SPLITS = ("test", "validation", "train")


@dataclass
class SavedModelEvaluation:
    """Scores of one saved model on one split, and how they were made."""

    model_folder: Path
    dataset: str
    split: str
    scores: Scores
    tta: int
    precision: str
    images: np.ndarray  # the split's images, labels and predicted class probabilities
    labels: np.ndarray
    probabilities: np.ndarray


def evaluate_saved_model(path: str | os.PathLike[str], split: str = "test", dataset: str | None = None,
                         data_dir: str | None = None, precision: str | None = None,
                         batch_size: int | None = None) -> SavedModelEvaluation:
    """Score the model in ``path`` (a saved-model folder or a finished run folder) on ``split``.

    A run folder brings its data set, data folder and holdout split, so ``split="validation"``
    gives exactly the images it validated on and ``"train"`` the images it trained on; a bare
    model folder is scored on ``dataset`` (default cifar10). The model's recipe decides TTA.
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    run_config = _run_config(path)
    model = load_model(path, precision=precision or _run_precision(path))
    data = _dataset_for(model, dataset, run_config)
    if model.num_classes != data.num_classes:
        raise ConfigError(f"the model predicts {model.num_classes} classes but {data.name} has "
                          f"{data.num_classes}; pass the --dataset it was trained on")
    if run_config is not None and data.name == run_config.dataset:  # the run's own splits
        run_data = load_run_data(replace(run_config, data_dir=data_dir or run_config.data_dir))
        holdout = run_data.validation if run_config.validation == "holdout" else None
        splits = {"test": run_data.test, "train": run_data.train, "validation": holdout}
    else:
        train, test = data.load_data(data_dir)
        splits = {"test": test, "train": train, "validation": None}
    if splits[split] is None:
        raise ConfigError(f"{path} has no validation split of its own: only a run folder trained with "
                          "--validation holdout has one; use --split test or --split train")
    images, labels = splits[split]
    scores, probabilities = model.evaluate_detailed(images, labels, batch_size=batch_size,
                                                    class_names=model.class_names or data.class_names)
    return SavedModelEvaluation(saved_model_folder(path), data.name, split, scores, model.tta, model.precision,
                                images, labels, probabilities)


def _dataset_for(model: Model, name: str | None, run_config: TrainConfig | None) -> datasets.Dataset:
    """The data set named (a folder's images sized for the model), else the run's own, else CIFAR-10."""
    if name is None:
        return run_config.find_dataset() if run_config else datasets.get("cifar10")
    if name.startswith(datasets.FOLDER_PREFIX) and model.input_shape is not None:
        same_folder = run_config is not None and run_config.dataset == name
        return datasets.get(name, image_size=model.input_shape[0],
                            test_fraction=run_config.test_fraction if same_folder else None)
    return datasets.get(name)


def _run_precision(path: str | os.PathLike[str]) -> str:
    """The precision a finished run scored its test set in, else ``"auto"``."""
    folder = RunFolder(path)
    if not folder.result_file.exists():
        return "auto"
    precision = folder.read_result().precision
    return precision if precision in PRECISIONS else "auto"


def _run_config(path: str | os.PathLike[str]) -> TrainConfig | None:
    folder = RunFolder(path)
    if not folder.config_file.exists():
        return None
    return TrainConfig.from_dict(folder.read_config().config)


def remake_report(path: str | os.PathLike[str], announce: Callable[[str], None] = print) -> Path:
    """Make the run's plots and report.html again (``trainval report``). A run whose saved test predictions
    are missing or damaged has its final model score the test set again (the same model gives the
    same figures) and the predictions saved anew first."""
    folder = RunFolder.open(path)
    folder.refuse_seeds_parent()
    try:
        SavedPredictions.read(folder.test_predictions)
    except ReportError as error:
        if folder.result_file.exists():
            announce(f"{error}; scoring the test set again with the run's final model")
            evaluation = evaluate_saved_model(folder.path, "test")
            SavedPredictions.of(evaluation.probabilities, evaluation.labels, evaluation.images).write(
                folder.test_predictions)
    class_names = None
    if folder.result_file.exists() and folder.read_result().class_names() is None:
        try:  # runs older than per-class scores name their classes in their model only
            class_names = saving.read_spec(saved_model_folder(folder.path)).get("class_names")
        except (ModelFileError, ConfigError):
            pass
    return write_report(folder.path, class_names=class_names)
