"""Fine-tuning: a model started from another's weights keeps its body, gets a new head, and trains the head first."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import trainval
from trainval import Callback
from trainval.cli import main
from trainval.errors import ConfigError, ModelFileError
from trainval.optimizers import SGD, FineTuning

from cifar_files import write_cifar10_folder
from dataset_files import write_photos
from tiny_data import tiny_images

WIDTHS = (8, 16, 16)


def trained_fastnet(classes: int = 4, widths=WIDTHS) -> trainval.Model:
    images, labels = tiny_images(count=32, size=16, classes=classes)
    model = trainval.create_model("fastnet", num_classes=classes, input_shape=(16, 16, 3), seed=0, widths=widths)
    model.fit(images, labels, epochs=1, batch_size=16, verbose=0, seed=0)
    return model


def tensors(model: trainval.Model) -> dict[str, torch.Tensor]:
    return {name: value.detach().cpu().contiguous().clone() for name, value in model.module.state_dict().items()}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    folder = tmp_path_factory.mktemp("source") / "model"
    model = trained_fastnet()
    model.save(folder)
    return folder, tensors(model)


def test_a_model_created_from_weights_has_every_tensor_but_a_new_head_for_its_classes(source):
    folder, pretrained = source
    model = trainval.create_model("fastnet", num_classes=2, input_shape=(16, 16, 3), seed=1, widths=WIDTHS,
                                  weights=folder)
    assert model.head == ("head.weight",)
    started = tensors(model)
    assert started["head.weight"].shape == (2, 16)
    assert all(torch.equal(started[name], pretrained[name]) for name in started if name != "head.weight")


def test_a_fine_tuned_fastnet_keeps_the_pretrained_input_normalisation_and_whitening_stem(source):
    folder, pretrained = source
    model = trainval.create_model("fastnet", num_classes=2, input_shape=(16, 16, 3), seed=1, widths=WIDTHS,
                                  weights=folder)
    images, labels = tiny_images(count=16, size=16, classes=2, seed=3)
    model.fit(images // 2, labels, epochs=1, batch_size=8, verbose=0, seed=0)  # darker images: other statistics
    after = tensors(model)
    for name in ("mean", "std", "whiten.conv.weight", "whiten.conv.bias"):
        assert torch.equal(after[name], pretrained[name]), name


@pytest.mark.parametrize("what, build, message", [
    ("other widths", dict(widths=(8, 16, 32)), "the architecture or its options differ; they are a fastnet with "
                                               "{'widths': [8, 16, 16]}: build that"),
    ("other channels", dict(widths=WIDTHS, input_shape=(16, 16, 1)), "they were trained on 3-channel images and these "
                                                                    "have 1"),
    ("another architecture", dict(name="resnet18"), "they are a fastnet"),
])
def test_weights_that_do_not_fit_are_refused_in_one_line_that_names_the_tensors_and_the_reason(source, what, build,
                                                                                              message):
    folder, _ = source
    settings = {"name": "fastnet", "input_shape": (16, 16, 3), **build}
    with pytest.raises(ModelFileError) as error:
        trainval.create_model(settings.pop("name"), num_classes=2, weights=folder, **settings)
    text = str(error.value)
    assert "do not fit" in text and message in text and "\n" not in text
    assert " there, " in text or "missing there" in text  # names a tensor and both shapes


def test_weights_files_load_as_safetensors_state_dicts_and_training_checkpoints(tmp_path, source):
    _, pretrained = source
    save_file(pretrained, tmp_path / "weights.safetensors")
    torch.save(pretrained, tmp_path / "state.pth")
    # A training script's checkpoint (timm's layout), saved from a DistributedDataParallel module.
    torch.save({"epoch": 3, "arch": "fastnet", "state_dict": {"module." + k: v for k, v in pretrained.items()}},
               tmp_path / "checkpoint.pth.tar")
    for file in ("weights.safetensors", "state.pth", "checkpoint.pth.tar"):
        model = trainval.create_model("fastnet", num_classes=3, input_shape=(16, 16, 3), widths=WIDTHS,
                                      weights=tmp_path / file)
        started = tensors(model)
        assert all(torch.equal(started[k], pretrained[k]) for k in started if k != "head.weight"), file


def test_a_pickle_that_holds_more_than_weights_is_refused_without_running_it(tmp_path, source):
    torch.save(torch.nn.Linear(2, 3), tmp_path / "whole-module.pth")  # a full pickle: loading it runs code
    (tmp_path / "not-weights.pth").write_bytes(b"hello")
    for file, message in (("whole-module.pth", "trainval loads weights only, never code"),
                          ("not-weights.pth", "is not a weights file trainval can read"),
                          ("missing.safetensors", "does not exist")):
        with pytest.raises(ModelFileError, match=message):
            trainval.create_model("fastnet", num_classes=3, input_shape=(16, 16, 3), widths=WIDTHS,
                                  weights=tmp_path / file)


class WeightsAtEpochEnds(Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, torch.Tensor]] = []
        self.rates: list[list[float]] = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append({name: p.detach().clone() for name, p in self.model.module.named_parameters()})
        self.rates.append([group["lr"] for group in self.model._compiled().optimizer.param_groups])


def test_the_new_head_learns_alone_first_then_the_body_joins_at_a_fraction_of_its_rate(source):
    folder, _ = source
    model = trainval.create_model("fastnet", num_classes=2, input_shape=(16, 16, 3), seed=1, widths=WIDTHS,
                                  weights=folder)
    before = {name: p.detach().clone() for name, p in model.module.named_parameters()}
    model.compile(optimizer=SGD(learning_rate=0.1, momentum=0.9, weight_decay=1e-3),
                  fine_tuning=FineTuning(body_lr_scale=0.25, head_only=0.5))
    watch = WeightsAtEpochEnds()
    images, labels = tiny_images(count=16, size=16, classes=2, seed=3)
    model.fit(images, labels, epochs=2, batch_size=4, verbose=0, seed=0, callbacks=[watch])  # 4 steps an epoch
    body = [name for name, p in model.module.named_parameters() if p.requires_grad and name != "head.weight"]
    first, second = watch.seen
    assert not torch.equal(first["head.weight"], before["head.weight"])
    assert all(torch.equal(first[name], before[name]) for name in body)  # the first half of the steps: head only
    assert any(not torch.equal(second[name], first[name]) for name in body)
    head_rate, *body_rates = watch.rates[1]
    assert body_rates and all(rate == pytest.approx(head_rate * 0.25) for rate in body_rates)
    assert watch.rates[0][1:] == [0.0] * len(body_rates)


def test_fine_tuning_needs_a_model_with_a_known_head_and_an_optimizer_spec(source):
    with pytest.raises(ConfigError, match="needs to know the model's head"):
        trainval.Model(torch.nn.Linear(3, 2)).compile(fine_tuning=FineTuning())
    model = trainval.create_model("fastnet", num_classes=2, input_shape=(16, 16, 3), widths=WIDTHS, weights=source[0])
    with pytest.raises(ConfigError, match="not a ready-made torch optimizer"):
        model.compile(optimizer=torch.optim.SGD(model.module.parameters(), lr=0.1), fine_tuning=FineTuning())
    for bad in (dict(body_lr_scale=0), dict(head_only=1.0)):
        with pytest.raises(ConfigError):
            FineTuning(**bad)


# --- the command line -----------------------------------------------------------------------------------------------

TINY = ["--epochs", "2", "--batch-size", "8", "--holdout-size", "3", "--verbose", "0"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A pre-trained run on a tiny CIFAR-10 (the quick preset's narrow fastnet) and a folder of new classes."""
    root = tmp_path_factory.mktemp("finetune")
    write_cifar10_folder(root / "data", train_per_batch=8, test_size=12)
    write_photos(root / "photos", per_class=10)
    done = subprocess.run([sys.executable, "-m", "trainval", "train", "--data-dir", "data", "--preset", "quick",
                           "--name", "source", *TINY], cwd=root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "XDG_CACHE_HOME": str(root / "cache")})
    assert done.returncode == 0, done.stderr
    return root


