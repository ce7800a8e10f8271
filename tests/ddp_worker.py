"""One process of a data-parallel test fit; run with ``python -m torch.distributed.run`` (or alone).

Trains a tiny network on tiny images whose first pixel encodes their sample number, records which
samples this process trained on in each epoch, and saves its final weights and that record to
``OUT/rank<k>.pt``. Options make it crash at a step, back up to a folder, or write run folders.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

import trainval
from trainval import distributed
from trainval.callbacks import BackupAndRestore
from trainval.callbacks.base import Callback


class RecordingNet(nn.Module):
    """Conv, optional BatchNorm and dropout, linear head; in training it records the sample numbers it sees."""

    def __init__(self, norm: bool, dropout: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 6, 3, padding=1)]
        layers += [nn.BatchNorm2d(6)] if norm else []
        layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()]
        layers += [nn.Dropout(0.3)] if dropout else []
        self.body = nn.Sequential(*layers, nn.Linear(24, 3))
        self.seen: list[list[int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            codes = torch.round(x[:, :2, 0, 0] * 255).long()
            self.seen[-1].extend((codes[:, 0] * 256 + codes[:, 1]).tolist())
        return self.body(x)


class MarkEpochs(Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.model.module.seen.append([])


class CrashAt(Callback):
    """Raise after the given update on the given process, or on every process alike (a simulated kill)."""

    def __init__(self, step: int, rank: int | None) -> None:
        super().__init__()
        self.step, self.rank, self.done = step, rank, 0

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done == self.step and self.rank in (None, distributed.current_world().rank):
            raise SystemExit(3)


def numbered_images(count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(count, 8, 8, 3), dtype=np.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = np.arange(count) // 256, np.arange(count) % 256
    return images, np.arange(count) % 3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--samples", type=int, default=29)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--norm", action="store_true")
    parser.add_argument("--dropout", action="store_true")
    parser.add_argument("--backup")
    parser.add_argument("--crash-at", type=int)
    parser.add_argument("--crash-rank", type=int, help="crash on this process only (default: on every one)")
    parser.add_argument("--class-weight", help="'balanced' weighs the loss of each class")
    parser.add_argument("--mix", action="store_true", help="MixUp and CutMix the batches")
    parser.add_argument("--muon", action="store_true", help="Muon for the conv filters instead of SGD for all")
    args = parser.parse_args()
    world = distributed.setup()
    out = Path(args.out)
    torch.manual_seed(0)
    model = trainval.Model(RecordingNet(args.norm, args.dropout), num_classes=3, input_shape=(8, 8, 3))
    optimizer = (trainval.optimizers.Muon(learning_rate=0.05, sgd_lr_ratio=2.0) if args.muon
                 else trainval.optimizers.SGD(learning_rate=0.1, momentum=0.9))
    model.compile(optimizer=optimizer, precision="fp32", loss="sparse_categorical_crossentropy",
                  augmentation=trainval.Augmentation(flip="none", translate=0, mixup=0.4, cutmix=1.0) if args.mix
                  else None)
    images, labels = numbered_images(args.samples)
    callbacks: list[Callback] = [MarkEpochs()]
    if args.backup:
        callbacks.append(BackupAndRestore(args.backup, save_freq=2))
    if args.crash_at:
        callbacks.append(CrashAt(args.crash_at, args.crash_rank))
    history = model.fit(images, labels, batch_size=args.batch_size, epochs=args.epochs, verbose=0, seed=5,
                        callbacks=callbacks, validation_data=numbered_images(7), class_weight=args.class_weight)
    torch.save({"weights": model.module.state_dict(), "seen": model.module.seen, "history": history.history,
                "world_size": world.size}, out / f"rank{world.rank}.pt")
    distributed.shutdown()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
