"""Check and convert what users pass to fit/evaluate/predict into tensors the training loop can use.

Images become NCHW tensors (uint8 kept as uint8 so a data set costs one byte a pixel; floats as
float32). Labels become int64 class indices. Anything else is refused with an ``InputError`` that
names the argument and says how to fix it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trainval.errors import InputError

_CHANNEL_COUNTS = (1, 3, 4)


def _as_numpy(value: Any, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise InputError(f"{name} must be an array of numbers ({error})") from error
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise InputError(f"{name} must be an array of numbers, not of {array.dtype}")
    return array


def _to_nchw(array: np.ndarray, name: str, input_shape: tuple[int, int, int] | None) -> np.ndarray:
    if array.ndim == 3:  # (N, H, W) grayscale, as MNIST-style data sets come
        array = array[..., None]
    if array.ndim != 4:
        raise InputError(f"{name} must hold images shaped (N, H, W, C) or (N, C, H, W); got shape {array.shape}")
    if input_shape is not None:
        height, width, channels = input_shape
        if array.shape[1:] == (height, width, channels):
            return array.transpose(0, 3, 1, 2)
        if array.shape[1:] == (channels, height, width):
            return array
        raise InputError(
            f"{name} has images of shape {array.shape[1:]}, but the model takes {height}x{width} images with "
            f"{channels} channels: pass shape (N, {height}, {width}, {channels}) or (N, {channels}, {height}, {width})"
        )
    if array.shape[-1] in _CHANNEL_COUNTS and array.shape[1] not in _CHANNEL_COUNTS:
        return array.transpose(0, 3, 1, 2)
    if array.shape[1] in _CHANNEL_COUNTS:
        return array
    raise InputError(f"{name} has shape {array.shape}: neither its last axis (channels last) nor its second "
                     f"(channels first) has 1, 3 or 4 channels")


def images_to_tensor(x: Any, name: str = "x", input_shape: tuple[int, int, int] | None = None) -> torch.Tensor:
    """Return ``x`` as an NCHW tensor: uint8 for 0..255 pixels, float32 for pixels scaled to [0, 1].

    ``x`` may be channels-last (N, H, W, C), the Keras default, channels-first (N, C, H, W), or
    (N, H, W) for one channel. ``input_shape`` (H, W, C) resolves ambiguous layouts.
    """
    array = _as_numpy(x, name)
    if array.ndim == 0 or array.shape[0] == 0:
        raise InputError(f"{name} is empty: pass at least one image")
    # Channels-last input becomes an NCHW view with channels_last strides, which is the layout the
    # convolutions want anyway, so a uint8 data set is used in place: no copy, no extra memory.
    array = _to_nchw(array, name, input_shape)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32, copy=False)
        if not np.isfinite(array).all():
            raise InputError(f"{name} contains NaN or infinite values; clean or drop those images first")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise InputError(f"{name} holds float pixels in [{low:g}, {high:g}]; pass uint8 pixels (0..255) "
                             "or floats scaled to [0, 1] (for example x.astype('float32') / 255)")
    elif array.dtype != np.uint8:
        if array.min() < 0 or array.max() > 255:
            raise InputError(f"{name} holds integer pixels outside 0..255; pass uint8 images or floats in [0, 1]")
        array = array.astype(np.uint8)
    if not array.flags.writeable or min(array.strides) < 0:
        array = np.ascontiguousarray(array)  # torch shares neither read-only nor reversed buffers
    # Shared with the caller's array: the loop hands the module copies (see to_model_input).
    return torch.from_numpy(array).contiguous(memory_format=torch.channels_last)


def labels_to_tensor(y: Any, num_classes: int, num_samples: int, name: str = "y") -> torch.Tensor:
    """Return class indices (int64, shape (N,)) from integer labels (N,) or (N, 1), or one-hot (N, classes)."""
    array = _as_numpy(y, name)
    if array.ndim == 2 and array.shape[1] == num_classes and num_classes > 1:
        array = _one_hot_to_indices(array, name)
    elif array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    elif array.ndim != 1:
        raise InputError(f"{name} must be integer labels shaped (N,) or (N, 1), or one-hot labels shaped "
                         f"(N, {num_classes}); got shape {array.shape}")
    if len(array) != num_samples:
        raise InputError(f"{name} has {len(array)} labels but there are {num_samples} images; they must match")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or not np.all(array == np.round(array)):
            raise InputError(f"{name} must hold whole-number class indices; it has fractional, NaN or infinite values")
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise InputError(f"{name} has labels in {int(array.min())}..{int(array.max())}, but the model has "
                         f"{num_classes} classes (labels 0..{num_classes - 1})")
    return torch.from_numpy(array.astype(np.int64))


def _one_hot_to_indices(array: np.ndarray, name: str) -> np.ndarray:
    values = array.astype(np.float64)
    if not (np.isin(values, (0.0, 1.0)).all() and (values.sum(axis=1) == 1).all()):
        raise InputError(f"{name} looks one-hot (shape {array.shape}) but some rows are not a single 1 among 0s")
    return values.argmax(axis=1)