def test_init_from_a_run_fine_tunes_its_architecture_with_the_finetune_preset(world, monkeypatch, capsys):
    monkeypatch.chdir(world)
    assert main(["train", "--init-from", "runs/source", "--dataset", "folder:photos", "--name", "tuned", *TINY]) == 0
    out = capsys.readouterr().out
    assert "Preset finetune" in out and "Starting from" in out and "head.weight" in out and "Accuracy:" in out
    saved = json.loads(Path("runs/tuned/config.json").read_text())
    assert saved["config"]["init_from"] == str(world / "runs" / "source")
    assert saved["preset"]["model_options"] == {"widths": [32, 64, 128]}  # the quick preset's, from the source
    assert saved["preset"]["fine_tuning"] == {"body_lr_scale": 0.3, "head_only": 0.2}
    source, tuned = (trainval.load_model(f"runs/{name}") for name in ("source", "tuned"))
    assert tuned.class_names == ["cat", "dog", "owl"] and source.num_classes == 10
    assert torch.equal(source.module.whiten.conv.weight, tuned.module.whiten.conv.weight)


@pytest.mark.parametrize("extra, message", [
    (["--init-from", "runs/source", "--pretrained", "w.pth"], "pass one of them"),
    (["--init-from", "nowhere"], "nowhere is neither a saved model"),
    (["--pretrained", "timm"], "only timm models have, not fastnet"),
    (["--pretrained", "missing.safetensors"], "missing.safetensors does not exist"),
])
def test_starting_weights_that_cannot_be_used_are_one_line_errors_before_any_run_folder(world, monkeypatch, capsys,
                                                                                        extra, message):
    monkeypatch.chdir(world)
    assert main(["train", "--dataset", "folder:photos", "--name", "refused", *TINY, *extra]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err
    assert not (world / "runs" / "refused").exists()


def test_weights_of_another_architecture_fail_in_one_line(world, monkeypatch, capsys):
    monkeypatch.chdir(world)
    assert main(["train", "--init-from", "runs/source", "--model", "seed-cnn", "--dataset", "folder:photos",
                 *TINY]) == 1
    err = capsys.readouterr().err.strip()
    assert "do not fit seed-cnn" in err and "they are a fastnet with {'widths': [32, 64, 128]}" in err
    assert "\n" not in err


def _train(world: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "trainval", "train", "--init-from", "runs/source", "--dataset", "folder:photos",
               "--epochs", "6", "--batch-size", "4", "--holdout-size", "3", "--verbose", "0", "--checkpoint-every", "1",
               *args]
    return subprocess.Popen(command, cwd=world, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "XDG_CACHE_HOME": str(world / "cache")})


