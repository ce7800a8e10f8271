"""The ``trainval`` command: a thin face over :mod:`trainval.experiment` and :mod:`trainval.bench`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from trainval import __version__, datasets, distributed, presets
from trainval.api import describe_model, list_models, load_model
from trainval.atomic_files import write_bytes_atomically
from trainval.bench import BenchReport, compare_throughput, run_bench
from trainval.config import MONITORS, VALIDATION_MODES, TrainConfig
from trainval.datasets import image_folder
from trainval.errors import ConfigError, ExportError, OutputError, TrainvalError
from trainval.evaluation import SPLITS, evaluate_saved_model, remake_report
from trainval.experiment import resume_training, run_training
from trainval.export import FORMATS, check_onnx, export_model
from trainval.prediction import predict_image_files
from trainval.reports.text_tables import class_table, confusion_table
from trainval.runs.run_folder import RunFolder
from trainval.seeds import SUMMARY_FILE, SeedRun, SeedsResult, resume_seeds, run_seeds
from trainval.stats import accuracy_line, format_accuracy, format_spread
from trainval.training.data_parallel import check_sync_batchnorm
from trainval.training.precision import PRECISIONS

_DEFAULTS = TrainConfig()
_DATASET_HELP = (f"data set: {', '.join(datasets.names())}, or {datasets.FOLDER_PREFIX}PATH for a folder with one "
                 "sub-folder of images per class (see trainval datasets)")


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=presets.names(),
                        help="training recipe: " + "; ".join(f"{name}: {presets.get(name).description}".replace("%", "%%")
                                                            for name in presets.names())
                             + f" (default: {presets.DEFAULT}, or the recipe of the --model given: tutorial for seed-cnn)")
    parser.add_argument("--dataset", default=_DEFAULTS.dataset, help=_DATASET_HELP + " (default: %(default)s)")
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
    train.add_argument("--image-size", type=int, metavar="PIXELS",
                       help=f"folder data sets: images are cropped to a square and resized to this many pixels a side "
                            f"(default: {image_folder.DEFAULT_IMAGE_SIZE})")
    train.add_argument("--test-fraction", type=float, metavar="FRACTION",
                       help="folder data sets without train/ and test/ sub-folders: the share of each class's images "
                            f"held out as the test set (default: {image_folder.DEFAULT_TEST_FRACTION})")
    train.add_argument("--seeds", type=int, metavar="N",
                       help="train N runs with seeds --seed .. --seed+N-1, each in RUN/seed-K/, and print the mean, "
                            "std, min and max of their test accuracy and time (also in RUN/summary.json)")
    train.add_argument("--validation", default=_DEFAULTS.validation, choices=VALIDATION_MODES,
                       help="holdout: validate on images held out of the training set (honest); test: on the test "
                            "set, as the Keras tutorial does (biases the test score); none: train on all training "
                            "images without validation (default: %(default)s)")
    train.add_argument("--holdout-size", type=_count_or_fraction, default=_DEFAULTS.holdout_size,
                       help="training images held out, stratified by class, with --validation holdout: a fraction "
                            "(at least one image of every class each way) or a count such as 5000 (default: "
                            "%(default)s, which is 5,000 of CIFAR-10's 50,000)")
    train.add_argument("--learning-rate", "--lr", dest="learning_rate", type=float,
                       help="base learning rate (default: the preset's, scaled to the batch size)")
    train.add_argument("--patience", type=int,
                       help="stop after this many epochs without a better --monitor score and keep the best weights "
                            "(default: train all epochs)")
    train.add_argument("--monitor", default=_DEFAULTS.monitor, choices=MONITORS,
                       help="metric that picks the best model and drives --patience (default: val_acc)")
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
    train.add_argument("--nproc", type=int, metavar="N",
                       help="train data-parallel in N processes on this machine, launched through torchrun (one "
                            "per GPU; on CPUs they share the cores). --batch-size stays the global batch. For "
                            "several machines run torchrun yourself: see docs/distributed.md")
    train.add_argument("--sync-bn", action="store_true",
                       help="in data-parallel training on GPUs, compute BatchNorm statistics over the global batch "
                            "(PyTorch's SyncBatchNorm) instead of each process's share")
    train.add_argument("--verbose", default="auto", choices=["auto", "0", "1", "2"],
                       help="0 silent, 1 live progress bar, 2 one line per epoch; auto: 1 in a terminal, else 2")
    train.set_defaults(handler=_train, parser=train)

    predict = commands.add_parser(
        "predict", help="predict the classes of image files (PNG, JPEG, ...) with a trained model",
        description="Print the most probable classes of each image file. Images are converted and resized to the "
                    "model's input as described in the output; unreadable files are reported one per line and the "
                    "others still predicted (exit status 1 if any file was unreadable).",
    )
    predict.add_argument("model", metavar="RUN_OR_MODEL", help="a run folder (its final model) or a saved-model folder")
    predict.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    predict.add_argument("--top-k", type=int, default=3, help="classes shown per image (default: %(default)s)")
    predict.add_argument("--json", action="store_true", help="print JSON instead of text")
    predict.add_argument("--precision", default="auto", choices=PRECISIONS, help="(default: %(default)s)")
    predict.set_defaults(handler=_predict)

    evaluate = commands.add_parser(
        "evaluate", help="score a trained model: loss, accuracy with its 95%% interval, per class, confusion matrix",
        description="Score a run's final model (or a saved model) on one split of its data set, with test-time "
                    "augmentation when its recipe uses it. A run folder brings its data set and holdout split.",
    )
    evaluate.add_argument("model", metavar="RUN_OR_MODEL", help="a run folder (its final model) or a saved-model folder")
    evaluate.add_argument("--split", default="test", choices=SPLITS,
                          help="test set, the run's validation (holdout) images, or its training images "
                               "(default: %(default)s)")
    evaluate.add_argument("--dataset", help=_DATASET_HELP + " (default: the run's, else cifar10)")
    evaluate.add_argument("--data-dir", default=None, help="folder holding the data set files (default: the run's, "
                                                           "else $TRAINVAL_DATA, else the download cache)")
    evaluate.add_argument("--precision", choices=PRECISIONS,
                          help="(default: the run's own, so its test score is reproduced exactly; else auto)")
    evaluate.add_argument("--json", metavar="PATH", help="also write the scores to PATH as JSON")
    evaluate.set_defaults(handler=_evaluate)

    report = commands.add_parser(
        "report", help="make a run's plots and report.html again",
        description="Remake RUN/plots/*.png and the self-contained RUN/report.html from the run folder's files "
                    "(the test set is not scored again).",
    )
    report.add_argument("run", metavar="RUN", help="a finished run folder")
    report.set_defaults(handler=_report)

    export = commands.add_parser(
        "export", help="write a trained model as one ONNX or safetensors file",
        description="ONNX: a graph from uint8 images (N, H, W, C) to class probabilities, test-time augmentation "
                    "included, checked against PyTorch with onnxruntime when it is installed. safetensors: the "
                    "weights, with the model's description in the file's metadata.",
    )
    export.add_argument("model", metavar="RUN_OR_MODEL", help="a run folder (its final model) or a saved-model folder")
    export.add_argument("--format", default="onnx", choices=FORMATS, help="(default: %(default)s)")
    export.add_argument("--output", help="the file to write, or a folder to write model.FORMAT in "
                                         "(default: RUN_OR_MODEL/export/model.FORMAT)")
    export.set_defaults(handler=_export)

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

    listing = commands.add_parser("datasets", help="list the data sets: classes, image shape, sizes",
                                  description="List the registered data sets, and how to use a folder of your own "
                                              "images.")
    listing.set_defaults(handler=_datasets)

    model_list = commands.add_parser(
        "models", help="list the architectures with their parameters and FLOPs per image",
        description="List the registered architectures (default options), with their parameter count and the "
                    "forward pass's FLOPs per image (a multiply-add counts 2; convolutions and matrix products) for "
                    "a data set's image shape and class count.")
    model_list.add_argument("--dataset", default=_DEFAULTS.dataset,
                            help="whose image shape and class count to build the models for: "
                                 + _DATASET_HELP + " (default: %(default)s)")
    model_list.add_argument("--image-size", type=int, metavar="PIXELS",
                            help="folder data sets: pixels a side (default: "
                                 f"{image_folder.DEFAULT_IMAGE_SIZE})")
    model_list.set_defaults(handler=_models)
    return parser


def _count_or_fraction(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a count (5000) or a fraction (0.1); got {text!r}") from None


_RESUME_MAY_CHANGE = {"resume", "data_dir", "verbose", "output", "command", "handler", "parser", "argv", "nproc"}


def _train(args: argparse.Namespace) -> int:
    if args.nproc is not None:
        if args.nproc < 1:
            raise ConfigError(f"--nproc must be a number of processes >= 1; got {args.nproc}")
        if args.nproc > 1 and distributed.launched_world().size == 1:
            _check_before_launch(args)
            program = ["-m", "trainval", *_without_option(args.argv, "--nproc")]
            return distributed.launch_with_torchrun(args.nproc, program)
    world = distributed.setup()
    # Leave the group together only after a success: a process that failed must exit at once, so that
    # torchrun stops the others, instead of waiting for them at a barrier they never reach.
    code = _train_here(args, world)
    distributed.shutdown()
    return code


def _refuse_seeds_across_processes(args: argparse.Namespace, processes: int) -> None:
    if args.seeds is not None and processes > 1:
        raise ConfigError("--seeds trains its runs one after another; run it without torchrun or --nproc")


def _check_before_launch(args: argparse.Namespace) -> None:
    """Usage errors that every launched process would hit, caught once, before launching them."""
    _refuse_seeds_across_processes(args, args.nproc)
    check_sync_batchnorm(args.sync_bn, args.nproc, torch.cuda.is_available())
    if not args.resume:
        _train_config(args, verbose=0).check()


def _without_option(argv: list[str], option: str) -> list[str]:
    """``argv`` less ``option VALUE`` and ``option=VALUE``."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == option:
            skip = True
        elif not item.startswith(option + "="):
            kept.append(item)
    return kept


