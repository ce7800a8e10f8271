"""``trainval train``: train a run (or resume one, or a set of seeds, or launch it data-parallel)."""

from __future__ import annotations

import argparse

import torch

from trainval import distributed
from trainval.cli.options import add_config_options, config_from
from trainval.errors import ConfigError
from trainval.experiment import resume_training, run_training
from trainval.runs.run_folder import RunFolder
from trainval.seeds import SUMMARY_FILE, SeedRun, SeedsResult, resume_seeds, run_seeds
from trainval.stats import accuracy_line, format_accuracy, format_spread
from trainval.training.data_parallel import check_sync_batchnorm


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``train`` to the CLI's commands."""
    train = commands.add_parser(
        "train", help="train a model, validate it each epoch, score it once on the test set",
        description="Train a model on a data set, validate after every epoch, then score the test set once and "
                    "print its accuracy with a 95% confidence interval.",
    )
    add_config_options(train)
    train.add_argument("--seeds", type=int, metavar="N",
                       help="train N runs with seeds --seed .. --seed+N-1, each in RUN/seed-K/, and print the mean, "
                            "std, min and max of their test accuracy and time (also in RUN/summary.json)")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue the interrupted run in RUN_DIR exactly where its last checkpoint left it, "
                            "with its own settings (only --data-dir, --verbose and --output may be given with it)")
    train.add_argument("--nproc", type=int, metavar="N",
                       help="train data-parallel in N processes on this machine, launched through torchrun (one "
                            "per GPU; on CPUs they share the cores). --batch-size stays the global batch. For "
                            "several machines run torchrun yourself: see docs/distributed.md")
    train.set_defaults(handler=_train, parser=train)


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
        config_from(args).check()


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
    announce = lambda line: print(line, flush=True)  # noqa: E731
    if args.resume:
        parser = args.parser
        changed = [name for name, value in vars(args).items()
                   if name not in _RESUME_MAY_CHANGE and value != parser.get_default(name)]
        if changed:
            raise ConfigError(f"--resume continues a run with the settings it started with; drop "
                              f"{', '.join('--' + name.replace('_', '-') for name in changed)}")
        given_verbose = None if args.verbose == parser.get_default("verbose") else args.verbose
        if RunFolder.open(args.resume).seeds():
            return _print_seeds(resume_seeds(args.resume, data_dir=args.data_dir, verbose=given_verbose,
                                             output=args.output,
                                             announce=announce, on_seed=_print_seed))
        result = resume_training(args.resume, data_dir=args.data_dir, verbose=given_verbose, output=args.output,
                                 announce=announce)
    else:
        config = config_from(args)
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
    if result.test_scores.uneven:
        print(f"Balanced accuracy: {result.test_scores.balanced_summary()}")
    compiling = f"; compiling {seconds['compile']:.1f}s of those" if seconds.get("compile") else ""
    print(f"Time: {seconds['total']:.1f}s in all (data {seconds['data']:.1f}s, training {seconds['training']:.1f}s, "
          f"test {seconds['test']:.1f}s{compiling})")
    if result.run_folder is not None:
        print(f"Run folder: {result.run_folder} (final model in {result.run_folder / 'model'})")
    if result.config.output:
        print(f"Saved the model to {result.config.output}")
    return 0



def _print_seed(run: SeedRun) -> None:
    print(f"Seed {run.seed}: test accuracy {format_accuracy(run.test_accuracy, run.test_interval)}, "
          f"{run.seconds['total']:.1f}s, {run.folder}", flush=True)


def _print_seeds(result: SeedsResult) -> int:
    summary = result.summary()
    print(f"{len(result.runs)} seeds: test accuracy {format_spread(summary['test_accuracy'], 100, 2, '%')}")
    print(f"{len(result.runs)} seeds: time per run {format_spread(summary['seconds'], unit='s')}")
    print(f"Summary: {result.folder / SUMMARY_FILE}")
    return 0


