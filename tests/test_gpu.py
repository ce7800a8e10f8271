"""The CUDA path, on a CUDA GPU: ``pytest -m gpu`` (``benchmarks/gpu_check.sh`` runs these first).
Skipped, with the reason, where torch sees no CUDA GPU (see conftest.py), so CPU runs stay green.

Stated tolerances. CUDA against the CPU, fp32 with TF32 off, after 8 updates of a small network
(``_fit_on``): weights within rtol 1e-3 + atol 1e-4, losses within 1e-3 relative, probabilities
within 1e-4, accuracies within 2 images. Compiled against eager on CUDA: the same bounds. The data
on the GPU against the data on the host, same weights: probabilities within 1e-6. Exact resume
on CUDA, under torch's deterministic algorithms: bit for bit. One process under torchrun and NCCL
against one without: within 1e-6.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import trainval
from trainval.callbacks import Callback, Lookahead
from trainval.errors import TrainingDiverged
from trainval.export import check_onnx, export_model
from trainval.optimizers import SGD, Adam, resolve_optimizer
from trainval.presets import get as get_preset

from cuda_worker import DeterministicNet
from tiny_data import PoisonedAfter, tiny_images

pytestmark = pytest.mark.gpu

CUDA = torch.device("cuda")
TESTS = Path(__file__).parent
WORKER = TESTS / "cuda_worker.py"


@pytest.fixture
def exact_fp32(monkeypatch):
    """fp32 convolutions in full fp32: torch lets cuDNN round them to TF32 by default (matrix products it
    keeps in fp32 by default)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


def _fit_on(device: str, data_on_device: bool | None, compile: bool = False,
            callbacks: list[Callback] | None = None) -> tuple[trainval.Model, dict]:
    torch.manual_seed(0)
    model = trainval.Model(DeterministicNet(dropout=0.0), num_classes=4, device=device)
    model.compile(optimizer=SGD(learning_rate=0.05, momentum=0.9, nesterov=True), precision="fp32", tta=2,
                  augmentation=trainval.Augmentation(flip="alternating", translate=2), compile=compile,
                  data_on_device=data_on_device)
    images, labels = tiny_images(count=80, size=10)  # 64 to train on: 4 steps an epoch
    history = model.fit(images, labels, batch_size=16, epochs=2, validation_split=0.2, seed=3, verbose=0,
                        callbacks=callbacks or [])
    return model, history.history


def _assert_close_weights(first: trainval.Model, second: trainval.Model, tolerance: float = 1e-3) -> None:
    for (name, a), (_, b) in zip(first.module.state_dict().items(), second.module.state_dict().items()):
        torch.testing.assert_close(a.cpu(), b.cpu(), rtol=tolerance, atol=tolerance / 10, msg=lambda m: f"{name}: {m}")


def _assert_close_histories(first: dict, second: dict, samples: int) -> None:
    assert first.keys() == second.keys()
    for key in first:
        if key.endswith("acc"):  # an image on the decision boundary may fall either way
            assert first[key] == pytest.approx(second[key], abs=2 / samples), key
        else:
            assert first[key] == pytest.approx(second[key], rel=1e-3), key


def test_fit_evaluate_and_predict_on_cuda_agree_with_the_cpu_within_the_stated_tolerance(exact_fp32):
    on_cpu, cpu_history = _fit_on("cpu", None)
    on_gpu, gpu_history = _fit_on("cuda", False)  # data on the host: the CPU generator's shuffles and shifts
    _assert_close_weights(on_cpu, on_gpu)
    _assert_close_histories(cpu_history, gpu_history, samples=16)
    images, labels = tiny_images(count=50, size=10, seed=1)
    np.testing.assert_allclose(on_gpu.predict(images), on_cpu.predict(images), rtol=0, atol=1e-4)
    (cpu_loss, cpu_acc), (gpu_loss, gpu_acc) = on_cpu.evaluate(images, labels, verbose=0), \
        on_gpu.evaluate(images, labels, verbose=0)
    assert gpu_loss == pytest.approx(cpu_loss, rel=1e-3) and gpu_acc == pytest.approx(cpu_acc, abs=2 / 50)


class DataDevice(Callback):
    """Notes where the fit's data (and its random generator) lived, from the training state."""

    def on_epoch_end(self, epoch, logs=None):
        self.seen = self.model.training_state()["fit"]["data_device"]


