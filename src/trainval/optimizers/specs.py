"""SGD and Adam specs with Keras names and meanings, built into a torch optimiser for a module.

A spec also says how its learning rate changes step by step: Keras 2's time-based ``decay``
and/or a ``schedule`` over the whole run (see :mod:`trainval.optimizers.schedules`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Union

import torch
from torch import nn

from trainval.errors import ConfigError
from trainval.optimizers.muon import MuonWithSGD
from trainval.optimizers.schedules import WarmupLinearDecay


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be positive; got {value}")


def _check_momentum(name: str, value: float, nesterov: bool) -> None:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be in [0, 1); got {value}")
    if nesterov and value <= 0:
        raise ConfigError(f"Nesterov momentum needs {name} > 0")


def _check_weight_decay(name: str, value: float) -> None:
    if not value >= 0:
        raise ConfigError(f"{name} must be >= 0; got {value}")


def _parameter_groups(module: nn.Module, learning_rate: float, weight_decay: float,
                      norm_scale: float, skip: frozenset[int] = frozenset()) -> list[dict]:
    """Trainable parameters (but those whose id is in ``skip``) split into normalisation layers' and
    the rest, each with its lr and decay.

    ``norm_scale`` multiplies the normalisation parameters' learning rate and divides their weight
    decay, so both groups shrink by the same amount per step.
    """
    norm_ids = {id(p) for layer in module.modules() if isinstance(layer, nn.modules.batchnorm._NormBase)
                for p in layer.parameters(recurse=False)}
    trainable = [p for p in module.parameters() if p.requires_grad and id(p) not in skip]
    norms = [p for p in trainable if id(p) in norm_ids]
    others = [p for p in trainable if id(p) not in norm_ids]
    groups = [{"params": others, "lr": learning_rate, "weight_decay": weight_decay}]
    if norms:
        groups.append({"params": norms, "lr": learning_rate * norm_scale, "weight_decay": weight_decay / norm_scale})
    for group in groups:
        group["initial_lr"] = group["lr"]
    return groups


def _fused_on_cuda(module: nn.Module) -> dict[str, bool]:
    """``fused=True`` (one kernel per update rather than several) where every parameter is on a CUDA GPU;
    elsewhere torch's default, which the CPU's bit-exact reproducibility is measured with."""
    return {"fused": True} if all(p.is_cuda for p in module.parameters()) else {}


@dataclass(frozen=True, kw_only=True)
class _ScheduledSpec:
    decay: float = 0.0  # Keras 2 time-based decay: lr / (1 + decay * updates)
    schedule: WarmupLinearDecay | None = None  # a multiplier over the whole run, on top of decay

    def _check_schedule(self) -> None:
        if not self.decay >= 0:
            raise ConfigError(f"decay must be >= 0; got {self.decay}")

    def scaled_to_batch(self, ratio: float) -> _ScheduledSpec:
        """This spec for a batch ``ratio`` times as large: the learning rate scaled linearly, which keeps
        the average step per image the same for SGD-like updates."""
        return replace(self, learning_rate=self.learning_rate * ratio)  # type: ignore[attr-defined]

    def lr_multiplier(self, step: int, total_steps: int) -> float:
        """Factor applied to every group's initial learning rate at update ``step`` (0-based)."""
        factor = 1.0 / (1.0 + self.decay * step)
        if self.schedule is not None:
            factor *= self.schedule.multiplier(step, total_steps)
        return factor


@dataclass(frozen=True)
class SGD(_ScheduledSpec):
    """Stochastic gradient descent, as ``keras.optimizers.SGD`` (``decay`` as in Keras 2)."""

    learning_rate: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0  # L2 coefficient added to the gradient, torch-style
    norm_lr_scale: float = 1.0  # BatchNorm parameters' lr multiplier (their weight decay is divided by it)

    def create(self, module: nn.Module) -> torch.optim.Optimizer:
        """The torch optimiser over ``module``'s trainable parameters."""
        _check_positive("learning_rate", self.learning_rate)
        _check_positive("norm_lr_scale", self.norm_lr_scale)
        self._check_schedule()
        _check_momentum("momentum", self.momentum, self.nesterov)
        _check_weight_decay("weight_decay", self.weight_decay)
        groups = _parameter_groups(module, self.learning_rate, self.weight_decay, self.norm_lr_scale)
        return torch.optim.SGD(groups, lr=self.learning_rate, momentum=self.momentum, nesterov=self.nesterov,
                               **_fused_on_cuda(module))


@dataclass(frozen=True)
class Adam(_ScheduledSpec):
    """Adam, as ``keras.optimizers.Adam`` (Keras's epsilon of 1e-7)."""

    learning_rate: float = 0.001
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7

    def create(self, module: nn.Module) -> torch.optim.Optimizer:
        """The torch optimiser over ``module``'s trainable parameters."""
        _check_positive("learning_rate", self.learning_rate)
        self._check_schedule()
        for name in ("beta_1", "beta_2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1); got {getattr(self, name)}")
        _check_positive("epsilon", self.epsilon)
        groups = _parameter_groups(module, self.learning_rate, 0.0, 1.0)
        return torch.optim.Adam(groups, lr=self.learning_rate, betas=(self.beta_1, self.beta_2), eps=self.epsilon,
                                **_fused_on_cuda(module))


