"""The Keras CIFAR-10 tutorial's network, layer for layer (1,250,858 parameters for 32x32x3 input)."""

from __future__ import annotations

from torch import nn

from trainval.errors import ConfigError
from trainval.models.keras_init import apply_keras_init
from trainval.models.registry import register_model
from trainval.optimizers import SGD


def _conv_block(in_channels: int, out_channels: int) -> list[nn.Module]:
    # Keras: Conv2D(padding="same"), ReLU, Conv2D(padding="valid"), ReLU, MaxPool 2, Dropout 0.25.
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3), nn.ReLU(inplace=True),
        nn.MaxPool2d(2), nn.Dropout(0.25),
    ]


@register_model(
    "seed-cnn",
    description="the Keras CIFAR-10 tutorial's CNN: 4 convolutions, 2 dense layers, dropout",
    # The tutorial's optimiser: SGD, lr 0.01, Nesterov momentum 0.9, Keras decay 1e-6 per step.
    default_optimizer=SGD(learning_rate=0.01, momentum=0.9, nesterov=True, decay=1e-6),
)
def seed_cnn(num_classes: int = 10, input_shape: tuple[int, int, int] = (32, 32, 3)) -> nn.Module:
    """Build the tutorial CNN; it returns logits (the softmax lives in predict and the loss)."""
    height, width, channels = input_shape
    # Each block: a 'same' conv keeps the size, a 'valid' conv trims 2 pixels, pooling halves it.
    for _ in range(2):
        height, width = (height - 2) // 2, (width - 2) // 2
    if height < 1 or width < 1:
        raise ConfigError(f"seed-cnn needs images of at least 10x10 pixels; got {input_shape[0]}x{input_shape[1]}")
    network = nn.Sequential(
        *_conv_block(channels, 32),
        *_conv_block(32, 64),
        nn.Flatten(),
        nn.Linear(64 * height * width, 512), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(512, num_classes),
    )
    return apply_keras_init(network)
