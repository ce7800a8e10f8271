"""Ablation of a preset: remove one technique at a time and measure test accuracy and training time.

    python benchmarks/ablation.py --preset quick --seeds 2 --data-dir ../shared/data/cifar10

Prints one row per variant (mean over seeds 0..N-1, all training images, test set scored once
per run). Figures depend on the machine: compare rows of one run, not across runs.
"""

from __future__ import annotations

import argparse
import dataclasses

from trainval import presets
from trainval.data.augment import Augmentation
from trainval.config import TrainConfig
from trainval.optimizers import Muon
from trainval.presets import Preset, speedrun_sgd
from trainval.seeds import run_seeds


def variants(base: Preset, precision: str) -> dict[str, tuple[Preset, str]]:
    """The base preset and, for each technique it uses, the preset without it, each with its precision."""
    replace = dataclasses.replace
    augmentation = base.augmentation or Augmentation(flip="none", translate=0)
    options = base.model_options
    found = {
        "full recipe": base,
        "no label smoothing": replace(base, label_smoothing=0.0),
        "random flip (not alternating)": replace(base, augmentation=replace(augmentation, flip="random")),
        "no flip": replace(base, augmentation=replace(augmentation, flip="none")),
        "no translate": replace(base, augmentation=replace(augmentation, translate=0)),
        "no test-time augmentation": replace(base, tta=0),
        "lookahead on" if not base.lookahead else "no lookahead": replace(base, lookahead=not base.lookahead),
        "BatchNorm lr not scaled": replace(base, optimizer=replace(base.optimizer, norm_lr_scale=1.0)),
        "no warm-up/decay schedule": replace(base, optimizer=replace(base.optimizer, schedule=None)),
    }
    if isinstance(base.optimizer, Muon):  # the SGD recipe that 94 used before Muon, for the same epochs
        found["SGD instead of Muon"] = replace(base, optimizer=speedrun_sgd(base.batch_size, lr_per_1024=1.5,
                                                                            weight_decay=1.33e-3))
    if augmentation.crop_epochs:
        found["no progressive resizing"] = replace(base, augmentation=replace(augmentation, crop=0.0, crop_epochs=0))
    if base.tta and base.tta_fraction < 1:
        found["TTA on every image (not selective)"] = replace(base, tta_fraction=1.0)
    if base.model == "fastnet":
        found["no whitening (trainable random stem)"] = replace(base, model_options={**options, "whitening": False})
        found["no identity init"] = replace(base, model_options={**options, "identity_init": False})
    runs = {name: (preset, precision) for name, preset in found.items()}
    runs["fp32 instead of bf16"] = (base, "fp32")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--data-dir")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--only", nargs="*", help="run only the variants whose names contain one of these words")
    args = parser.parse_args()
    print(f"ablation of preset {args.preset}, {args.seeds} seeds per row")
    print(f"{'variant':<40} {'test acc %':>10} {'train s':>8} {'test s':>7}")
    for name, (preset, precision) in variants(presets.get(args.preset), args.precision).items():
        if args.only and not any(word in name for word in args.only):
            continue
        runs = run_seeds(TrainConfig(preset=preset, seed=0, data_dir=args.data_dir, precision=precision,
                                     validation="none", verbose=0, runs_dir=None), args.seeds, announce=lambda line: None)
        accuracy = runs.spread(lambda run: run.test_accuracy)["mean"] * 100
        seconds = runs.spread(lambda run: run.seconds["training"])["mean"]
        test_seconds = runs.spread(lambda run: run.seconds["test"])["mean"]
        print(f"{name:<40} {accuracy:>10.2f} {seconds:>8.1f} {test_seconds:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
