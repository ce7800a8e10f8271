"""Choose the device and numeric precision once, tune the GPU backends, and give the loop an autocast context."""

from __future__ import annotations

import contextlib

import torch

from trainval.errors import ConfigError

PRECISIONS = ("auto", "bf16", "fp32")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The given device, or CUDA when present, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ConfigError(f"unknown device {device!r} ({error})") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but this PyTorch sees no CUDA GPU; use 'cpu'")
    return resolved


def cpu_has_native_bf16() -> bool:
    """True when oneDNN can run bf16 natively here (AVX-512 BF16 or AMX), where bf16 trains fastest."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private check: absent from some builds
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn ``auto`` into ``bf16`` where the hardware runs it natively, else ``fp32``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to bf16 for ``precision == "bf16"``; a no-op for fp32. Weights stay fp32 either way."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def tune_backends(device: torch.device) -> None:
    """On CUDA, let cuDNN time its convolution algorithms on the first steps and keep the fastest, unless
    deterministic algorithms were asked for (timing may pick other algorithms run to run, and their
    results differ in the last bits)."""
    if device.type == "cuda" and not torch.are_deterministic_algorithms_enabled():
        torch.backends.cudnn.benchmark = True
