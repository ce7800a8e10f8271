"""Fashion-MNIST: Zalando's 60,000 training and 10,000 test grayscale images of clothing, 28x28 pixels.

A drop-in replacement for MNIST (same files, shapes and split sizes) that is harder to classify.
``load_data()`` returns uint8 images of shape (N, 28, 28, 1) and uint8 labels of shape (N, 1).
"""

from __future__ import annotations

import os

from trainval.datasets import array_cache
from trainval.datasets.mnist_style import MnistStyleSource

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")
SOURCE = MnistStyleSource(
    name="fashion-mnist", title="Fashion-MNIST",
    base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    md5={"train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
         "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
         "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
         "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310"},
    class_names=CLASS_NAMES,
)



def load_data(data_dir: str | os.PathLike[str] | None = None) -> tuple[array_cache.Split, array_cache.Split]:
    """Load Fashion-MNIST as ``(x_train, y_train), (x_test, y_test)``; see :meth:`MnistStyleSource.load_data`."""
    return SOURCE.load_data(data_dir)
