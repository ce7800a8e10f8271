"""A small fit on a CUDA GPU (``--device``), in a process of its own, for tests/test_gpu.py.

Run alone or under torchrun. It turns on torch's deterministic algorithms first (the test sets
``CUBLAS_WORKSPACE_CONFIG`` before the process starts, as cuBLAS requires), then trains a net with
BatchNorm and dropout, flips and shifts and lookahead averaging, its data on the GPU, checkpoints
every 2 steps with ``--backup``, and with ``--kill-at N`` kills itself (SIGKILL) after update N.
It writes its final weights, history and process-group backend to ``OUT``.
"""

from __future__ import annotations

import argparse
import os
import signal

import torch
from torch import nn

import trainval
from trainval import distributed
from trainval.callbacks import BackupAndRestore, Callback, Lookahead

from tiny_data import AfterSteps, tiny_images


class DeterministicNet(nn.Module):
    """Conv, BatchNorm, a mean over the image, dropout: layers whose CUDA gradients are deterministic
    (adaptive pooling's are not)."""

    def __init__(self, dropout: float = 0.2) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Dropout(dropout), nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--backup")
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True)
    distributed.setup(args.device)
    torch.manual_seed(0)
    model = trainval.Model(DeterministicNet(), num_classes=4, device=args.device)
    model.compile(optimizer=trainval.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
                  loss=trainval.losses.CategoricalCrossentropy(label_smoothing=0.1),
                  augmentation=trainval.Augmentation(flip="random", translate=2))
    callbacks: list[Callback] = [Lookahead(every=2)]
    if args.backup:
        callbacks.append(BackupAndRestore(args.backup, save_freq=2))
    if args.kill_at:
        callbacks.append(AfterSteps(args.kill_at, lambda: os.kill(os.getpid(), signal.SIGKILL)))
    images, labels = tiny_images(count=64, size=10)
    history = model.fit(images, labels, batch_size=16, epochs=3, validation_split=0.25, seed=4, verbose=0,
                        callbacks=callbacks)
    if distributed.current_world().is_main:
        torch.save({"weights": {k: v.cpu() for k, v in model.module.state_dict().items()},
                    "history": history.history, "backend": distributed.backend_name()}, args.out)
    distributed.shutdown()


if __name__ == "__main__":
    main()
