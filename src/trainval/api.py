"""The top-level functions: build a model by name, list and describe the names, load a saved model."""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from trainval import models, saving
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
                 device: str | torch.device | None = None, **options: Any) -> Model:
    """Build a registered architecture, freshly initialised, wrapped in a :class:`Model`.

    ``input_shape`` is (height, width, channels), as in Keras. ``seed`` makes the initial weights
    reproducible without touching torch's global random state. ``options`` go to the
    architecture's builder.

    >>> model = trainval.create_model("seed-cnn", seed=0)
    >>> model.count_params()
    1250858
    """
    entry = models.get_entry(name)
    try:
        inspect.signature(entry.build).bind(num_classes=num_classes, input_shape=input_shape, **options)
    except TypeError:
        accepted = [p for p in inspect.signature(entry.build).parameters if p not in ("num_classes", "input_shape")]
        raise ConfigError(f"model {name!r} takes the options {', '.join(accepted) or '(none)'}; "
                          f"got {', '.join(sorted(options))}") from None
    if seed is not None and (not isinstance(seed, int) or seed < 0):
        raise ConfigError(f"seed must be an integer >= 0; got {seed!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer >= 2; got {num_classes!r}")
    input_shape = tuple(int(size) for size in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ConfigError(f"input_shape must be (height, width, channels); got {input_shape}")
    if seed is None:
        module = entry.build(num_classes=num_classes, input_shape=input_shape, **options)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = entry.build(num_classes=num_classes, input_shape=input_shape, **options)
    return Model(module, num_classes=num_classes, input_shape=input_shape, class_names=class_names, device=device,
                 architecture={"name": name, "options": options}, default_optimizer=entry.default_optimizer)


def load_model(path: str | os.PathLike[str], module: nn.Module | None = None,
               device: str | torch.device | None = None, precision: str = "auto") -> Model:
    """Load a model saved with ``Model.save(path)``, or the final model of the run folder ``path``.

    The model comes back compiled the way its recipe scores it (TTA level, label smoothing), in
    ``precision`` (``"auto"``, ``"bf16"`` or ``"fp32"``). Registered architectures are rebuilt by name; a model around your own module needs that
    module passed as ``module`` (its weights are then loaded into it).
    """
    path = RunFolder.model_in(path)
    spec = saving.read_spec(path)
    architecture = spec.get("architecture")
    num_classes, input_shape = spec.get("num_classes"), spec.get("input_shape")
    if module is None:
        if not architecture:
            raise ModelFileError(f"{path} holds weights for a custom module: pass it, as in "
                                 "trainval.load_model(path, module=MyNet())")
        model = create_model(architecture["name"], num_classes, input_shape, class_names=spec.get("class_names"),
                             device=device, **architecture.get("options", {}))
    else:
        model = Model(module, num_classes=num_classes, input_shape=tuple(input_shape) if input_shape else None,
                      class_names=spec.get("class_names"), device=device)
    saving.load_weights(model.module, path, spec.get("weights_sha256"))
    settings = spec.get("evaluation", {})
    model.compile(loss=CategoricalCrossentropy(settings.get("label_smoothing") or 0.0), tta=settings.get("tta", 0),
                  tta_fraction=settings.get("tta_fraction", 1.0), precision=precision)
    return model
