"""``torch.compile`` for a model's forward pass, with the time spent compiling measured apart.

torch compiles lazily: the first call with a new input shape or mode (training, evaluation)
traces and compiles the forward pass, and the first backward pass compiles its gradient. The
steps in which that can happen (the first of each input shape and mode) are timed, with the
device synchronised around them, and their seconds are the compile time a run reports: an upper
bound, since it includes those few steps' own computation. Every other step runs untimed and
unsynchronised.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch
from torch import nn


class CompiledModule(nn.Module):
    """``module`` run through ``torch.compile``; its parameters and buffers are ``module``'s own."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.compiled = torch.compile(module)
        self.seconds = 0.0  # spent in the steps that compiled (see the module docstring)
        self._seen: set[tuple] = set()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.compiled(inputs)

    @contextlib.contextmanager
    def timing(self, inputs: torch.Tensor) -> Iterator[None]:
        """Time the step or batch about to run on ``inputs`` if it is the first of its kind."""
        key = (tuple(inputs.shape), inputs.dtype, self.training, torch.is_grad_enabled())
        if key in self._seen:
            yield
            return
        self._seen.add(key)
        _synchronize(inputs.device)
        started = time.perf_counter()
        yield
        _synchronize(inputs.device)
        self.seconds += time.perf_counter() - started


def compile_timing(module: nn.Module, inputs: torch.Tensor) -> contextlib.AbstractContextManager:
    """:meth:`CompiledModule.timing` for a compiled module; nothing for any other."""
    return module.timing(inputs) if isinstance(module, CompiledModule) else contextlib.nullcontext()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":  # kernels run asynchronously: wait for them, or the clock reads too early
        torch.cuda.synchronize(device)