def _train_here(args: argparse.Namespace, world: distributed.World) -> int:
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
        if RunFolder.open(args.resume).seeds():
            return _print_seeds(resume_seeds(args.resume, data_dir=args.data_dir, verbose=given_verbose,
                                             output=args.output,
                                             announce=announce, on_seed=_print_seed))
        result = resume_training(args.resume, data_dir=args.data_dir, verbose=given_verbose, output=args.output,
                                 announce=announce)
    else:
        config = _train_config(args, verbose)
        if args.seeds is not None:
            _refuse_seeds_across_processes(args, world.size)
            if not config.runs_dir:
                raise ConfigError("--seeds keeps each seed's run folder: give a --runs-dir")
            return _print_seeds(run_seeds(config, args.seeds, announce=announce, on_seed=_print_seed))
        result = run_training(config, announce=announce)
    if not world.is_main:
        return 0
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


def _train_config(args: argparse.Namespace, verbose: int | str) -> TrainConfig:
    return TrainConfig(
        preset=args.preset, dataset=args.dataset, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, seed=args.seed, data_dir=args.data_dir, image_size=args.image_size,
        test_fraction=args.test_fraction, precision=args.precision,
        validation=args.validation, holdout_size=args.holdout_size, patience=args.patience, monitor=args.monitor,
        runs_dir=args.runs_dir, name=args.name, checkpoint_every=args.checkpoint_every, output=args.output,
        verbose=verbose, sync_bn=args.sync_bn,
    )


