"""Does fine-tuning pay? CIFAR-10 split in two: pre-train on eight classes, fine-tune on the other two.

    python benchmarks/finetune.py folders --data-dir ../shared/data/cifar10 --out /work/scratch/finetune
    trainval train --dataset folder:/work/scratch/finetune/pretrain --preset 94 --epochs 4 \\
        --validation none --runs-dir /work/scratch/finetune/runs --name pretrain
    python benchmarks/finetune.py compare --folder /work/scratch/finetune/small \\
        --init-from /work/scratch/finetune/runs/pretrain --seeds 2

``folders`` writes two image folders as PNG files: ``pretrain/`` (CIFAR-10 without the held-back
classes: 40,000 training and 8,000 test images) and ``small/`` (the first ``--per-class`` training
images of each held-back class, and all 2,000 official test images of those classes as ``test/``).
``compare`` trains the same architecture on ``small/`` from scratch and from the pre-trained model,
for each seed, and prints test accuracy with its 95% interval and training time. Timings depend on
the machine and its load: compare the rows of one run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from trainval.config import TrainConfig
from trainval.datasets import FOLDER_PREFIX, cifar10
from trainval.seeds import run_seeds
from trainval.stats import format_accuracy

HELD_BACK = ("cat", "dog")


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray, prefix: str) -> int:
    """Write ``images`` as ``root/CLASS/PREFIX-INDEX.png``; returns how many."""
    for index, (image, label) in enumerate(zip(images, labels.reshape(-1))):
        folder = root / cifar10.CLASS_NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{prefix}-{index:05d}.png")
    return len(images)


def write_folders(data_dir: str | None, out: Path, held_back: tuple[str, ...], per_class: int) -> None:
    """The pre-training folder (every class but ``held_back``) and the small folder (``per_class`` training
    images of each held-back class, all their test images)."""
    (x_train, y_train), (x_test, y_test) = cifar10.load_data(data_dir)
    held = [cifar10.CLASS_NAMES.index(name) for name in held_back]
    kept_train, kept_test = ~np.isin(y_train[:, 0], held), ~np.isin(y_test[:, 0], held)
    for split, images, labels in (("train", x_train[kept_train], y_train[kept_train]),
                                  ("test", x_test[kept_test], y_test[kept_test])):
        count = write_folder(out / "pretrain" / split, images, labels, split)
        print(f"{out / 'pretrain' / split}: {count} images")
    # The first per_class training images of each held-back class, in the official order.
    small = np.concatenate([np.flatnonzero(y_train[:, 0] == label)[:per_class] for label in held])
    test = np.flatnonzero(np.isin(y_test[:, 0], held))
    for split, images, labels in (("train", x_train[small], y_train[small]), ("test", x_test[test], y_test[test])):
        count = write_folder(out / "small" / split, images, labels, split)
        print(f"{out / 'small' / split}: {count} images")


WAYS = {  # name -> the settings that differ, on top of the folder, no validation, and the seed
    "scratch-94": {"preset": "94", "model": "fastnet"},  # what `trainval train` does on the folder by default
    "scratch-finetune": {"preset": "finetune", "model": "fastnet"},  # the fine-tuning schedule, random weights
    "init-from": {},  # --init-from PRETRAINED: the finetune preset and the pre-trained architecture
}


def compare(folder: Path, init_from: str, seeds: int, runs_dir: str | None, ways: list[str]) -> None:
    """Train on ``folder`` each way for ``seeds`` seeds; print a row per run and the mean of each way."""
    print(f"{'way':<18} {'seed':>4}  {'test accuracy (95% CI)':<30} {'train s':>8} {'test s':>7}")
    for way in ways:
        settings = {**WAYS[way], **({"init_from": init_from} if way == "init-from" else {})}
        config = TrainConfig(dataset=FOLDER_PREFIX + str(folder), validation="none", verbose=0, runs_dir=runs_dir,
                             name=way if runs_dir else None, checkpoint_every="epoch", **settings)
        result = run_seeds(config, seeds, announce=lambda line: None)
        for run in result.runs:
            print(f"{way:<18} {run.seed:>4}  {format_accuracy(run.test_accuracy, run.test_interval):<30} "
                  f"{run.seconds['training']:>8.1f} {run.seconds['test']:>7.1f}", flush=True)
        accuracy = result.spread(lambda run: run.test_accuracy)
        print(f"{way:<18} mean  {accuracy['mean'] * 100:.2f}% (std {accuracy['std'] * 100:.2f})"
              f"{'':<10} {result.spread(lambda run: run.seconds['training'])['mean']:>8.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    folders = commands.add_parser("folders", help="write the pre-training and the small image folders")
    folders.add_argument("--data-dir")
    folders.add_argument("--out", type=Path, required=True)
    folders.add_argument("--per-class", type=int, default=100)
    runs = commands.add_parser("compare", help="from scratch against --init-from on the small folder")
    runs.add_argument("--folder", type=Path, required=True)
    runs.add_argument("--init-from", required=True)
    runs.add_argument("--seeds", type=int, default=2)
    runs.add_argument("--runs-dir", help="keep each way's run folders here (default: none)")
    runs.add_argument("--ways", nargs="+", default=list(WAYS), choices=list(WAYS))
    args = parser.parse_args()
    if args.command == "folders":
        write_folders(args.data_dir, args.out, HELD_BACK, args.per_class)
    else:
        compare(args.folder, args.init_from, args.seeds, args.runs_dir, args.ways)


if __name__ == "__main__":
    main()
