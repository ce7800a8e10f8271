"""``compile=True`` / ``--compile``: the forward pass through torch.compile, its compile time reported apart.

The fast tests compile with torch's ``eager`` backend (dynamo's tracing and guards, no code generation),
so they take seconds; the slow one compiles with the default backend (inductor), which takes a minute on
a CPU the first time."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest
import torch

import trainval
from trainval.cli import main
from trainval.config import TrainConfig
from trainval.errors import ConfigError
from trainval.optimizers import SGD

from tiny_data import TinyNet, tiny_images


@pytest.fixture
def eager_backend(monkeypatch):
    """torch.compile with dynamo's tracing but no code generation: the same arithmetic as eager."""
    torch._dynamo.reset()
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    yield
    torch._dynamo.reset()


def _trained(compile: bool, epochs: int = 2, precision: str = "auto") -> trainval.Model:
    torch.manual_seed(0)
    model = trainval.Model(TinyNet(), num_classes=4)
    model.compile(optimizer=SGD(learning_rate=0.05, momentum=0.9), compile=compile, tta=1, precision=precision,
                  augmentation=trainval.Augmentation(translate=1))
    images, labels = tiny_images(count=40, size=8)  # batches of 16, 16 and 8: two shapes to compile for
    model.fit(images, labels, batch_size=16, epochs=epochs, validation_split=0.25, seed=3, verbose=0)
    return model


def test_a_compiled_model_trains_and_predicts_as_the_eager_one_does(eager_backend):
    eager, compiled = _trained(False), _trained(True)
    for (name, a), (_, b) in zip(eager.module.state_dict().items(), compiled.module.state_dict().items()):
        assert torch.equal(a, b), name
    images, _ = tiny_images(count=12, size=8, seed=1)
    assert (eager.predict(images) == compiled.predict(images)).all()
    assert eager.compile_seconds == 0.0 and compiled.compile_seconds > 0.0


def test_compile_time_counts_only_the_steps_that_meet_a_new_shape_or_mode(eager_backend):
    model = _trained(True)
    after_first_fit = model.compile_seconds
    images, labels = tiny_images(count=40, size=8)
    model.fit(images, labels, batch_size=16, epochs=1, validation_split=0.25, seed=3, verbose=0)
    assert model.compile_seconds == after_first_fit  # the same shapes and modes: nothing new was compiled
    model.predict(images[:5])  # a new batch shape in evaluation: timed once more
    assert model.compile_seconds > after_first_fit


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_compile_other_than_true_or_false_is_a_config_error(value):
    with pytest.raises(ConfigError, match="compile must be True or False"):
        trainval.Model(TinyNet(), num_classes=4).compile(compile=value)
    with pytest.raises(ConfigError, match="compile must be true or false"):
        TrainConfig(compile=value).check()


def test_train_compile_records_and_prints_the_compile_time_of_the_run(cifar_dir, eager_backend, capsys):
    status = main(["train", "--preset", "quick", "--data-dir", str(cifar_dir), "--epochs", "1", "--compile",
                   "--holdout-size", "10", "--verbose", "0", "--name", "compiled"])
    out = capsys.readouterr().out
    assert status == 0, out
    seconds = json.loads(Path("runs/compiled/result.json").read_text())["seconds"]
    assert 0.0 < seconds["compile"] < seconds["total"]
    assert re.search(r"^Time: .*; compiling \d+\.\ds of those\)$", out, re.M), out
    assert json.loads(Path("runs/compiled/config.json").read_text())["config"]["compile"] is True


def test_bench_compile_shows_each_seeds_compile_time(cifar_dir, eager_backend, tmp_path, capsys):
    report_path = tmp_path / "bench.json"
    assert main(["bench", "--preset", "quick", "--seeds", "1", "--data-dir", str(cifar_dir), "--compile",
                 "--json", str(report_path)]) == 0
    out = capsys.readouterr().out
    assert "torch.compile" in out.splitlines()[0] and "compile_s" in out
    report = json.loads(report_path.read_text())
    assert report["compile"] is True and report["seeds"][0]["compile_seconds"] > 0.0
    assert report["summary"]["compile_seconds"]["mean"] == report["seeds"][0]["compile_seconds"]


@pytest.mark.slow
def test_inductor_compiled_training_agrees_with_eager_within_float_rounding():
    torch._dynamo.reset()
    # Inductor draws dropout masks its own way (reproducibly, but not eager's masks) unless told to fall back.
    # torch's own patch() restores the option; pytest's monkeypatch leaves the config module broken for
    # every later export in the process.
    with torch._inductor.config.patch(fallback_random=True):
        eager, compiled = _trained(False, epochs=1, precision="fp32"), _trained(True, epochs=1, precision="fp32")
    for (name, a), (_, b) in zip(eager.module.state_dict().items(), compiled.module.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # fused kernels round differently
    images, _ = tiny_images(count=12, size=8, seed=1)
    torch.testing.assert_close(eager.predict(images), compiled.predict(images), rtol=1e-4, atol=1e-5)
    assert compiled.compile_seconds > 0.0