def _print_seed(run: SeedRun) -> None:
    print(f"Seed {run.seed}: test accuracy {format_accuracy(run.test_accuracy, run.test_interval)}, "
          f"{run.seconds['total']:.1f}s, {run.folder}", flush=True)


def _print_seeds(result: SeedsResult) -> int:
    summary = result.summary()
    print(f"{len(result.runs)} seeds: test accuracy {format_spread(summary['test_accuracy'], 100, 2, '%')}")
    print(f"{len(result.runs)} seeds: time per run {format_spread(summary['seconds'], unit='s')}")
    print(f"Summary: {result.folder / SUMMARY_FILE}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    result = predict_image_files(load_model(args.model, precision=args.precision), args.images, args.top_k)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        if any(prediction.resized for prediction in result.predictions):
            print(f"Note: {result.resize_policy}", file=sys.stderr)
        for prediction in result.predictions:
            print(f"{prediction.path}: " + ", ".join(f"{name} {probability * 100:.1f}%"
                                                      for name, probability in prediction.top))
        for unreadable in result.unreadable:
            print(f"{unreadable.path}: unreadable: {unreadable.reason}", file=sys.stderr)
    return 1 if result.unreadable else 0


def _evaluate(args: argparse.Namespace) -> int:
    evaluation = evaluate_saved_model(args.model, args.split, args.dataset, args.data_dir, args.precision)
    scores = evaluation.scores
    print(f"Model {evaluation.model_folder} on the {evaluation.split} split of {evaluation.dataset} "
          f"({scores.samples} images; {evaluation.precision}, TTA level {evaluation.tta})")
    print(f"Loss: {scores.loss:.4f}")
    print(accuracy_line(scores.accuracy, scores.interval, scores.samples, what="images"))
    if evaluation.split == "validation" and evaluation.tta:
        print("(fit's val_acc was measured without test-time augmentation, so it differs from this)")
    print()
    print(class_table(scores))
    print()
    print(confusion_table(scores))
    if args.json:
        _write_json(args.json, {"model": str(evaluation.model_folder), "dataset": evaluation.dataset,
                                "split": evaluation.split, "tta": evaluation.tta, "precision": evaluation.precision,
                                **scores.to_dict()})
    return 0


def _report(args: argparse.Namespace) -> int:
    print(f"Wrote {remake_report(args.run)} and its plots in {RunFolder(args.run).plots}")
    return 0


def _export(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    folder = RunFolder(args.model)
    output = Path(args.output) if args.output else folder.owned_subfolder(folder.path / "export")
    if output.is_dir() or not output.suffix:  # a folder: the file goes inside it
        output = output / f"model.{args.format}"
    export_model(model, output, args.format)
    print(f"Wrote {output}")
    if args.format == "onnx":
        try:
            check = check_onnx(model, output)
        except ExportError as error:
            print(f"Not checked: {error}")
        else:
            print(f"Checked with onnxruntime on {check.images} random images: same top-1 class on "
                  f"{check.same_top1}/{check.images}, largest probability difference "
                  f"{check.max_probability_difference:.1e}")
    return 0


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


def _write_json(path: str, values: dict) -> None:
    try:
        write_bytes_atomically(path, (json.dumps(values, indent=2) + "\n").encode())
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error}; choose a writable path") from error
    print(f"Wrote {path}")


def _print_seed_row(row: SeedRun) -> None:
    print(f"{row.seed:>4}  {row.seconds['training']:>8.1f}  {row.seconds['total']:>7.1f}  "
          f"{row.test_accuracy * 100:>8.2f}%  {row.images_per_second:>9.0f}", flush=True)


def _print_summary(report: BenchReport) -> None:
    summary = report.summary()
    print(f"test accuracy  {format_spread(summary['test_accuracy'], 100, 2, '%')}")
    print(f"train seconds  {format_spread(summary['train_seconds'])}")
    print(f"wall seconds   {format_spread(summary['wall_seconds'])}")
    print(f"images/s       {format_spread(summary['images_per_second'], digits=0)}")


def _bench(args: argparse.Namespace) -> int:
    preset = args.preset or presets.DEFAULT
    print(f"trainval bench: preset {preset}, {args.seeds} seeds, {args.dataset}, all training images, "
          "test set scored once per seed", flush=True)
    header_printed = False

    def show(row: SeedRun) -> None:
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
        _write_json(args.json, report.to_dict())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 runtime failure, 2 usage error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _build_parser().parse_args(argv)
    args.argv = argv
    rank = distributed.launched_world().rank
    where = f" (process {rank})" if rank else ""  # under torchrun, say which process failed
    try:
        return args.handler(args)
    except ConfigError as error:
        print(f"trainval: error{where}: {error}", file=sys.stderr)
        return 2
    except TrainvalError as error:
        print(f"trainval: error{where}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("trainval: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stdout = None  # nothing more can be printed there
        if args.command == "train":
            print("trainval: error: the output was closed (a broken pipe) and training stopped; continue it with "
                  "trainval train --resume RUN_DIR", file=sys.stderr)
            return 1
        return 0  # a reader that went away early (``| head``) wanted no more output


if __name__ == "__main__":
    sys.exit(main())
