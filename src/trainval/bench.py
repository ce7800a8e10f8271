"""``trainval bench``: run a preset for several seeds and report accuracy and speed, with the machine.

Speed claims should be ratios measured in one run on one machine: ``compare_throughput`` times the
tutorial network and a preset's network on the same data, back to back.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from trainval.checks import require_int
from trainval import datasets, presets
from trainval.config import TrainConfig
from trainval.errors import ConfigError
from trainval.seeds import SeedRun, SeedsResult, run_seeds
from trainval.training.precision import resolve_device, resolve_precision


_COLUMNS: dict[str, Callable[[SeedRun], float]] = {  # bench's view of a seed's run, in its table's order
    "train_seconds": lambda run: run.seconds["training"],
    "wall_seconds": lambda run: run.seconds["total"],  # data load, model build, training and test, in this process
    "compile_seconds": lambda run: run.seconds.get("compile", 0.0),  # torch.compile's share of training and test
    "test_accuracy": lambda run: run.test_accuracy,
    "images_per_second": lambda run: run.images_per_second,
}


@dataclass
class BenchReport:
    """Everything ``trainval bench`` prints, as data (``--json`` writes it)."""

    preset: dict
    dataset: str
    validation: str
    machine: dict
    compile: bool = False  # trained through torch.compile
    seeds: SeedsResult = field(default_factory=lambda: SeedsResult(None, []))
    compare: dict | None = None

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean, sample standard deviation, min and max of each measured column."""
        if not self.seeds.runs:
            return {}
        return {name: self.seeds.spread(_COLUMNS[name])
                for name in ("test_accuracy", "train_seconds", "wall_seconds", "compile_seconds", "images_per_second")}

    def to_dict(self) -> dict:
        """JSON-ready values, the summary included."""
        rows = [{"seed": run.seed, **{name: value(run) for name, value in _COLUMNS.items()}} for run in self.seeds.runs]
        return {"preset": self.preset, "dataset": self.dataset, "validation": self.validation,
                "machine": self.machine, "compile": self.compile, "seeds": rows, "compare": self.compare,
                "summary": self.summary()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts(precision: str = "auto") -> dict[str, str | int]:
    """What the figures depend on: CPU or GPU model, threads, torch (and CUDA) version, device and precision."""
    device = resolve_device()
    facts: dict[str, str | int] = {
        "cpu": _cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "python": platform.python_version(), "device": device.type,
        "precision": resolve_precision(precision, device),
    }
    if device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(device)
        facts["cuda"] = str(torch.version.cuda)
    return facts


def run_bench(preset: str, seeds: int, data_dir: str | None = None, precision: str = "auto",
              validation: str = "none", dataset: str = "cifar10", compile: bool = False,
              epochs: int | None = None, on_result: Callable[[SeedRun], None] = lambda run: None) -> BenchReport:
    """Train ``preset`` once per seed 0..seeds-1 (no run folders) and collect accuracy and timings.

    ``validation="none"`` trains on all training images and scores the test set once, which is
    what the published speed runs measure. ``compile`` runs the model through ``torch.compile``;
    each seed's compile time is then reported apart (later seeds reuse torch's compiled code).
    ``epochs`` replaces the preset's (its schedule squeezed or stretched to fit), for a shorter check.
    """
    config = TrainConfig(preset=preset, dataset=dataset, seed=0, data_dir=data_dir, precision=precision,
                         validation=validation, verbose=0, runs_dir=None, compile=compile, epochs=epochs)
    report = BenchReport(preset=presets.get(preset).with_overrides(epochs=epochs).to_dict(), dataset=dataset,
                         validation=validation, machine=machine_facts(precision), compile=compile)
    report.seeds = run_seeds(config, seeds, announce=lambda line: None, on_seed=on_result)
    return report


def measure_throughput(preset_name: str, steps: int, data_dir: str | None = None, precision: str = "auto",
                       dataset: str = "cifar10") -> float:
    """Training images per second of ``preset_name``'s network and recipe over ``steps`` steps of real data.

    One warm-up step is left out of the timing, so one-off costs (memory allocation, kernel
    selection) do not count.
    """
    preset = presets.get(preset_name)
    data = datasets.get(dataset)
    (x_train, y_train), _ = data.load_data(data_dir)
    count = (steps + 1) * preset.batch_size
    require_int("compare-steps", steps, 1)
    if count > len(x_train):
        most = len(x_train) // preset.batch_size - 1
        advice = (f"choose --compare-steps {most} or fewer" if most >= 1 else
                  f"--compare needs at least {2 * preset.batch_size} training images (a warm-up batch and a timed one "
                  "of that size), so drop --compare for this data set")
        raise ConfigError(f"timing {steps} steps of preset {preset_name} (plus one warm-up step) needs {count} "
                          f"training images, and {dataset} has {len(x_train)}; {advice}")
    model = preset.build_model(data.num_classes, x_train.shape[1:], seed=0, precision=precision)
    warmup = preset.batch_size
    model.fit(x_train[:warmup], y_train[:warmup], batch_size=preset.batch_size, verbose=0, seed=0)
    started = time.perf_counter()
    model.fit(x_train[warmup:count], y_train[warmup:count], batch_size=preset.batch_size, verbose=0, seed=0,
              callbacks=preset.callbacks())
    return (count - warmup) / (time.perf_counter() - started)


def compare_throughput(preset_name: str, steps: int = 50, data_dir: str | None = None,
                       precision: str = "auto", dataset: str = "cifar10") -> dict[str, float]:
    """Images/s of ``preset_name`` and of the ``tutorial`` preset, measured back to back, and their ratio."""
    fast = measure_throughput(preset_name, steps, data_dir, precision, dataset)
    tutorial = measure_throughput("tutorial", steps, data_dir, precision, dataset)
    return {"steps": steps, "preset_images_per_second": fast, "tutorial_images_per_second": tutorial,
            "ratio": fast / tutorial}
