"""The saved-model format: a folder with ``model.safetensors`` (weights) and ``model.json`` (spec).

No pickle anywhere: loading a model never runs code from the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as dump_safetensors

from trainval import models
from trainval.version import __version__
from trainval.atomic_files import write_bytes_atomically
from trainval.data.image_files import MAX_IMAGE_SIDE
from trainval.errors import ModelFileError
from trainval.training.tta import TTA_LEVELS, is_fraction

FORMAT = "trainval-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
SPEC_FILE = "model.json"
# Bounds on what a model file may ask for, checked before anything is built or read into memory.
MAX_CLASSES = 1_000_000
MAX_CHANNELS = 4
_MAX_SPEC_BYTES = 64 << 20
_MAX_HEADER_BYTES = 100 << 20  # a safetensors header (tensor names, shapes, offsets)


def weight_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's state as separate contiguous CPU tensors, ready for safetensors."""
    # Cloning breaks storage sharing (tied weights), which safetensors refuses to write.
    return {name: value.detach().cpu().contiguous().clone() for name, value in module.state_dict().items()}


def save_model(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], description: dict[str, Any],
               evaluation: dict[str, Any]) -> Path:
    """Write a model folder at ``path`` (created if needed): the ``tensors`` as ``model.safetensors``, and
    ``model.json`` with the ``description`` (architecture, classes, input shape, class names) and the
    ``evaluation`` settings (TTA level, label smoothing). Each file is replaced atomically."""
    folder = Path(path)
    weights = dump_safetensors(tensors)
    spec = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "trainval_version": __version__,
        **description,
        "evaluation": evaluation,
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
    """Read and check ``model.json`` of a saved-model folder: every field within bounds, so that
    nothing absurd is built from it."""
    spec_file = Path(path) / SPEC_FILE
    try:
        spec = json.loads(_read_regular_file(spec_file, _MAX_SPEC_BYTES))
    except FileNotFoundError:
        raise ModelFileError(f"{spec_file} is missing: {path} is not a model saved by trainval "
                             "(model.save(path) or trainval train --output)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ModelFileError(f"{spec_file} is unreadable or corrupt ({error}); save the model again") from error
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ModelFileError(f"{spec_file} is not a trainval model spec")
    version = spec.get("format_version")
    if not isinstance(version, int):
        raise ModelFileError(f"{spec_file} has no valid format_version; save the model again")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} was saved by a newer trainval (format {version}); upgrade trainval")
    problem = _spec_problem(spec)
    if problem:
        raise ModelFileError(f"{spec_file} {problem}; save the model again")
    return spec


def _spec_problem(spec: dict[str, Any]) -> str | None:
    """What is wrong with a spec's fields, or None."""
    architecture = spec.get("architecture")
    if architecture is not None:
        if not (isinstance(architecture, dict) and isinstance(architecture.get("name"), str)
                and isinstance(architecture.get("options", {}), dict)):
            return "has an invalid architecture entry"
        if not models.is_known(architecture["name"]):
            return (f"names the architecture {architecture['name']!r}, which this trainval does not know (it knows "
                    f"{', '.join(models.registered_names() + [p + 'NAME' for p in models.family_prefixes()])})")
    num_classes, input_shape, names = spec.get("num_classes"), spec.get("input_shape"), spec.get("class_names")
    if not _is_int_between(num_classes, 2, MAX_CLASSES) and not (num_classes is None and architecture is None):
        return f"has num_classes {num_classes!r}; it must be a whole number from 2 to {MAX_CLASSES:,}"
    if input_shape is not None and not (isinstance(input_shape, list) and len(input_shape) == 3
                                        and all(_is_int_between(side, 1, MAX_IMAGE_SIDE) for side in input_shape[:2])
                                        and _is_int_between(input_shape[2], 1, MAX_CHANNELS)):
        return (f"has input_shape {input_shape!r}; it must be [height, width, channels] with sides of 1 to "
                f"{MAX_IMAGE_SIDE} pixels and 1 to {MAX_CHANNELS} channels")
    if input_shape is None and architecture is not None:
        return "has no input_shape"
    if names is not None and not (isinstance(names, list) and all(isinstance(name, str) for name in names)
                                  and len(names) == num_classes):
        return f"has class_names that are not {num_classes} strings"
    settings = spec.get("evaluation", {})
    if not (isinstance(settings, dict) and settings.get("tta", 0) in TTA_LEVELS
            and is_fraction(settings.get("tta_fraction", 1.0))
            and isinstance(settings.get("label_smoothing", 0.0), (float, int, type(None)))):
        return "has an invalid evaluation entry"
    return None


