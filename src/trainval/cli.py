"""The ``trainval`` command: a thin face over :mod:`trainval.experiment` and :mod:`trainval.bench`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from trainval import __version__, datasets, presets
from trainval.api import list_models
from trainval.atomic_files import write_bytes_atomically
from trainval.bench import BenchReport, SeedResult, compare_throughput, run_bench
from trainval.errors import ConfigError, OutputError, TrainvalError
from trainval.experiment import MONITORS, VALIDATION_MODES, TrainConfig, accuracy_line, resume_training, run_training
from trainval.training.precision import PRECISIONS

_DEFAULTS = TrainConfig()


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=presets.names(),
                        help="training recipe: " + "; ".join(f"{name}: {presets.get(name).description}".replace("%", "%%")
                                                            for name in presets.names())
                             + f" (default: {presets.DEFAULT}, or the recipe of the --model given: tutorial for seed-cnn)")
    parser.add_argument("--dataset", default=_DEFAULTS.dataset, choices=datasets.names(),
                        help="data set to train on (default: %(default)s)")
    parser.add_argument("--data-dir", default=None,
                        help="folder holding the data set files (default: $TRAINVAL_DATA, else download to ~/.cache/trainval)")
    parser.add_argument("--precision", default=_DEFAULTS.precision, choices=PRECISIONS,
                        help="auto: bf16 on GPUs and on CPUs with native bf16 (AVX-512 BF16/AMX), else fp32 "
                             "(default: %(default)s)")


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
    _add_common_options(train)
    train.add_argument("--model", help=f"architecture, one of: {', '.join(list_models())} (default: the preset's)")
    train.add_argument("--epochs", type=int, help="passes over the training data (default: the preset's)")
    train.add_argument("--batch-size", type=int,
                       help="images per training step; the learning rate scales with it (default: the preset's)")
    train.add_argument("--seed", type=int, default=_DEFAULTS.seed,
                       help="seeds initial weights, the holdout split, shuffling, augmentation and dropout "
                            "(same seed, same result on CPU; default: %(default)s)")
    train.add_argument("--validation", default=_DEFAULTS.validation, choices=VALIDATION_MODES,
                       help="holdout: validate on images held out of the training set (honest); test: on the test "
                            "set, as the Keras tutorial does (biases the test score); none: train on all training "
                            "images without validation (default: %(default)s)")
    train.add_argument("--holdout-size", type=_count_or_fraction, default=_DEFAULTS.holdout_size,
                       help="training images held out, stratified by class, with --validation holdout: a count, or "
                            "a fraction such as 0.1 (default: %(default)s)")
    train.add_argument("--learning-rate", "--lr", dest="learning_rate", type=float,
                       help="base learning rate (default: the preset's, scaled to the batch size)")
    train.add_argument("--patience", type=int,
                       help="stop after this many epochs without a better --monitor score and keep the best weights "
                            "(default: train all epochs)")
    train.add_argument("--monitor", default=_DEFAULTS.monitor, choices=MONITORS,
                       help="validation metric that picks the best model and drives --patience (default: %(default)s)")
    train.add_argument("--runs-dir", default=_DEFAULTS.runs_dir,
                       help="where run folders go: config, metrics, checkpoints, models (default: %(default)s)")
    train.add_argument("--name", help="the run folder's name (default: the date and time)")
    train.add_argument("--checkpoint-every", default=_DEFAULTS.checkpoint_every,
                       help="also checkpoint mid-epoch: a number of steps (500), a time (90s, 10m) or 'epoch' for "
                            "epoch ends only (default: %(default)s)")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue the interrupted run in RUN_DIR exactly where its last checkpoint left it, "
                            "with its own settings (only --data-dir, --verbose and --output may be given with it)")
    train.add_argument("--output", default=None, help="also save the final model in this folder (load with trainval.load_model)")
    train.add_argument("--verbose", default="auto", choices=["auto", "0", "1", "2"],
                       help="0 silent, 1 live progress bar, 2 one line per epoch; auto: 1 in a terminal, else 2")
    train.set_defaults(handler=_train, parser=train)

    bench = commands.add_parser(
        "bench", help="run a preset for several seeds and print accuracy and speed per seed, with a summary",
        description="Train a preset once per seed (0..N-1) on all training images, score the test set once per seed, "
                    "and print one row per seed and mean/std/min/max, with the machine's facts.",
    )
    _add_common_options(bench)
    bench.add_argument("--seeds", type=int, default=5, help="number of seeds to run (default: %(default)s)")
    bench.add_argument("--json", metavar="PATH", help="also write the rows, summary and machine facts to PATH as JSON")
    bench.add_argument("--compare", action="store_true",
                       help="also time the tutorial network and the preset's network for the same number of steps "
                            "and print the ratio of their training throughputs (images/s)")
    bench.add_argument("--compare-steps", type=int, default=50,
                       help="steps each network trains for in --compare (default: %(default)s)")
    bench.set_defaults(handler=_bench)
    return parser


def _count_or_fraction(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a count (5000) or a fraction (0.1); got {text!r}") from None


_RESUME_MAY_CHANGE = {"resume", "data_dir", "verbose", "output", "command", "handler", "parser"}


def _train(args: argparse.Namespace) -> int:
    verbose = args.verbose if args.verbose == "auto" else int(args.verbose)
    announce = lambda line: print(line, flush=True)  # noqa: E731
    if args.resume:
        parser = args.parser
        changed = [name for name, value in vars(args).items()
                   if name not in _RESUME_MAY_CHANGE and value != parser.get_default(name)]
        if changed:
            raise ConfigError(f"--resume continues a run with the settings it started with; drop "
                              f"{', '.join('--' + name.replace('_', '-') for name in changed)}")
        given_verbose = None if args.verbose == parser.get_default("verbose") else verbose
        result = resume_training(args.resume, data_dir=args.data_dir, verbose=given_verbose, output=args.output,
                                 announce=announce)
    else:
        config = TrainConfig(
            preset=args.preset, dataset=args.dataset, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
            learning_rate=args.learning_rate, seed=args.seed, data_dir=args.data_dir, precision=args.precision,
            validation=args.validation, holdout_size=args.holdout_size, patience=args.patience, monitor=args.monitor,
            runs_dir=args.runs_dir, name=args.name, checkpoint_every=args.checkpoint_every, output=args.output,
            verbose=verbose,
        )
        result = run_training(config, announce=announce)
    seconds = result.seconds
    print(f"Test loss: {result.test_loss:.4f}")
    print(accuracy_line(result.test_accuracy, result.test_interval, result.test_samples))
    print(f"Time: {seconds['total']:.1f}s in all (data {seconds['data']:.1f}s, training {seconds['training']:.1f}s, "
          f"test {seconds['test']:.1f}s)")
    if result.run_folder is not None:
        print(f"Run folder: {result.run_folder} (final model in {result.run_folder / 'model'})")
    if result.config.output:
        print(f"Saved the model to {result.config.output}")
    return 0


def _print_seed_row(row: SeedResult) -> None:
    print(f"{row.seed:>4}  {row.train_seconds:>8.1f}  {row.wall_seconds:>7.1f}  {row.test_accuracy * 100:>8.2f}%  "
          f"{row.images_per_second:>9.0f}", flush=True)


def _print_summary(report: BenchReport) -> None:
    summary = report.summary()
    def spread(name: str, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
        s = summary[name]
        return (f"{s['mean'] * scale:.{digits}f} ± {s['std'] * scale:.{digits}f}{unit} "
                f"(min {s['min'] * scale:.{digits}f}, max {s['max'] * scale:.{digits}f})")
    print(f"test accuracy  {spread('test_accuracy', 100, 2, '%')}")
    print(f"train seconds  {spread('train_seconds')}")
    print(f"wall seconds   {spread('wall_seconds')}")
    print(f"images/s       {spread('images_per_second', digits=0)}")


def _bench(args: argparse.Namespace) -> int:
    preset = args.preset or presets.DEFAULT
    print(f"trainval bench: preset {preset}, {args.seeds} seeds, {args.dataset}, all training images, "
          "test set scored once per seed", flush=True)
    header_printed = False

    def show(row: SeedResult) -> None:
        nonlocal header_printed
        if not header_printed:
            print("seed   train_s   wall_s  test_acc   images/s")
            header_printed = True
        _print_seed_row(row)

    # Timed first: it is short, and a mistake in its options should not cost the seeds' runs.
    compare = (compare_throughput(preset, args.compare_steps, args.data_dir, args.precision, args.dataset)
               if args.compare else None)
    report = run_bench(preset, args.seeds, data_dir=args.data_dir, precision=args.precision,
                       dataset=args.dataset, on_result=show)
    report.compare = compare
    _print_summary(report)
    print("machine: " + ", ".join(f"{key} {value}" for key, value in report.machine.items()))
    print("wall_s counts data loading, model building, training and testing in this process; "
          "interpreter start and imports come on top.")
    if compare:
        print(f"throughput over {compare['steps']} steps each: {preset} "
              f"{compare['preset_images_per_second']:.0f} images/s, tutorial seed-cnn "
              f"{compare['tutorial_images_per_second']:.0f} images/s, ratio {compare['ratio']:.2f}x")
    if args.json:
        try:
            write_bytes_atomically(args.json, (json.dumps(report.to_dict(), indent=2) + "\n").encode())
        except OSError as error:
            raise OutputError(f"cannot write {args.json}: {error}; choose a writable path") from error
        print(f"Wrote {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 runtime failure, 2 usage error, 130 interrupted)."""
    args = _build_parser().parse_args(argv)
    try:
        return args.handler(args)
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
