"""What the commands share: ``TrainConfig``'s fields as options, and writing ``--json`` files."""

from __future__ import annotations

import argparse
import json
from collections.abc import Collection
from dataclasses import MISSING, fields

from trainval.atomic_files import write_bytes_atomically
from trainval.config import TrainConfig
from trainval.errors import OutputError


def add_config_options(parser: argparse.ArgumentParser, only: Collection[str] | None = None) -> None:
    """Add an option for each :class:`TrainConfig` field (or each one named in ``only``), with the help and
    argparse settings kept in the field's metadata."""
    for option in fields(TrainConfig):
        if only is not None and option.name not in only:
            continue
        settings = dict(option.metadata["cli"])
        flags = settings.pop("flags") or ("--" + option.name.replace("_", "-"),)
        default = None if option.default is MISSING else option.default
        parser.add_argument(*flags, dest=option.name, default=default, **settings)


def config_from(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` that the options :func:`add_config_options` added hold."""
    return TrainConfig(**{option.name: getattr(args, option.name) for option in fields(TrainConfig)
                          if hasattr(args, option.name)})


def write_json(path: str, values: dict) -> None:
    """Write ``values`` to ``path`` as indented JSON (atomically) and say so."""
    try:
        write_bytes_atomically(path, (json.dumps(values, indent=2) + "\n").encode())
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error}; choose a writable path") from error
    print(f"Wrote {path}")
