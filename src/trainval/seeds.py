"""``trainval train --seeds N``: one run per seed in a parent folder, and the spread of their scores.

::

    runs/<name>/config.json     the shared configuration and the seeds
    runs/<name>/seed-<k>/       one ordinary run folder per seed
    runs/<name>/summary.json    each seed's test accuracy and time, with mean, std, min and max
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from trainval.checks import require_int
from trainval.errors import CheckpointError, ConfigError
from trainval.config import TrainConfig
from trainval.experiment import check_same_preset, prepare, resume_training, run_record, run_training, saved_config
from trainval.presets import Preset
from trainval.runs.run_folder import RunFolder
from trainval.stats import spread

SUMMARY_FILE = "summary.json"


@dataclass
class SeedRun:
    """One finished seed: its folder and what result.json says."""

    seed: int
    folder: Path
    test_accuracy: float
    test_interval: tuple[float, float]
    seconds: float  # the run's total: data, training and test

    def to_dict(self) -> dict[str, Any]:
        """Plain values for summary.json."""
        return {"seed": self.seed, "folder": self.folder.name, "test_accuracy": self.test_accuracy,
                "test_interval_95": list(self.test_interval), "seconds": self.seconds}


@dataclass
class SeedsResult:
    """The finished seeds of a multi-seed run, and where they are."""

    folder: Path
    runs: list[SeedRun]

    def summary(self) -> dict[str, Any]:
        """Per-seed rows and the spread of test accuracy and time (what summary.json holds)."""
        values: dict[str, Any] = {"seeds": [run.to_dict() for run in self.runs]}
        if self.runs:
            values["test_accuracy"] = spread([run.test_accuracy for run in self.runs])
            values["seconds"] = spread([run.seconds for run in self.runs])
        return values


def run_seeds(config: TrainConfig, count: int, announce: Callable[[str], None] = print,
              on_seed: Callable[[SeedRun], None] = lambda run: None) -> SeedsResult:
    """Train ``config`` with seeds ``config.seed`` .. ``config.seed + count - 1``, each in its own run folder
    under a new parent folder in ``config.runs_dir``."""
    require_int("seeds", count, 1)
    if not config.runs_dir:
        raise ConfigError("--seeds keeps each seed's run folder: give a --runs-dir")
    _refuse_output(config.output)
    config = config.with_absolute_paths()
    _, preset = prepare(config, announce=_silent)  # each seed's run says what it notes
    seeds = list(range(config.seed, config.seed + count))
    parent = RunFolder.create(config.runs_dir, config.name, run_record(config, preset, seeds))
    with parent.locked(), parent.removed_if_blank_on_failure():
        return _train_seeds(parent, config, seeds, announce, on_seed)


def resume_seeds(path: str | Path, data_dir: str | None = None, verbose: int | str | None = None,
                 output: str | None = None, preset: Preset | None = None, announce: Callable[[str], None] = print,
                 on_seed: Callable[[SeedRun], None] = lambda run: None) -> SeedsResult:
    """Finish the multi-seed run in ``path``: finished seeds are kept, an interrupted one is resumed
    from its checkpoint, the rest are started. A set started from a ``Preset`` object rather than a
    preset name needs that object passed again as ``preset``."""
    _refuse_output(output)
    parent = RunFolder.open(path)
    seeds = parent.seeds()
    if not seeds:
        raise ConfigError(f"{path} is a single run, not a set of seeds; resume it with trainval train --resume {path}")
    config = saved_config(parent, data_dir=data_dir, verbose=verbose, preset=preset)
    _, resolved = prepare(config, announce=_silent)
    check_same_preset(parent, resolved)
    with parent.locked():
        return _train_seeds(parent, config, seeds, announce, on_seed)


def _silent(line: str) -> None:
    """Where the notes of a set's shared checks go: each seed's own run prints them."""


def _refuse_output(output: str | None) -> None:
    if output:
        raise ConfigError("--output saves one model; with --seeds each seed's model is in its run folder")


def _train_seeds(parent: RunFolder, config: TrainConfig, seeds: list[int], announce: Callable[[str], None],
                 on_seed: Callable[[SeedRun], None]) -> SeedsResult:
    preset = config.preset if isinstance(config.preset, Preset) else None
    result = SeedsResult(parent.path, [])
    announce(f"Training {len(seeds)} seeds ({seeds[0]}..{seeds[-1]}) in {parent.path}")
    for position, seed in enumerate(seeds, 1):
        child = parent.seed_run(seed)
        if not child.result_file.exists():
            announce(f"Seed {seed} ({position} of {len(seeds)}): training in {child.path}")
            if child.config_file.exists():
                resume_training(child.path, data_dir=config.data_dir, verbose=config.verbose, preset=preset,
                                announce=announce)
            else:
                run_training(replace(config, seed=seed, runs_dir=str(parent.path), name=child.path.name),
                             announce=announce)
        run = _finished_seed(seed, child)
        result.runs.append(run)
        parent.write_json(parent.path / SUMMARY_FILE, result.summary())
        on_seed(run)
    return result


def _finished_seed(seed: int, folder: RunFolder) -> SeedRun:
    retrain = f"delete the folder {folder.path} and resume to train that seed again"
    result = folder.read_result(hint=retrain)
    if result.seconds is None or "total" not in result.seconds:
        raise CheckpointError(f"{folder.result_file} is unreadable or corrupt (it has no total time); {retrain}")
    return SeedRun(seed, folder.path, result.test_accuracy, result.test_interval, result.seconds["total"])
