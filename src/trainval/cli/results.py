"""``trainval predict``, ``evaluate``, ``report`` and ``export``: what to do with a trained model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trainval.model_factory import load_model
from trainval.cli.options import write_json
from trainval.errors import ExportError
from trainval.evaluation import SPLITS, evaluate_saved_model, remake_report
from trainval.config import DATASET_HELP
from trainval.export import FORMATS, check_onnx, export_model
from trainval.prediction import predict_image_files
from trainval.reports.text_tables import class_table, confusion_table
from trainval.runs.run_folder import RunFolder
from trainval.stats import accuracy_line
from trainval.training.precision import PRECISIONS


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``predict``, ``evaluate``, ``report`` and ``export`` to the CLI's commands."""
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
    evaluate.add_argument("--dataset", help=DATASET_HELP + " (default: the run's, else cifar10)")
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
    if scores.uneven:
        print(f"Balanced accuracy: {scores.balanced_summary()}")
    if evaluation.split == "validation" and evaluation.tta:
        print("(fit's val_acc was measured without test-time augmentation, so it differs from this)")
    print()
    print(class_table(scores))
    print()
    print(confusion_table(scores))
    if args.json:
        write_json(args.json, {"model": str(evaluation.model_folder), "dataset": evaluation.dataset,
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
