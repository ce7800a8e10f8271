"""``trainval datasets`` and ``trainval models``: what there is to train on and with."""

from __future__ import annotations

import argparse

from trainval import datasets
from trainval.model_factory import describe_model, list_models
from trainval.config import DATASET_HELP, TrainConfig
from trainval.datasets import image_folder
from trainval.errors import ConfigError
from trainval.models import timm_models


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``datasets`` and ``models`` to the CLI's commands."""
    listing = commands.add_parser("datasets", help="list the data sets: classes, image shape, sizes",
                                  description="List the registered data sets, and how to use a folder of your own "
                                              "images.")
    listing.set_defaults(handler=_datasets)

    model_list = commands.add_parser(
        "models", help="list the architectures with their parameters and FLOPs per image",
        description="List the registered architectures (default options), with their parameter count and the "
                    "forward pass's FLOPs per image (a multiply-add counts 2; convolutions and matrix products) for "
                    "a data set's image shape and class count.")
    model_list.add_argument("--dataset", default=TrainConfig.dataset,
                            help="whose image shape and class count to build the models for: "
                                 + DATASET_HELP + " (default: %(default)s)")
    model_list.add_argument("--image-size", type=int, metavar="PIXELS",
                            help="folder data sets: pixels a side (default: "
                                 f"{image_folder.DEFAULT_IMAGE_SIZE})")
    model_list.add_argument("--timm", metavar="PATTERN",
                            help="instead, list timm's architectures whose names match PATTERN ('resnet*', '*' for "
                                 "all), for --model timm:NAME (needs the timm extra: pip install 'trainval[timm]')")
    model_list.add_argument("--pretrained", action="store_true",
                            help="with --timm: list the names with published pretrained weights instead "
                                 "(resnet18.a1_in1k), for --model timm:NAME --pretrained timm")
    model_list.set_defaults(handler=_models)


def _datasets(args: argparse.Namespace) -> int:
    print(f"{'name':<16} {'classes':>7}  {'images':<9} {'train':>7} {'test':>7}  description")
    for name in datasets.names():
        dataset = datasets.get(name)
        height, width, channels = dataset.image_shape
        train, test = dataset.sizes
        print(f"{name:<16} {dataset.num_classes:>7}  {f'{height}x{width}x{channels}':<9} {train:>7,} {test:>7,}  "
              f"{dataset.description}")
    print(f"{datasets.FOLDER_PREFIX + 'PATH':<16} your own images, one sub-folder per class: PATH/CLASS/*.png|jpg "
          "(--test-fraction of each class held out as the test set) or PATH/train/CLASS/ and PATH/test/CLASS/; "
          "resized to --image-size pixels a side")
    print("Files are looked for in --data-dir, else $TRAINVAL_DATA (or their NAME/ sub-folder), else downloaded to "
          "~/.cache/trainval/NAME and checked against their published MD5s.")
    return 0


def _models(args: argparse.Namespace) -> int:
    if args.timm is not None:
        return _timm_models(args.timm, args.pretrained)
    if args.pretrained:
        raise ConfigError("--pretrained lists timm's pretrained weights: give it with --timm PATTERN")
    dataset = datasets.get(args.dataset, image_size=args.image_size)
    if args.dataset.startswith(datasets.FOLDER_PREFIX):
        folder = image_folder.ImageFolder.scan(args.dataset[len(datasets.FOLDER_PREFIX):], args.image_size)
        shape = (folder.image_size, folder.image_size, folder.channels())
    else:
        shape = dataset.image_shape
    height, width, channels = shape
    print(f"For {args.dataset}: {height}x{width}x{channels} images, {dataset.num_classes} classes")
    print(f"{'name':<10} {'parameters':>11} {'MFLOPs/image':>13}  description")
    for name in list_models():
        described = describe_model(name, dataset.num_classes, shape)
        print(f"{name:<10} {described.parameters:>11,} {described.flops_per_image / 1e6:>13,.1f}  "
              f"{described.description}")
    return 0


def _timm_models(pattern: str, pretrained: bool) -> int:
    names = timm_models.list_names(pattern, pretrained)
    what = "with published pretrained weights" if pretrained else "architectures"
    print(f"timm {what} matching {pattern!r}: {len(names)} (use as --model {timm_models.PREFIX}NAME)")
    for name in names:
        print(f"{timm_models.PREFIX}{name}")
    return 0