def test_on_cuda_the_data_goes_to_the_gpu_by_itself_and_predicts_as_from_the_host(exact_fp32):
    where = DataDevice()
    model, history = _fit_on("cuda", None, callbacks=[where])
    assert where.seen == "cuda" and all(np.isfinite(values).all() for values in history.values())
    images, _ = tiny_images(count=50, size=10, seed=1)
    from_gpu = model.predict(images)
    model.data_on_device = False
    np.testing.assert_allclose(model.predict(images), from_gpu, rtol=0, atol=1e-6)


class SyncForbidden(Callback):
    """Makes any wait for the GPU an error from the end of each epoch's first step to the end of its last
    (the NaN guard and the epoch's metrics read the device at the epoch's end, as they may)."""

    def on_train_batch_end(self, batch, logs=None):
        torch.cuda.set_sync_debug_mode("default" if batch == self.params["steps"] - 1 else "error")

    def on_train_end(self, logs=None):
        torch.cuda.set_sync_debug_mode("default")


def test_a_training_step_of_the_94_recipe_on_cuda_never_waits_for_the_gpu():
    preset = replace(get_preset("94").with_overrides(batch_size=32), model_options={"widths": (16, 32, 32)})
    model = preset.build_model(4, (16, 16, 3), seed=0)
    images, labels = tiny_images(count=128, size=16)  # batch 32: 4 equal steps an epoch, no new shape to tune
    try:
        history = model.fit(images, labels, batch_size=32, epochs=2, seed=0, verbose=0,
                            callbacks=[Lookahead(every=2), SyncForbidden()])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(history.history["loss"]) == 2


def test_the_nan_guard_on_cuda_waits_for_the_epochs_end_and_names_the_first_bad_step():
    torch.manual_seed(0)
    model = trainval.Model(PoisonedAfter(steps=3), num_classes=4, device="cuda")
    images, labels = tiny_images(count=40, size=8)
    try:
        with pytest.raises(TrainingDiverged, match=r"loss was not finite at epoch 1, step 3;"):
            model.fit(images, labels, batch_size=4, epochs=2, seed=0, verbose=0, callbacks=[SyncForbidden()])
    finally:
        torch.cuda.set_sync_debug_mode("default")


class CaptureAndRestore(Callback):
    """At the start of training: takes the training state, draws on the GPU, restores, draws again."""

    def on_train_begin(self, logs=None):
        self.state = self.model.training_state()
        self.first = torch.rand(8, device="cuda")
        self.model.load_training_state(self.state)
        self.again = torch.rand(8, device="cuda")


def test_the_training_state_captures_and_restores_the_gpus_random_state():
    capture = CaptureAndRestore()
    torch.manual_seed(0)
    model = trainval.Model(DeterministicNet(), num_classes=4, device="cuda")
    images, labels = tiny_images(count=32, size=8)
    model.fit(images, labels, batch_size=8, epochs=1, seed=0, verbose=0, callbacks=[capture])
    assert torch.equal(capture.first, capture.again)
    assert capture.state["rng"]["cuda"].dtype == torch.uint8 and capture.state["fit"]["data_device"] == "cuda"


def _python_path(*folders: Path) -> str:
    """PYTHONPATH for a child process: ``folders``, then this trainval's source, then what was there."""
    paths = [*folders, Path(trainval.__file__).parents[1], *filter(None, [os.environ.get("PYTHONPATH")])]
    return os.pathsep.join(str(path) for path in paths)


