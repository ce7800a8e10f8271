"""One file for a nested state of plain values and tensors: safetensors, with the rest as JSON inside.

Tensors go into the safetensors body; everything else (numbers, strings, lists, dicts, including
dicts keyed by integers, as torch optimisers use) goes into its JSON metadata with placeholders
for the tensors. Loading never runs code from the file, and a SHA-256 over the JSON and every
tensor's bytes turns any truncation or flipped bit into a clear error.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as dump_safetensors

from trainval.atomic_files import write_bytes_atomically
from trainval.errors import CheckpointError

_TENSOR = "__tensor__"  # {"__tensor__": "t3"} stands for tensor t3
_ITEMS = "__items__"  # {"__items__": [[key, value], ...]} is a dict whose keys are not all strings
_STATE_KEY, _DIGEST_KEY = "trainval_state", "sha256"
_HEADER_SIZE_BYTES = 8


def _flatten(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        name = f"t{len(tensors)}"
        # A private contiguous CPU copy: safetensors refuses shared storage, and the live tensor may change.
        tensors[name] = value.detach().to("cpu", copy=True).contiguous()
        return {_TENSOR: name}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {key: _flatten(item, tensors) for key, item in value.items()}
        return {_ITEMS: [[key, _flatten(item, tensors)] for key, item in value.items()]}
    if isinstance(value, (list, tuple)):
        return [_flatten(item, tensors) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):  # a NumPy scalar, e.g. a metric a callback logged
        return value.item()
    raise TypeError(f"cannot save a {type(value).__name__} in a state file")


def _unflatten(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if set(value) == {_TENSOR}:
            return tensors[value[_TENSOR]]
        if set(value) == {_ITEMS}:
            return {key: _unflatten(item, tensors) for key, item in value[_ITEMS]}
        return {key: _unflatten(item, tensors) for key, item in value.items()}
    if isinstance(value, list):
        return [_unflatten(item, tensors) for item in value]
    return value


def _digest(state_json: str, tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256(state_json.encode())
    for name in sorted(tensors, key=lambda name: int(name[1:])):
        tensor = tensors[name]
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def dump_state(state: dict[str, Any]) -> bytes:
    """The file's bytes for ``state`` (a dict of plain values, tensors, and lists and dicts of them)."""
    tensors: dict[str, torch.Tensor] = {}
    state_json = json.dumps(_flatten(state, tensors))
    return dump_safetensors(tensors, metadata={_STATE_KEY: state_json, _DIGEST_KEY: _digest(state_json, tensors)})


def write_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Replace ``path`` with ``state`` atomically; an OSError (full disk, no permission) leaves the old file."""
    write_bytes_atomically(path, dump_state(state))


def parse_state(data: bytes, source: str) -> dict[str, Any]:
    """The state stored in ``data``; a CheckpointError naming ``source`` if it is not an intact state file."""
    try:
        header_size = int.from_bytes(data[:_HEADER_SIZE_BYTES], "little")
        if len(data) < _HEADER_SIZE_BYTES or header_size > len(data) - _HEADER_SIZE_BYTES:
            raise ValueError("the file ends early")
        header = json.loads(data[_HEADER_SIZE_BYTES:_HEADER_SIZE_BYTES + header_size])
        metadata = header.get("__metadata__") or {}
        state_json, expected_digest = metadata[_STATE_KEY], metadata[_DIGEST_KEY]
        tensors = load_safetensors(data)
        if not isinstance(state_json, str) or _digest(state_json, tensors) != expected_digest:
            raise ValueError("its checksum does not match its contents")
        state = _unflatten(json.loads(state_json), tensors)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError, RecursionError,
            SafetensorError) as error:
        raise CheckpointError(f"{source} is truncated or corrupt ({type(error).__name__}: {error}); resume from "
                              "another checkpoint or start the run again") from error
    if not isinstance(state, dict):
        raise CheckpointError(f"{source} does not hold a training state")
    return state


def read_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a file written by :func:`write_state`; a CheckpointError if it is missing, truncated or corrupt."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist; check the path") from None
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error}") from error
    return parse_state(data, str(path))
