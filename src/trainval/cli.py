"""The ``trainval`` command: a thin face over :mod:`trainval.experiment` and the API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trainval import __version__, datasets
from trainval.api import list_models
from trainval.errors import ConfigError, TrainvalError
from trainval.experiment import VALIDATION_MODES, TrainConfig, accuracy_line, run_training
from trainval.training.precision import PRECISIONS

_DEFAULTS = TrainConfig()


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trainval",
        description="Train and validate image classifiers: Keras's workflow, fast on a CPU, faster on a GPU.",
    )
    parser.add_argument("--version", action="version", version=f"trainval {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train a model, validate it each epoch, score it once on the test set",
        description="Train a model on a data set, validate after every epoch, then score the test set once and "
                    "print its accuracy with a 95% confidence interval.",
    )
    train.add_argument("--dataset", default=_DEFAULTS.dataset, choices=datasets.names(), help="data set to train on (default: %(default)s)")
    train.add_argument("--model", default=_DEFAULTS.model, help=f"architecture, one of: {', '.join(list_models())} (default: %(default)s)")
    train.add_argument("--epochs", type=int, default=_DEFAULTS.epochs, help="passes over the training data (default: %(default)s)")
    train.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size, help="images per training step (default: %(default)s)")
    train.add_argument("--seed", type=int, default=_DEFAULTS.seed,
                       help="seeds initial weights, the holdout split, shuffling and dropout (same seed, same result on CPU; default: %(default)s)")
    train.add_argument("--data-dir", default=None,
                       help="folder holding the data set files (default: $TRAINVAL_DATA, else download to ~/.cache/trainval)")
    train.add_argument("--precision", default=_DEFAULTS.precision, choices=PRECISIONS,
                       help="auto: bf16 on GPUs and on CPUs with native bf16 (AVX-512 BF16/AMX), else fp32 (default: %(default)s)")
    train.add_argument("--validation", default=_DEFAULTS.validation, choices=VALIDATION_MODES,
                       help="holdout: validate on images held out of the training set (honest); test: on the test "
                            "set, as the Keras tutorial does (biases the test score); none: no validation (default: %(default)s)")
    train.add_argument("--holdout-size", type=int, default=_DEFAULTS.holdout_size,
                       help="training images held out, stratified by class, with --validation holdout (default: %(default)s)")
    train.add_argument("--output", default=None, help="folder to save the trained model in (load with trainval.load_model)")
    train.add_argument("--verbose", default="auto", choices=["auto", "0", "1", "2"],
                       help="0 silent, 1 live progress bar, 2 one line per epoch; auto: 1 in a terminal, else 2")
    return parser


def _train(args: argparse.Namespace) -> int:
    config = TrainConfig(
        dataset=args.dataset, model=args.model, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        data_dir=args.data_dir, precision=args.precision, validation=args.validation,
        holdout_size=args.holdout_size, output=args.output,
        verbose=args.verbose if args.verbose == "auto" else int(args.verbose),
    )
    result = run_training(config, announce=lambda line: print(line, flush=True))
    seconds = result.seconds
    print(f"Test loss: {result.test_loss:.4f}")
    print(accuracy_line(result.test_accuracy, result.test_interval, result.test_samples))
    print(f"Time: {seconds['total']:.1f}s in all (data {seconds['data']:.1f}s, training {seconds['training']:.1f}s, "
          f"test {seconds['test']:.1f}s)")
    if config.output:
        print(f"Saved the model to {config.output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 runtime failure, 2 usage error, 130 interrupted)."""
    args = _build_parser().parse_args(argv)
    try:
        return _train(args)
    except ConfigError as error:
        print(f"trainval: error: {error}", file=sys.stderr)
        return 2
    except TrainvalError as error:
        print(f"trainval: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("trainval: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
