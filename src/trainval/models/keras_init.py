"""Keras's default initialisation (Glorot-uniform weights, zero biases), so ported networks train alike."""

from __future__ import annotations

from torch import nn


def apply_keras_init(module: nn.Module) -> nn.Module:
    """Re-initialise every convolution and linear layer of ``module`` the way Keras would."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module
