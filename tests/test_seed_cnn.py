"""The tutorial network is the tutorial's: layers, parameter count, Keras initialisation, optimiser."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import trainval
from trainval.errors import ConfigError
from trainval.models import get_entry
from trainval.optimizers import SGD


def test_seed_cnn_has_the_tutorials_1_250_858_parameters():
    assert trainval.create_model("seed-cnn").count_params() == 1_250_858


def test_seed_cnn_is_listed():
    assert "seed-cnn" in trainval.list_models()


def test_seed_cnn_layers_follow_the_tutorial():
    module = trainval.create_model("seed-cnn", device="cpu").module
    kinds = [type(layer).__name__ for layer in module]
    assert kinds == ["Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d", "Dropout",
                     "Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d", "Dropout",
                     "Flatten", "Linear", "ReLU", "Dropout", "Linear"]
    convs = [layer for layer in module if isinstance(layer, nn.Conv2d)]
    assert [c.padding for c in convs] == [(1, 1), (0, 0), (1, 1), (0, 0)]
    assert [d.p for d in module if isinstance(d, nn.Dropout)] == [0.25, 0.25, 0.5]


def test_seed_cnn_uses_keras_glorot_uniform_weights_and_zero_biases():
    module = trainval.create_model("seed-cnn", seed=0, device="cpu").module
    for layer in module:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            receptive = layer.weight[0, 0].numel()
            bound = math.sqrt(6 / ((layer.weight.shape[0] + layer.weight.shape[1]) * receptive))
            assert layer.weight.abs().max() <= bound
            assert layer.weight.abs().max() > 0.9 * bound
            assert torch.count_nonzero(layer.bias) == 0


def test_seed_cnn_defaults_to_the_tutorials_optimiser():
    assert get_entry("seed-cnn").default_optimizer == SGD(learning_rate=0.01, momentum=0.9, nesterov=True, decay=1e-6)


def test_seed_cnn_adapts_to_channels_size_and_classes():
    model = trainval.create_model("seed-cnn", num_classes=100, input_shape=(28, 28, 1), device="cpu")
    assert model.module(torch.zeros(2, 1, 28, 28)).shape == (2, 100)


def test_seed_cnn_refuses_images_too_small():
    with pytest.raises(ConfigError, match="at least 10x10"):
        trainval.create_model("seed-cnn", input_shape=(8, 8, 3))


def test_create_model_seed_fixes_initial_weights_without_touching_global_rng():
    state = torch.get_rng_state()
    first = trainval.create_model("seed-cnn", seed=5).module.state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    second = trainval.create_model("seed-cnn", seed=5).module.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_unseeded_models_differ():
    first = trainval.create_model("seed-cnn").module.state_dict()
    second = trainval.create_model("seed-cnn").module.state_dict()
    assert not torch.equal(first["0.weight"], second["0.weight"])
