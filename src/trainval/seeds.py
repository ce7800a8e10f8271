"""Several seeds of one recipe: ``trainval train --seeds N`` and ``trainval bench`` both run them here.

With a runs folder each seed gets its own run folder under a parent folder, and the set resumes::

    runs/<name>/config.json     the shared configuration and the seeds
    runs/<name>/seed-<k>/       one ordinary run folder per seed
    runs/<name>/summary.json    each seed's test accuracy and time, with mean, std, min and max

Without one (``bench``), the seeds simply run one after another in memory.
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
from trainval.runs.record import RunResult
from trainval.runs.run_folder import RunFolder
from trainval.stats import spread

SUMMARY_FILE = "summary.json"


@dataclass
class SeedRun:
    """One finished seed: its test score and times, and its run folder (None for a run without one)."""

    seed: int
    test_accuracy: float
    test_interval: tuple[float, float]
    seconds: dict[str, float]  # data, training, test, total
    trained_images: int  # training images times epochs
    folder: Path | None = None

    @classmethod
    def of(cls, seed: int, result: RunResult, folder: Path | None = None) -> SeedRun:
        """The row of a seed whose run measured ``result``."""
        return cls(seed, result.test_accuracy, result.test_interval, dict(result.seconds or {}),
                   (result.train_samples or 0) * result.epochs_trained, folder)

    @property
    def images_per_second(self) -> float:
        """Training images processed per second of training."""
        return self.trained_images / max(self.seconds["training"], 1e-9)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for summary.json."""
        return {"seed": self.seed, "folder": self.folder.name if self.folder else None,
                "test_accuracy": self.test_accuracy, "test_interval_95": list(self.test_interval),
                "seconds": self.seconds["total"]}


@dataclass
class SeedsResult:
    """The finished seeds of a multi-seed run, and where they are (None without run folders)."""

    folder: Path | None
    runs: list[SeedRun]

    def spread(self, value: Callable[[SeedRun], float]) -> dict[str, float]:
        """Mean, std, min and max over the seeds of ``value(run)``."""
        return spread([value(run) for run in self.runs])

    def summary(self) -> dict[str, Any]:
        """Per-seed rows and the spread of test accuracy and time (what summary.json holds)."""
        values: dict[str, Any] = {"seeds": [run.to_dict() for run in self.runs]}
        if self.runs:
            values["test_accuracy"] = self.spread(lambda run: run.test_accuracy)
            values["seconds"] = self.spread(lambda run: run.seconds["total"])
        return values


def run_seeds(config: TrainConfig, count: int, announce: Callable[[str], None] = print,
              on_seed: Callable[[SeedRun], None] = lambda run: None) -> SeedsResult:
    """Train ``config`` with seeds ``config.seed`` .. ``config.seed + count - 1``, each in its own run folder
    under a new parent folder in ``config.runs_dir``, or in memory one after another when it is None."""
    require_int("seeds", count, 1)
    _refuse_output(config.output)
    seeds = list(range(config.seed, config.seed + count))
    if not config.runs_dir:
        result = SeedsResult(None, [])
        for seed in seeds:
            result.runs.append(SeedRun.of(seed, run_training(replace(config, seed=seed), announce).record()))
            on_seed(result.runs[-1])
        return result
    config = config.with_absolute_paths()
    # The set's notes once (a batch lowered to fit in memory is the set's); each seed's run then says its own.
    config, _, preset = prepare(config, announce=announce)
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
    _, _, resolved = prepare(config, announce=_silent, may_lower_batch=False)
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
    return SeedRun.of(seed, result, folder.path)
