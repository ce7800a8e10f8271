"""Every registered architecture builds for 1- and 3-channel, 28- and 32-pixel images and trains a step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import trainval
from trainval.errors import ConfigError

SHAPES = [(28, 28, 1), (28, 28, 3), (32, 32, 1), (32, 32, 3)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: "x".join(map(str, shape)))
@pytest.mark.parametrize("name", trainval.list_models())
def test_every_model_builds_for_the_shape_and_trains_one_step(name, shape):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(8, *shape), dtype=np.uint8)
    labels = np.arange(8) % 7
    model = trainval.create_model(name, num_classes=7, input_shape=shape, seed=0)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", precision="fp32")
    before = [p.detach().clone() for p in model.module.parameters() if p.requires_grad]
    history = model.fit(images, labels, batch_size=8, epochs=1, verbose=0, seed=0)
    after = [p.detach() for p in model.module.parameters() if p.requires_grad]
    assert np.isfinite(history.history["loss"][0])
    assert any(not torch.equal(b, a) for b, a in zip(before, after)), "one step changed no weight"
    assert model.predict(images[:3], verbose=0).shape == (3, 7)


@pytest.mark.parametrize("name", trainval.list_models())
def test_describe_model_counts_parameters_and_flops_for_the_input(name):
    small = trainval.describe_model(name, num_classes=10, input_shape=(28, 28, 1))
    large = trainval.describe_model(name, num_classes=10, input_shape=(32, 32, 3))
    assert small.parameters == trainval.create_model(name, 10, (28, 28, 1)).count_params()
    assert 0 < small.flops_per_image < large.flops_per_image  # fewer pixels and channels, less compute
    assert large.description


def test_resnet18_has_the_cifar_resnet18_size_and_compute():
    described = trainval.describe_model("resnet18")
    assert described.parameters == 11_173_962  # the CIFAR ResNet-18 of the literature, 10 classes
    # 0.56 G multiply-adds per 32x32 image, counted as 2 FLOPs each.
    assert 1.10e9 < described.flops_per_image < 1.12e9


def test_seed_cnn_flops_are_twice_its_multiply_adds():
    # Conv layers: 32x32x32x(3x3x3) + 30x30x32x(3x3x32) + 15x15x64x(3x3x32) + 13x13x64x(3x3x64); dense: 2304x512 + 512x10.
    mults = (32 * 32 * 32 * 27 + 30 * 30 * 32 * 288 + 15 * 15 * 64 * 288 + 13 * 13 * 64 * 576
             + 2304 * 512 + 512 * 10)
    assert trainval.describe_model("seed-cnn").flops_per_image == 2 * mults


def test_models_refuse_images_too_small_for_them_with_a_config_error():
    with pytest.raises(ConfigError, match="at least"):
        trainval.create_model("fastnet", input_shape=(8, 8, 1))
    with pytest.raises(ConfigError, match="at least"):
        trainval.create_model("seed-cnn", input_shape=(9, 9, 3))