def test_a_killed_fine_tuning_run_resumes_exactly_from_its_checkpoint_not_from_the_initial_weights(world, tmp_path):
    assert _train(world, "--name", "straight").wait(timeout=300) == 0
    killed = _train(world, "--name", "killed")
    checkpoint = world / "runs" / "killed" / "checkpoints" / "last.safetensors"
    stamps: set[int] = set()
    deadline = time.monotonic() + 120
    while len(stamps) < 5 and killed.poll() is None and time.monotonic() < deadline:
        if checkpoint.exists():
            stamps.add(checkpoint.stat().st_mtime_ns)
        time.sleep(0.002)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (world / "runs" / "killed" / "result.json").exists(), "the run ended before it could be killed"
    # The source's weights change now: a resume that read them again would end elsewhere.
    weights = world / "runs" / "source" / "model" / "model.safetensors"
    original = weights.read_bytes()
    try:
        weights.write_bytes(b"overwritten")
        resumed = subprocess.run([sys.executable, "-m", "trainval", "train", "--resume", "runs/killed"], cwd=world,
                                 capture_output=True, text=True, timeout=300,
                                 env={**os.environ, "OMP_NUM_THREADS": "1", "XDG_CACHE_HOME": str(world / "cache")})
    finally:
        weights.write_bytes(original)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Resuming runs/killed" in resumed.stdout and "Starting from" not in resumed.stdout
    final = [(world / "runs" / name / "model" / "model.safetensors").read_bytes() for name in ("straight", "killed")]
    assert final[0] == final[1]


def test_a_data_parallel_fine_tuning_run_trains_in_two_processes(world):
    command = [sys.executable, "-m", "trainval", "train", "--init-from", "runs/source", "--dataset", "folder:photos",
               "--name", "ddp", *TINY, "--nproc", "2"]
    done = subprocess.run(command, cwd=world, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "XDG_CACHE_HOME": str(world / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Accuracy:") == 1 and "Data-parallel: 2 processes" in done.stdout
    source, tuned = (trainval.load_model(world / "runs" / name) for name in ("source", "ddp"))
    assert torch.equal(source.module.whiten.conv.weight, tuned.module.whiten.conv.weight)