def _run_worker(*args: str, torchrun: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "PYTHONPATH": _python_path(TESTS)}
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1"] if torchrun else []
    return subprocess.run([sys.executable, *launcher, str(WORKER), *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def lone_fit(tmp_path_factory) -> dict:
    """The worker's fit in a process started without torchrun, uninterrupted: what it saved."""
    out = tmp_path_factory.mktemp("lone") / "lone.pt"
    done = _run_worker(str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out)


def test_a_cuda_fit_killed_midway_resumes_to_the_uninterrupted_weights_bit_for_bit(tmp_path, lone_fit):
    killed = _run_worker(str(tmp_path / "resumed.pt"), "--backup", str(tmp_path / "backup"), "--kill-at", "5")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (tmp_path / "backup" / "last.safetensors").exists() and not (tmp_path / "resumed.pt").exists()
    resumed = _run_worker(str(tmp_path / "resumed.pt"), "--backup", str(tmp_path / "backup"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, got = lone_fit, torch.load(tmp_path / "resumed.pt")
    assert got["history"] == expected["history"]
    for name, tensor in expected["weights"].items():
        assert torch.equal(got["weights"][name], tensor), name


def test_one_process_under_torchrun_trains_over_nccl_as_a_lone_process_does(tmp_path, lone_fit):
    grouped = _run_worker(str(tmp_path / "grouped.pt"), torchrun=True)
    assert grouped.returncode == 0, grouped.stderr[-3000:]
    expected, got = lone_fit, torch.load(tmp_path / "grouped.pt")
    assert (expected["backend"], got["backend"]) == ("none", "nccl")
    for name, tensor in expected["weights"].items():
        torch.testing.assert_close(got["weights"][name], tensor, rtol=0, atol=1e-6)


def test_trainval_train_under_torchrun_on_one_gpu_runs_end_to_end_over_nccl(cifar_dir, tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1", "-m", "trainval",
               "train", "--data-dir", str(cifar_dir), "--preset", "quick", "--epochs", "2", "--batch-size", "8",
               "--holdout-size", "10", "--verbose", "2", "--name", "nccl"]
    env = {**os.environ, "PYTHONPATH": _python_path()}
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Data-parallel: 1 process (nccl)" in done.stdout and done.stdout.count("Accuracy:") == 1
    result = json.loads((tmp_path / "runs" / "nccl" / "result.json").read_text())
    assert result["device"] == "cuda" and result["epochs_trained"] == 2
    assert trainval.load_model(tmp_path / "runs" / "nccl").num_classes == 10


@pytest.mark.parametrize("flip", ["alternating", "random"])
def test_augmenting_on_the_gpu_gives_the_cpus_images_for_the_same_generator_state(flip):
    images = torch.randint(0, 256, (32, 3, 12, 12), dtype=torch.uint8)
    indices = torch.randperm(32)
    generator = torch.Generator(device="cuda")
    generator.manual_seed(5)
    bound = trainval.Augmentation(flip=flip, translate=2).bind(32, generator)
    state = generator.get_state()
    on_gpu = bound(images.to(CUDA), indices.to(CUDA), epoch=1)
    generator.set_state(state)
    on_cpu = bound(images, indices, epoch=1)  # the same draws, taken on the GPU and applied on the CPU
    assert on_gpu.device.type == "cuda" and on_cpu.device.type == "cpu"
    assert torch.equal(on_gpu.cpu(), on_cpu)


def test_a_cuda_generator_draws_other_numbers_than_the_cpus_from_the_same_seed_as_documented():
    on_cpu = torch.randperm(1000, generator=torch.Generator().manual_seed(0))
    on_gpu = torch.randperm(1000, generator=torch.Generator(device="cuda").manual_seed(0), device="cuda")
    assert not torch.equal(on_cpu, on_gpu.cpu())


def test_on_cuda_sgd_and_adam_take_fused_steps_and_cudnn_picks_its_fastest_algorithms(monkeypatch):
    module = DeterministicNet().to(CUDA)
    for spec in (SGD(momentum=0.9, nesterov=True), Adam()):
        assert resolve_optimizer(spec, module)[0].defaults["fused"] is True
    assert not resolve_optimizer(SGD(momentum=0.9), DeterministicNet())[0].defaults.get("fused")
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    torch.use_deterministic_algorithms(True)
    try:
        trainval.Model(DeterministicNet(), num_classes=4, device="cuda").compile()
        assert torch.backends.cudnn.benchmark is False  # timing algorithms would undo the determinism asked for
    finally:
        torch.use_deterministic_algorithms(False)
    trainval.Model(DeterministicNet(), num_classes=4, device="cuda").compile()
    assert torch.backends.cudnn.benchmark is True


def test_a_compiled_fit_on_cuda_agrees_with_the_eager_one_and_reports_its_compile_time(exact_fp32):
    torch._dynamo.reset()
    eager, eager_history = _fit_on("cuda", None)
    compiled, compiled_history = _fit_on("cuda", None, compile=True)
    _assert_close_weights(eager, compiled)
    _assert_close_histories(eager_history, compiled_history, samples=16)
    assert compiled.compile_seconds > 0.0 and eager.compile_seconds == 0.0


def test_a_model_trained_on_cuda_exports_to_onnx_that_predicts_as_it_does(tmp_path, exact_fp32):
    pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript: pip install 'trainval[onnx]'")
    pytest.importorskip("onnxruntime", reason="checking the export needs onnxruntime: pip install 'trainval[onnx]'")
    model, _ = _fit_on("cuda", None)
    images, _ = tiny_images(count=20, size=10, seed=2)
    before = model.predict(images)
    check = check_onnx(model, export_model(model, tmp_path / "model.onnx", "onnx"), images)
    assert check.same_top1 == check.images == 20 and check.max_probability_difference < 1e-4
    assert next(model.module.parameters()).is_cuda  # the export left the model on its GPU
    np.testing.assert_allclose(model.predict(images), before, rtol=0, atol=1e-6)