@dataclass(frozen=True)
class Muon(_ScheduledSpec):
    """Muon for convolution filters (trainable 4-D weights), Nesterov SGD for everything else
    (BatchNorm shifts, biases, the classifier head), in one optimiser; as ``keras.optimizers.Muon``,
    which pairs Muon with Adam instead. See :mod:`trainval.optimizers.muon`.

    >>> model.compile(optimizer=trainval.optimizers.Muon(learning_rate=0.1, momentum=0.6))  # doctest: +SKIP
    """

    learning_rate: float = 0.1  # filters: size of the orthogonalised step (relative, when renormalised)
    momentum: float = 0.6  # filters
    nesterov: bool = True  # filters
    ns_steps: int = 3  # Newton-Schulz iterations per orthogonalisation
    weight_decay: float = 0.0  # filters, decoupled: each step multiplies them by 1 - lr * weight_decay
    # Rescale each filter bank to Frobenius norm sqrt(out_channels) before its step: right only where a
    # BatchNorm follows every conv (fastnet), so that its scale does not matter.
    renormalize: bool = False
    sgd_lr_ratio: float = 7.5  # the other parameters' learning rate, as a multiple of learning_rate
    sgd_momentum: float = 0.85  # the other parameters, always Nesterov
    sgd_weight_decay: float = 0.0  # the other parameters: L2 coefficient added to the gradient, torch-style
    norm_lr_scale: float = 1.0  # BatchNorm parameters' lr multiplier (their weight decay is divided by it)

    def scaled_to_batch(self, ratio: float) -> Muon:
        """This spec for a batch ``ratio`` times as large. An orthogonalised step has a fixed size
        whatever the gradient's, and a batch's gradient noise falls with the root of its size, so the
        filters' rate scales with the root of ``ratio`` (0.24 at batch 2000 in the public speed run,
        0.12 at 512 here); the other parameters' rate scales linearly, as SGD's."""
        root = math.sqrt(ratio)
        return replace(self, learning_rate=self.learning_rate * root, sgd_lr_ratio=self.sgd_lr_ratio * root)

    def create(self, module: nn.Module) -> torch.optim.Optimizer:
        """One torch optimiser over ``module``'s trainable parameters: the filters' group first, then
        the others' (split as :class:`SGD` splits them)."""
        for name in ("learning_rate", "sgd_lr_ratio", "norm_lr_scale"):
            _check_positive(name, getattr(self, name))
        self._check_schedule()
        _check_momentum("momentum", self.momentum, self.nesterov)
        _check_momentum("sgd_momentum", self.sgd_momentum, nesterov=True)
        _check_weight_decay("weight_decay", self.weight_decay)
        _check_weight_decay("sgd_weight_decay", self.sgd_weight_decay)
        if isinstance(self.ns_steps, bool) or not isinstance(self.ns_steps, int) or not 1 <= self.ns_steps <= 10:
            raise ConfigError(f"ns_steps must be a whole number of Newton-Schulz iterations from 1 to 10; "
                              f"got {self.ns_steps!r}")
        filters = [p for p in module.parameters() if p.requires_grad and p.ndim == 4]
        groups = [{"params": filters, "lr": self.learning_rate, "initial_lr": self.learning_rate, "muon": True,
                   "momentum": self.momentum, "nesterov": self.nesterov, "weight_decay": self.weight_decay,
                   "ns_steps": self.ns_steps, "renormalize": self.renormalize}] if filters else []
        others = _parameter_groups(module, self.learning_rate * self.sgd_lr_ratio, self.sgd_weight_decay,
                                   self.norm_lr_scale, skip=frozenset(map(id, filters)))
        groups += [{**group, "momentum": self.sgd_momentum, "nesterov": True} for group in others if group["params"]]
        if not groups:
            raise ConfigError("the module has no trainable parameters for Muon to optimise")
        return MuonWithSGD(groups)


OptimizerSpec = Union[SGD, Adam, Muon]
_BY_NAME = {"sgd": SGD, "adam": Adam, "muon": Muon}


def resolve_optimizer(optimizer: str | OptimizerSpec | torch.optim.Optimizer,
                      module: nn.Module) -> tuple[torch.optim.Optimizer, OptimizerSpec | None]:
    """Turn what ``compile(optimizer=...)`` accepts into a torch optimiser and its spec (None if given ready-made).

    Accepts a name (``"sgd"``, ``"adam"``, ``"muon"``, with their defaults), a spec such as
    ``SGD(learning_rate=0.01, momentum=0.9)``, or a ready ``torch.optim.Optimizer``.
    """
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer, None
    if isinstance(optimizer, str):
        try:
            optimizer = _BY_NAME[optimizer.lower()]()
        except KeyError:
            raise ConfigError(f"unknown optimizer {optimizer!r}; use one of {sorted(_BY_NAME)}, "
                              "a trainval.optimizers spec, or a torch.optim.Optimizer") from None
    if not isinstance(optimizer, tuple(_BY_NAME.values())):
        raise ConfigError(f"optimizer must be a name, a trainval.optimizers spec or a torch.optim.Optimizer; "
                          f"got {type(optimizer).__name__}")
    return optimizer.create(module), optimizer
