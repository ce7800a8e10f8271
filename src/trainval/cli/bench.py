"""``trainval bench``: a preset over several seeds, with accuracy, speed and the machine's facts."""

from __future__ import annotations

import argparse

from trainval import presets
from trainval.bench import BenchReport, compare_throughput, run_bench
from trainval.cli.options import add_config_options, write_json
from trainval.seeds import SeedRun
from trainval.stats import format_spread


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``bench`` to the CLI's commands."""
    bench = commands.add_parser(
        "bench", help="run a preset for several seeds and print accuracy and speed per seed, with a summary",
        description="Train a preset once per seed (0..N-1) on all training images, score the test set once per seed, "
                    "and print one row per seed and mean/std/min/max, with the machine's facts.",
    )
    add_config_options(bench, only=("preset", "dataset", "data_dir", "precision", "compile", "epochs"))
    bench.add_argument("--seeds", type=int, default=5, help="number of seeds to run (default: %(default)s)")
    bench.add_argument("--json", metavar="PATH", help="also write the rows, summary and machine facts to PATH as JSON")
    bench.add_argument("--compare", action="store_true",
                       help="also time the tutorial network and the preset's network for the same number of steps "
                            "and print the ratio of their training throughputs (images/s)")
    bench.add_argument("--compare-steps", type=int, default=50,
                       help="steps each network trains for in --compare (default: %(default)s)")
    bench.set_defaults(handler=_bench)


def _print_seed_row(row: SeedRun) -> None:
    print(f"{row.seed:>4}  {row.seconds['training']:>8.1f}  {row.seconds['total']:>7.1f}  "
          f"{row.seconds.get('compile', 0.0):>9.1f}  {row.test_accuracy * 100:>8.2f}%  {row.images_per_second:>9.0f}",
          flush=True)


def _print_summary(report: BenchReport) -> None:
    summary = report.summary()
    print(f"test accuracy  {format_spread(summary['test_accuracy'], 100, 2, '%')}")
    print(f"train seconds  {format_spread(summary['train_seconds'])}")
    print(f"wall seconds   {format_spread(summary['wall_seconds'])}")
    print(f"compile secs   {format_spread(summary['compile_seconds'])}")
    print(f"images/s       {format_spread(summary['images_per_second'], digits=0)}")


def _bench(args: argparse.Namespace) -> int:
    preset = args.preset or presets.DEFAULT
    print(f"trainval bench: preset {preset}, {args.seeds} seeds, {args.dataset}, all training images, "
          f"{'' if args.epochs is None else f'{args.epochs} epochs, '}"
          f"test set scored once per seed{', torch.compile' if args.compile else ''}", flush=True)
    header_printed = False

    def show(row: SeedRun) -> None:
        nonlocal header_printed
        if not header_printed:
            print("seed   train_s   wall_s  compile_s  test_acc   images/s")
            header_printed = True
        _print_seed_row(row)

    # Timed first: it is short, and a mistake in its options should not cost the seeds' runs.
    compare = (compare_throughput(preset, args.compare_steps, args.data_dir, args.precision, args.dataset)
               if args.compare else None)
    report = run_bench(preset, args.seeds, data_dir=args.data_dir, precision=args.precision,
                       dataset=args.dataset, compile=args.compile, epochs=args.epochs, on_result=show)
    report.compare = compare
    _print_summary(report)
    print("machine: " + ", ".join(f"{key} {value}" for key, value in report.machine.items()))
    print("wall_s counts data loading, model building, training and testing in this process; "
          "interpreter start and imports come on top. compile_s is the part of train_s and the test spent in "
          "steps where torch.compile compiled (0 without --compile).")
    if compare:
        print(f"throughput over {compare['steps']} steps each: {preset} "
              f"{compare['preset_images_per_second']:.0f} images/s, tutorial seed-cnn "
              f"{compare['tutorial_images_per_second']:.0f} images/s, ratio {compare['ratio']:.2f}x")
    if args.json:
        write_json(args.json, report.to_dict())
    return 0
