"""MNIST: 60,000 training and 10,000 test grayscale images of handwritten digits, 28x28 pixels.

``load_data()`` returns the official files' arrays with a channel axis: uint8 images of shape
(N, 28, 28, 1) and uint8 labels of shape (N, 1), as CIFAR-10's ``load_data`` does.
"""

from __future__ import annotations

import os

from trainval.datasets import array_cache
from trainval.datasets.mnist_style import MnistStyleSource

CLASS_NAMES = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
SOURCE = MnistStyleSource(
    name="mnist", title="MNIST",
    # The PyTorch project's mirror of Yann LeCun's files, which no longer serves them reliably.
    base_url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    md5={"train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
         "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
         "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
         "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c"},
    class_names=CLASS_NAMES,
)



def load_data(data_dir: str | os.PathLike[str] | None = None) -> tuple[array_cache.Split, array_cache.Split]:
    """Load MNIST as ``(x_train, y_train), (x_test, y_test)``; see :meth:`MnistStyleSource.load_data`."""
    return SOURCE.load_data(data_dir)
