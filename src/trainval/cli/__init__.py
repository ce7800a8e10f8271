"""The ``trainval`` command: a thin face over the workflow, one module per group of commands.

``train`` (:mod:`trainval.cli.train`), ``predict``, ``evaluate``, ``report`` and ``export``
(:mod:`trainval.cli.results`), ``compare`` (:mod:`trainval.cli.compare`), ``bench`` (:mod:`trainval.cli.bench`),
``datasets`` and ``models`` (:mod:`trainval.cli.listings`). Every option of ``train`` is a field of
:class:`trainval.TrainConfig`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trainval import distributed
from trainval.version import __version__
from trainval.cli import bench, compare, listings, results, train
from trainval.errors import ConfigError, TrainvalError


def build_parser() -> argparse.ArgumentParser:
    """The ``trainval`` parser with every command."""
    parser = argparse.ArgumentParser(
        prog="trainval",
        description="Train and validate image classifiers: Keras's workflow, fast on a CPU, faster on a GPU.",
    )
    parser.add_argument("--version", action="version", version=f"trainval {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (train, results, compare, bench, listings):
        group.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 runtime failure, 2 usage error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
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
