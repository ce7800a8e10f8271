"""Starting a network from another's weights: every tensor but the head's, matched by name and shape.

The weights come from a model trainval saved (a run folder or a ``Model.save`` folder), from a
weights file (safetensors, or a PyTorch or timm checkpoint read with ``torch.load(weights_only=True)``,
never a full pickle, which could run code), or from a library's published weights. The head (the
tensors whose shape follows the number of classes) stays freshly initialised for the new classes;
everything else must fit exactly, or nothing is loaded and one line lists what does not fit.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file as load_safetensors_file
from torch import nn

from trainval import saving
from trainval.errors import ModelFileError

# Keys under which training scripts (timm's among them) keep the weights inside a checkpoint dict.
_CHECKPOINT_KEYS = ("state_dict", "model", "model_state_dict", "module")
_DATA_PARALLEL_PREFIX = "module."  # torch's DistributedDataParallel prefixes every name with it
_OPTIONAL_TENSORS = ("num_batches_tracked",)  # BatchNorm's step counter, absent from old checkpoints
_SHOWN = 3  # mismatched tensors named in an error; the rest are counted


@dataclass(frozen=True)
class WeightSource:
    """Tensors to start a network from, and what is known of where they come from."""

    tensors: dict[str, torch.Tensor]
    name: str  # where they come from, for messages
    architecture: dict[str, Any] | None = None  # a trainval model's architecture entry (name, options)
    channels: int | None = None  # colour channels of the images they were trained on, when known


def saved_model_source(folder: str | os.PathLike[str]) -> WeightSource:
    """The weights of the model trainval saved in ``folder`` (checked against its spec)."""
    spec = saving.read_spec(folder)
    input_shape = spec.get("input_shape") or [None, None, None]
    return WeightSource(saving.read_weights(folder, spec.get("weights_sha256")), str(folder),
                        spec.get("architecture"), input_shape[2])


def read_weight_file(path: str | os.PathLike[str]) -> WeightSource:
    """The tensors of a weights file: safetensors, or a ``torch.save``-d state dict or checkpoint dict
    (timm's included), read with ``weights_only=True``; a ModelFileError says why a file cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"the weights file {path} {'is not a file' if path.exists() else 'does not exist'}; "
                             "pass a .safetensors or .pth file, or a trainval run or model folder")
    try:
        if path.suffix == ".safetensors":
            tensors: Any = load_safetensors_file(path)
        else:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ModelFileError(f"{path} is a pickle that holds more than weights (objects whose loading runs code), and "
                             "trainval loads weights only, never code: save model.state_dict() with torch.save, or "
                             "a .safetensors file") from error
    except Exception as error:  # noqa: BLE001 - on an untrusted file, any failure of the reader means a bad file
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise ModelFileError(f"{path} is not a weights file trainval can read ({type(error).__name__}: {first_line}); "
                             "pass a .safetensors file or a state dict saved with torch.save(model.state_dict(), "
                             "path)") from error
    return WeightSource(_state_dict_in(tensors, path), str(path))


def _state_dict_in(content: Any, path: Path) -> dict[str, torch.Tensor]:
    """The name -> tensor dict a loaded file holds, unwrapped from a checkpoint dict and from
    DistributedDataParallel's name prefix."""
    for key in _CHECKPOINT_KEYS:
        if isinstance(content, dict) and isinstance(content.get(key), dict):
            content = content[key]
            break
    if not isinstance(content, dict) or not content or \
            not all(isinstance(name, str) and isinstance(value, torch.Tensor) for name, value in content.items()):
        raise ModelFileError(f"{path} holds no dict of named tensors (a state dict); save model.state_dict()")
    if all(name.startswith(_DATA_PARALLEL_PREFIX) for name in content):
        content = {name[len(_DATA_PARALLEL_PREFIX):]: value for name, value in content.items()}
    return content


def head_names(module: nn.Module, rebuild: Callable[[int], nn.Module], num_classes: int) -> tuple[str, ...]:
    """The names of ``module``'s head tensors: its classifier's when it says which (timm's
    ``get_classifier``), else those whose shape changes when ``rebuild(classes)`` makes the same
    network for one class more (built on the meta device, so nothing is allocated)."""
    get_classifier = getattr(module, "get_classifier", None)
    if callable(get_classifier):
        found = get_classifier()
        classifiers = found if isinstance(found, (tuple, list)) else (found,)
        prefixes = [name for name, part in module.named_modules() if any(part is c for c in classifiers)]
        return tuple(name for name in module.state_dict() if any(name.startswith(p + ".") for p in prefixes))
    with torch.device("meta"):
        other = rebuild(num_classes + 1).state_dict()
    return tuple(name for name, value in module.state_dict().items()
                 if name not in other or other[name].shape != value.shape)


def load_body(module: nn.Module, source: WeightSource, head: Collection[str], network: str,
              channels: int | None = None) -> None:
    """Load every tensor of ``module`` but those named in ``head`` from ``source``, by name and shape.

    Nothing is loaded unless everything fits; the ModelFileError names what does not (``network``
    describes ``module``, ``channels`` the images it is for) and the likely reason.
    """
    target = module.state_dict()
    problems = []
    for name, value in target.items():
        if name in head:
            continue
        found = source.tensors.get(name)
        if found is None:
            if not name.endswith(_OPTIONAL_TENSORS):
                problems.append(f"{name} missing there")
        elif found.shape != value.shape:
            problems.append(f"{name} {tuple(found.shape)} there, {tuple(value.shape)} here")
    problems += [f"{name} there only" for name in source.tensors if name not in target]
    if problems:
        more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        raise ModelFileError(f"the weights in {source.name} do not fit {network} ({len(problems)} tensors: "
                             f"{'; '.join(problems[:_SHOWN])}{more}): {_likely_reason(source, channels)}")
    body = {name: source.tensors[name] for name in target if name not in head and name in source.tensors}
    module.load_state_dict(body, strict=False)


def _likely_reason(source: WeightSource, channels: int | None) -> str:
    if source.channels is not None and channels is not None and source.channels != channels:
        return (f"they were trained on {source.channels}-channel images and these have {channels}; start from a "
                f"model trained on {channels}-channel images")
    if source.architecture:
        options = source.architecture.get("options") or {}
        return (f"the architecture or its options differ; they are a {source.architecture['name']}"
                f"{f' with {options}' if options else ''}: build that")
    return "the architecture or its widths differ; build the architecture the weights were trained for"
