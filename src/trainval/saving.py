"""The saved-model format: a folder with ``model.safetensors`` (weights) and ``model.json`` (spec).

No pickle anywhere: loading a model never runs code from the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as dump_safetensors

from trainval import __version__
from trainval.atomic_files import write_bytes_atomically
from trainval.errors import ModelFileError
from trainval.training.losses import CategoricalCrossentropy
from trainval.training.tta import TTA_LEVELS

if TYPE_CHECKING:
    from trainval.model import Model

FORMAT = "trainval-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
SPEC_FILE = "model.json"


def describe(model: Model) -> dict[str, Any]:
    """What rebuilding ``model`` takes besides its weights: architecture, classes, input shape, class names."""
    return {
        "architecture": model.architecture,
        "num_classes": model.num_classes,
        "input_shape": list(model.input_shape) if model.input_shape else None,
        "class_names": model.class_names,
    }


def evaluation_settings(model: Model) -> dict[str, Any]:
    """How the model's recipe scores it: its TTA level and, for cross-entropy, its label smoothing
    (None for a custom loss, which a loaded model replaces by plain cross-entropy). An uncompiled
    model has the defaults: no TTA, plain cross-entropy."""
    if not model.is_compiled:
        return {"tta": 0, "label_smoothing": 0.0}
    loss = model.loss
    smoothing = (loss.label_smoothing if isinstance(loss, CategoricalCrossentropy)
                 else 0.0 if loss is torch.nn.functional.cross_entropy else None)
    return {"tta": model.tta, "tta_fraction": model.tta_fraction, "label_smoothing": smoothing}


def weight_tensors(model: Model) -> dict[str, torch.Tensor]:
    """The module's state as separate contiguous CPU tensors, ready for safetensors."""
    # Cloning breaks storage sharing (tied weights), which safetensors refuses to write.
    return {name: value.detach().cpu().contiguous().clone() for name, value in model.module.state_dict().items()}


def save_model(model: Model, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` into folder ``path`` (created if needed); each file is replaced atomically."""
    folder = Path(path)
    weights = dump_safetensors(weight_tensors(model))
    spec = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "trainval_version": __version__,
        **describe(model),
        "evaluation": evaluation_settings(model),
        # Each file is replaced atomically but not both at once: the digest ties the spec to its weights.
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    try:
        write_bytes_atomically(folder / WEIGHTS_FILE, weights)
        write_bytes_atomically(folder / SPEC_FILE, (json.dumps(spec, indent=2) + "\n").encode())
    except OSError as error:
        raise ModelFileError(f"cannot save the model to {folder}: {error}. Choose a writable folder "
                             "with enough free space.") from error
    return folder


def read_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``model.json`` of a saved-model folder."""
    spec_file = Path(path) / SPEC_FILE
    try:
        spec = json.loads(spec_file.read_text())
    except FileNotFoundError:
        raise ModelFileError(f"{spec_file} is missing: {path} is not a model saved by trainval "
                             "(model.save(path) or trainval train --output)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{spec_file} is unreadable or corrupt ({error}); save the model again") from error
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ModelFileError(f"{spec_file} is not a trainval model spec")
    version = spec.get("format_version")
    if not isinstance(version, int):
        raise ModelFileError(f"{spec_file} has no valid format_version; save the model again")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} was saved by a newer trainval (format {version}); upgrade trainval")
    architecture = spec.get("architecture")
    if architecture is not None and not (isinstance(architecture, dict) and isinstance(architecture.get("name"), str)
                                         and isinstance(architecture.get("options", {}), dict)):
        raise ModelFileError(f"{spec_file} has an invalid architecture entry; save the model again")
    settings = spec.get("evaluation", {})
    if not (isinstance(settings, dict) and settings.get("tta", 0) in TTA_LEVELS
            and isinstance(settings.get("tta_fraction", 1.0), (float, int)) and 0 < settings.get("tta_fraction", 1.0) <= 1
            and isinstance(settings.get("label_smoothing", 0.0), (float, int, type(None)))):
        raise ModelFileError(f"{spec_file} has an invalid evaluation entry; save the model again")
    return spec


def load_weights(module: torch.nn.Module, path: str | os.PathLike[str], expected_sha256: str | None = None) -> None:
    """Load ``model.safetensors`` from ``path`` into ``module``; every tensor name and shape must match.

    ``expected_sha256`` (from ``model.json``) catches weights that do not belong to the spec.
    """
    weights_file = Path(path) / WEIGHTS_FILE
    try:
        data = weights_file.read_bytes()
        if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
            raise ModelFileError(f"{weights_file} is not the file {Path(path) / SPEC_FILE} was saved with "
                                 "(an interrupted save or a damaged file); save the model again")
        tensors = load_safetensors(data)
    except FileNotFoundError:
        raise ModelFileError(f"{weights_file} is missing; save the model again") from None
    except (OSError, SafetensorError, ValueError) as error:
        raise ModelFileError(f"{weights_file} is truncated or corrupt ({error}); save the model again") from error
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise ModelFileError(f"the weights in {weights_file} do not fit this architecture ({first_line}); "
                             "load them into the network they were trained with") from error
