"""timm's architectures as trainval models: ``timm:NAME`` is ``timm.create_model(NAME)`` for the data's
classes and channels.

timm is an optional extra (``pip install 'trainval[timm]'``), imported only when a timm model is
built or listed. The module is timm's own, so its tensors keep timm's names and timm checkpoints
load into it as they are; in front of it, as a forward pre-hook, sits the input normalisation its
pretrained weights expect (``pretrained_cfg``'s mean and std; trainval feeds images in [0, 1]).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from trainval.errors import ConfigError, ModelFileError
from trainval.models.registry import ModelEntry, register_family

PREFIX = "timm:"
INSTALL_HINT = "pip install 'trainval[timm]'"
_MEAN, _STD = "trainval_input_mean", "trainval_input_std"  # the module's buffers (not saved: they follow its name)


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def import_timm() -> Any:
    """The timm package; a ConfigError that says how to install it when it is missing or broken."""
    try:
        import timm
    except ImportError:
        raise ConfigError(f"timm models need the timm package: {INSTALL_HINT}") from None
    except (RuntimeError, AttributeError, OSError) as error:  # e.g. a torchvision built for another torch
        raise ConfigError(f"timm is installed but does not import ({_first_line(error)}); reinstall it with a "
                          f"torchvision that matches this torch ({torch.__version__}): {INSTALL_HINT}") from None
    return timm


def list_names(pattern: str = "", pretrained: bool = False) -> list[str]:
    """timm's architecture names matching the wildcard ``pattern`` (``"resnet*"``); with ``pretrained``,
    the names with a published weights tag (``resnet18.a1_in1k``) instead."""
    return list(import_timm().list_models(pattern or "", pretrained=pretrained))


def _normalise_input(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    # A function of the module's own buffers, not a closure: copies of the module (deepcopy, DDP) stay right.
    return ((args[0] - getattr(module, _MEAN)) / getattr(module, _STD), *args[1:])


def _per_channel(values: Sequence[float], channels: int) -> torch.Tensor:
    """``values`` for ``channels`` channels (their mean for each when the counts differ), shaped (1, C, 1, 1)."""
    values = list(values) if len(values) == channels else [sum(values) / len(values)] * channels
    return torch.tensor(values, dtype=torch.float32).reshape(1, channels, 1, 1)


def check_name(name: str) -> Any:
    """timm, once it is known to have the architecture ``name``; a ConfigError if it is missing or has not."""
    timm = import_timm()
    if not timm.is_model(name):
        raise ConfigError(f"timm has no architecture {name!r}; list them with: trainval models --timm '*{name}*'")
    return timm


def _checked(name: str, input_shape: Sequence[int]) -> tuple[Any, dict[str, Any]]:
    """timm, and the settings of ``timm.create_model(name, ...)`` for images of ``input_shape`` (H, W, C);
    a ConfigError for a name timm lacks."""
    timm = check_name(name)
    height, width, channels = input_shape
    config = timm.models.get_pretrained_cfg(name)
    size = {"img_size": (height, width)} if config is not None and config.fixed_input_size else {}
    return timm, {"in_chans": channels, **size}


def build(name: str, num_classes: int, input_shape: Sequence[int], **options: Any) -> nn.Module:
    """timm's ``name`` for ``num_classes`` classes and ``input_shape`` (H, W, C), randomly initialised, with
    its input normalisation in front; ``options`` go to ``timm.create_model`` (``drop_rate=0.1``)."""
    timm, settings = _checked(name, input_shape)
    try:
        module = timm.create_model(name, num_classes=num_classes, **settings, **options)
    except (TypeError, ValueError, AssertionError, RuntimeError, KeyError) as error:
        height, width, channels = input_shape
        raise ConfigError(f"timm cannot build {name} with {options or 'its default options'} for {height}x{width} "
                          f"images of {channels} channel(s) ({_first_line(error)})") from error
    channels = input_shape[2]
    config = getattr(module, "pretrained_cfg", None) or {}
    module.register_buffer(_MEAN, _per_channel(config.get("mean", (0.485, 0.456, 0.406)), channels), persistent=False)
    module.register_buffer(_STD, _per_channel(config.get("std", (0.229, 0.224, 0.225)), channels), persistent=False)
    module.register_forward_pre_hook(_normalise_input)
    return module


def published_weights(name: str, input_shape: Sequence[int], **options: Any) -> dict[str, torch.Tensor]:
    """timm's published pretrained weights of ``name`` (downloaded, or from timm's cache), adapted to
    ``input_shape``'s channels; a ModelFileError when they cannot be had (offline, no weights published)."""
    timm, settings = _checked(name, input_shape)
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # offline, each of its retries would print a warning before the one error below
    try:
        module = timm.create_model(name, pretrained=True, **settings, **options)
    except Exception as error:  # noqa: BLE001 - a download fails in many types (network, hub, disk): one line for all
        raise ModelFileError(f"could not get timm's pretrained weights for {name} ({_first_line(error)}); "
                             "without internet, download them on another machine and pass the file: "
                             "--pretrained PATH") from error
    finally:
        hub_log.setLevel(level)
    return module.state_dict()


def entry(name: str) -> ModelEntry:
    """The registry entry of ``timm:NAME``."""
    return ModelEntry(PREFIX + name, functools.partial(build, name), f"timm's {name}",
                      published_weights=functools.partial(published_weights, name))


register_family(PREFIX, entry)
