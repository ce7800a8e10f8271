"""``trainval compare``: finished runs side by side, their validation curves, and paired tests of their accuracy."""

from __future__ import annotations

import argparse

from trainval.atomic_files import write_bytes_atomically
from trainval.cli.options import write_json
from trainval.errors import OutputError
from trainval.reports.comparison import SIGNIFICANCE, compare_runs


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``compare`` to the CLI's commands."""
    compare = commands.add_parser(
        "compare", help="compare finished runs: a table, validation curves, and whether they differ beyond chance",
        description="Put finished runs side by side (preset, data set, epochs, test accuracy with its 95%% interval, "
                    "time), draw their validation curves in one PNG, and test each run that shares its test set with "
                    "the most accurate one against it (McNemar's exact test on the saved test predictions). A "
                    "--seeds set's folder shows the spread of its test accuracy over its seeds. Folders that are not "
                    "finished runs are skipped with a note, so runs/* works.",
    )
    compare.add_argument("runs", metavar="RUN", nargs="+", help="finished run folders or --seeds sets, e.g. runs/*")
    compare.add_argument("--plot", default="compare.png", metavar="PATH",
                         help="where to write the validation curves (default: %(default)s)")
    compare.add_argument("--json", metavar="PATH", help="also write the comparison to PATH as JSON")
    compare.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    comparison = compare_runs(args.runs)
    for note in comparison.notes:
        print(f"Note: {note}")
    print(comparison.table())
    if comparison.tests:
        best = comparison.tests[0].best
        print(f"\nPaired tests against the most accurate run ({best}), on the test images both scored "
              f"(beyond chance: p < {SIGNIFICANCE}):")
        for test in comparison.tests:
            print(f"  {test.verdict()}")
    seed_lines = comparison.seed_lines()
    if seed_lines:
        print("\nSpread over seeds:")
        for line in seed_lines:
            print(f"  {line}")
    png = comparison.plot()
    if png is not None:
        try:
            write_bytes_atomically(args.plot, png)
        except OSError as error:
            raise OutputError(f"cannot write {args.plot} ({error.strerror or error}); choose a writable --plot "
                              "path") from error
        print(f"\nValidation curves: {args.plot}")
    if args.json:
        write_json(args.json, {**comparison.to_dict(), "plot": args.plot if png is not None else None})
    return 0