def _is_int_between(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``limit`` bytes (not a device, a
    pipe or a link to one, which could never end)."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(f"{path} is not a regular file")
    if info.st_size > limit:
        raise OSError(f"{path} is {info.st_size:,} bytes, more than a model file of trainval's ever is ({limit:,})")
    return path.read_bytes()


def weight_shapes(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor in ``model.safetensors`` of ``path``, from its header alone
    (nothing else is read); a ModelFileError if the file is not an intact safetensors file."""
    weights_file = Path(path) / WEIGHTS_FILE
    try:
        info = os.stat(weights_file)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("it is not a regular file")
        with open(weights_file, "rb") as handle:
            header_size = int.from_bytes(handle.read(8), "little")
            if not 2 <= header_size <= min(_MAX_HEADER_BYTES, info.st_size - 8):
                raise ValueError("its header is truncated or of an impossible size")
            header = json.loads(handle.read(header_size))
        shapes, end = {}, 0
        for name, entry in header.items():
            if name != "__metadata__":
                shapes[name] = tuple(int(size) for size in entry["shape"])
                end = max(end, int(entry["data_offsets"][1]))
        if 8 + header_size + end != info.st_size:
            raise ValueError("its size does not match its header (truncated or padded)")
    except FileNotFoundError:
        raise ModelFileError(f"{weights_file} is missing; save the model again") from None
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError) as error:
        raise ModelFileError(f"{weights_file} is truncated or corrupt ({error}); save the model again") from error
    return shapes


def check_weights_fit(module: torch.nn.Module, path: str | os.PathLike[str]) -> None:
    """A ModelFileError unless ``model.safetensors`` of ``path`` has exactly ``module``'s tensors, by name
    and shape. ``module`` may live on the meta device: this is how a spec is checked against its
    weights before a real, possibly huge, network is built from it."""
    stored = weight_shapes(path)
    expected = {name: tuple(value.shape) for name, value in module.state_dict().items()}
    differences = [f"{name}: {stored.get(name, 'missing')} in the file, {shape} in the network"
                   for name, shape in expected.items() if stored.get(name) != shape]
    differences += [f"{name}: in the file only" for name in stored if name not in expected]
    if differences:
        raise ModelFileError(f"{Path(path) / SPEC_FILE} describes a network whose weights are not those in "
                             f"{Path(path) / WEIGHTS_FILE} ({'; '.join(differences[:3])}"
                             f"{f'; and {len(differences) - 3} more' if len(differences) > 3 else ''}); save the "
                             "model again")


def load_weights(module: torch.nn.Module, path: str | os.PathLike[str], expected_sha256: str | None = None) -> None:
    """Load ``model.safetensors`` from ``path`` into ``module``; every tensor name and shape must match.

    ``expected_sha256`` (from ``model.json``) catches weights that do not belong to the spec.
    """
    weights_file = Path(path) / WEIGHTS_FILE
    tensors = read_weights(path, expected_sha256)
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise ModelFileError(f"the weights in {weights_file} do not fit this architecture ({first_line}); "
                             "load them into the network they were trained with") from error


def read_weights(path: str | os.PathLike[str], expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors`` in the saved-model folder ``path``, checked against the
    ``expected_sha256`` of its ``model.json``; a ModelFileError if the file is missing or damaged."""
    weights_file = Path(path) / WEIGHTS_FILE
    weight_shapes(path)  # a regular file whose size its header accounts for: safe to read whole
    try:
        data = weights_file.read_bytes()
        if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
            raise ModelFileError(f"{weights_file} is not the file {Path(path) / SPEC_FILE} was saved with "
                                 "(an interrupted save or a damaged file); save the model again")
        return load_safetensors(data)
    except FileNotFoundError:
        raise ModelFileError(f"{weights_file} is missing; save the model again") from None
    except (OSError, SafetensorError, ValueError) as error:
        raise ModelFileError(f"{weights_file} is truncated or corrupt ({error}); save the model again") from error
