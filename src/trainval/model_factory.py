"""Models by name and from files: what ``trainval.create_model``, ``list_models``, ``describe_model`` and
``load_model`` do.

An architecture (``trainval.models``' registry: a torch module builder) becomes a Keras-style
:class:`~trainval.model.Model` here, freshly initialised by name or rebuilt from a saved model
folder (``trainval.saving``'s format), after checking the folder's spec against its weights.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from trainval.checks import require_int
from trainval import models, saving, transfer
from trainval.errors import ConfigError, ModelFileError
from trainval.model import Model
from trainval.runs.run_folder import RunFolder
from trainval.training.losses import CategoricalCrossentropy


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    return models.registered_names()


@dataclass(frozen=True)
class ModelDescription:
    """What one architecture costs for a given input: its size and its compute per image."""

    name: str
    description: str
    parameters: int  # trainable and frozen
    flops_per_image: int  # a multiply-add counts 2; convolutions and matrix products (torch's FlopCounterMode)


def describe_model(name: str, num_classes: int = 10, input_shape: Sequence[int] = (32, 32, 3),
                   **options: Any) -> ModelDescription:
    """Parameters and forward-pass FLOPs per image of the architecture ``name`` built for ``input_shape``.

    >>> trainval.describe_model("seed-cnn").parameters
    1250858
    """
    model = create_model(name, num_classes, input_shape, seed=0, device="cpu", **options)
    height, width, channels = model.input_shape
    model.module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.module(torch.zeros(1, channels, height, width))
    return ModelDescription(name, models.get_entry(name).description, model.count_params(), counter.get_total_flops())


def create_model(name: str, num_classes: int = 10, input_shape: Sequence[int] = (32, 32, 3), *,
                 seed: int | None = None, class_names: Sequence[str] | None = None,
                 device: str | torch.device | None = None, weights: str | os.PathLike[str] | None = None,
                 **options: Any) -> Model:
    """Build a registered architecture (or ``timm:NAME``, with the timm extra) wrapped in a :class:`Model`.

    ``input_shape`` is (height, width, channels), as in Keras. ``seed`` makes the initial weights
    reproducible without touching torch's global random state. ``options`` go to the
    architecture's builder.

    ``weights`` starts the network from other weights, with a new head for ``num_classes``: a model
    trainval saved (a run folder or a ``Model.save`` folder), a weights file (``.safetensors``, or a
    state dict or timm checkpoint saved with ``torch.save``, read with ``weights_only=True``), or
    ``"timm"`` for timm's published pretrained weights of a ``timm:NAME`` model (a download).
    Every tensor but the head's is loaded, by name and shape; one that does not fit is a
    ModelFileError that lists them. A fastnet keeps the pretrained one's input normalisation and
    whitening stem (they are not fitted to the new data again).

    >>> model = trainval.create_model("seed-cnn", seed=0)
    >>> model.count_params()
    1250858
    >>> model = trainval.create_model("fastnet", num_classes=2, weights="runs/pretrain")  # doctest: +SKIP
    """
    entry = models.get_entry(name)
    try:
        inspect.signature(entry.build).bind(num_classes=num_classes, input_shape=input_shape, **options)
    except TypeError:
        accepted = [p for p in inspect.signature(entry.build).parameters if p not in ("num_classes", "input_shape")]
        raise ConfigError(f"model {name!r} takes the options {', '.join(accepted) or '(none)'}; "
                          f"got {', '.join(sorted(options))}") from None
    if seed is not None:
        require_int("seed", seed, 0)
    require_int("num_classes", num_classes, 2)
    input_shape = tuple(int(size) for size in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ConfigError(f"input_shape must be (height, width, channels); got {input_shape}")
    source = None if weights is None else _weight_source(weights, entry, input_shape, options)
    rebuild = functools.partial(entry.build, input_shape=input_shape, **options)
    if seed is None:
        module = rebuild(num_classes=num_classes)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = rebuild(num_classes=num_classes)
    head = transfer.head_names(module, lambda classes: rebuild(num_classes=classes), num_classes)
    if source is not None:
        described = f"{name}{f' with {options}' if options else ''}"
        transfer.load_body(module, source, head, described, channels=input_shape[2])
    return Model(module, num_classes=num_classes, input_shape=input_shape, class_names=class_names, device=device,
                 architecture={"name": name, "options": options}, default_optimizer=entry.default_optimizer,
                 head=head)


PUBLISHED_WEIGHTS = "timm"  # create_model(weights=...) value for the weights an architecture's library publishes


def _weight_source(weights: str | os.PathLike[str], entry: models.ModelEntry, input_shape: tuple[int, ...],
                   options: dict[str, Any]) -> transfer.WeightSource:
    """Where ``create_model(weights=...)`` takes its tensors from."""
    if weights == PUBLISHED_WEIGHTS:
        if entry.published_weights is None:
            raise ConfigError(f"weights {PUBLISHED_WEIGHTS!r} are timm's published pretrained weights, which only "
                              f"timm:NAME models have, not {entry.name}; pass a weights file or a trained model")
        return transfer.WeightSource(entry.published_weights(input_shape, **options),
                                     f"timm's pretrained {entry.name}", channels=input_shape[2])
    if not isinstance(weights, (str, os.PathLike)):
        raise ConfigError(f"weights must be a path (a run folder, a saved model, a weights file) or "
                          f"{PUBLISHED_WEIGHTS!r}; got {weights!r}")
    if Path(weights).is_dir():
        return transfer.saved_model_source(saved_model_folder(weights))
    return transfer.read_weight_file(weights)


def load_model(path: str | os.PathLike[str], module: nn.Module | None = None,
               device: str | torch.device | None = None, precision: str = "auto") -> Model:
    """Load a model saved with ``Model.save(path)``, or the final model of the run folder ``path``.

    The model comes back compiled the way its recipe scores it (TTA level, label smoothing), in
    ``precision`` (``"auto"``, ``"bf16"`` or ``"fp32"``). Registered architectures are rebuilt by name; a model around your own module needs that
    module passed as ``module`` (its weights are then loaded into it).
    """
    path = saved_model_folder(path)
    spec = saving.read_spec(path)
    architecture = spec.get("architecture")
    num_classes, input_shape = spec.get("num_classes"), spec.get("input_shape")
    if module is None:
        if not architecture:
            raise ModelFileError(f"{path} holds weights for a custom module: pass it, as in "
                                 "trainval.load_model(path, module=MyNet())")
        build = functools.partial(create_model, architecture["name"], num_classes, input_shape,
                                  class_names=spec.get("class_names"), **architecture.get("options", {}))
        try:
            with torch.device("meta"):  # sizes without memory: checked against the weights before the real build
                saving.check_weights_fit(build(device="meta").module, path)
        except ConfigError as error:
            raise ModelFileError(f"{Path(path) / saving.SPEC_FILE} describes a network trainval cannot build "
                                 f"({error}); save the model again") from error
        model = build(device=device)
    else:
        model = Model(module, num_classes=num_classes, input_shape=tuple(input_shape) if input_shape else None,
                      class_names=spec.get("class_names"), device=device)
    saving.load_weights(model.module, path, spec.get("weights_sha256"))
    settings = spec.get("evaluation", {})
    model.compile(loss=CategoricalCrossentropy(settings.get("label_smoothing") or 0.0), tta=settings.get("tta", 0),
                  tta_fraction=settings.get("tta_fraction", 1.0),
                  precision=precision)
    return model


def saved_model_folder(path: str | os.PathLike[str]) -> Path:
    """The saved-model folder ``path`` stands for: ``path`` itself, or a finished run folder's final model;
    a ModelFileError or ConfigError that says which to pass instead."""
    folder = RunFolder(path)
    if (folder.path / saving.SPEC_FILE).exists():
        return folder.path
    if not folder.config_file.exists():
        raise ModelFileError(f"{path} is neither a saved model (it has no {saving.SPEC_FILE}) nor a run folder (no "
                             f"{folder.config_file.name}); pass runs/<name> or a folder written by model.save")
    folder.refuse_seeds_parent()
    if not (folder.final_model / saving.SPEC_FILE).exists():
        best = (f"; its best model is in {folder.best_model}" if (folder.best_model / saving.SPEC_FILE).exists()
                else "")
        if folder.result_file.exists():
            raise ModelFileError(f"the run in {path} has finished, but its final model {folder.final_model} is "
                                 f"missing (deleted or moved){best}. Train the run again to get it back")
        raise ConfigError(f"the run in {path} has not finished, so it has no final model yet{best}. "
                          f"Finish it with {folder.command_hint()}")
    return folder.final_model
