"""The whole state of a fit in progress, as one nested dict of plain values and tensors, and back.

A snapshot holds the weights, the optimiser, the update count, the fit's position and random
generators, and the state of every callback that has one (weight averages, best scores, logged
rows). Restoring it into a freshly built model and the same ``fit`` call continues bit for bit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from trainval.distributed import current_world, gather_to_all
from trainval.errors import CheckpointError
from trainval.callbacks.base import Callback
from trainval.training.fit_state import FitState
from trainval.training.loop import Trainer

FORMAT = "trainval-checkpoint"
FORMAT_VERSION = 1


def _stateful_callbacks(callbacks: Sequence[Callback]) -> dict[str, tuple[Callback, dict[str, Any]]]:
    """Callbacks with state and that state, keyed by their rank among those and their class: stateless
    ones (progress printing, a different verbose) may come and go between a fit and its resumption."""
    states = [(callback, callback.state_dict()) for callback in callbacks]
    stateful = [(callback, state) for callback, state in states if state is not None]
    return {f"{rank}:{type(callback).__name__}": (callback, state)
            for rank, (callback, state) in enumerate(stateful)}


def capture(module: nn.Module, trainer: Trainer, fit: FitState, callbacks: Sequence[Callback],
            description: dict[str, Any], stop_training: bool) -> dict[str, Any]:
    """Everything needed to continue the fit from this moment. Tensors are the live ones: save them at once."""
    rng = {"torch": torch.get_rng_state()}
    if fit.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(fit.device)
    fit_state = fit.state_dict()
    # In a data-parallel fit every rank calls this at once: dropout generators and epoch sums are
    # each rank's own, so every rank's go in the checkpoint (weights and everything else are shared).
    running = fit_state["running"]
    if running is not None:  # on the CPU, so no process unpickles another's GPU tensors
        running = {key: value.cpu() if isinstance(value, torch.Tensor) else value for key, value in running.items()}
    ranks = gather_to_all({"rng": rng, "running": running})
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "model": description,
        "module": module.state_dict(), "trainer": trainer.state_dict(), "fit": fit_state, "rng": rng,
        "ranks": ranks, "stop_training": stop_training,
        "callbacks": {key: state for key, (_, state) in _stateful_callbacks(callbacks).items()},
    }


def restore(state: dict[str, Any], module: nn.Module, trainer: Trainer, fit: FitState, callbacks: Sequence[Callback],
            description: dict[str, Any], source: str) -> bool:
    """Put ``state`` back into a model and fit built the same way; returns ``stop_training``.

    A CheckpointError says why the state cannot continue this fit; the fit must not go on after one.
    """
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{source} is not a trainval checkpoint")
    if not isinstance(state.get("format_version"), int) or state["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{source} was written by a newer trainval; upgrade trainval to resume from it")
    saved = state.get("model") if isinstance(state.get("model"), dict) else {}
    description = json.loads(json.dumps(description))  # as the file holds it: tuples become lists
    for key in ("architecture", "num_classes", "input_shape"):
        if saved.get(key) != description.get(key):
            raise CheckpointError(f"{source} holds a model with {key} {saved.get(key)!r}, but this model has "
                                  f"{description.get(key)!r}; resume with the model the checkpoint was trained with")
    stateful = _stateful_callbacks(callbacks)
    expected = set(stateful)
    if set(state.get("callbacks") or {}) != expected:
        raise CheckpointError(f"{source} was written with the callbacks {sorted(state.get('callbacks') or {}) or 'none with state'}, "
                              f"this fit has {sorted(expected) or 'none with state'}; pass the same callbacks to resume")
    world = current_world()
    ranks = state.get("ranks") or [{"rng": state.get("rng"), "running": (state.get("fit") or {}).get("running")}]
    if not isinstance(ranks, list) or len(ranks) != world.size:
        saved = len(ranks) if isinstance(ranks, list) else "an unknown number of"
        raise CheckpointError(f"{source} was written by {saved} training process(es) and this is {world.size}; "
                              f"resume with the same number (--nproc {saved})")
    own = ranks[world.rank]
    try:
        module.load_state_dict(state["module"], strict=True)
        trainer.load_state_dict(state["trainer"])
        fit.load_state_dict({**state["fit"], "running": own["running"]}, source)
        torch.set_rng_state(own["rng"]["torch"])
        if "cuda" in own["rng"] and fit.device.type == "cuda":
            torch.cuda.set_rng_state(own["rng"]["cuda"], fit.device)
        for key, (callback, _) in stateful.items():
            callback.load_state_dict(state["callbacks"][key])
        if not isinstance(state["stop_training"], bool):
            raise TypeError("stop_training is not true or false")
        return state["stop_training"]
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{source} does not fit this model or fit ({first_line}); resume with the model, "
                              "optimizer and callbacks the checkpoint was trained with") from error
