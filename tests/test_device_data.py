"""Data on the device: the placement a fit on a GPU chooses, forced here on the CPU so that its logic runs
in every test run. On the CPU it must train to the host placement's weights bit for bit and resume exactly;
on CUDA (tests/test_gpu.py) it keeps every step on the device."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

import trainval
from trainval.callbacks import BackupAndRestore, Lookahead
from trainval.errors import CheckpointError, ConfigError
from trainval.optimizers import SGD
from trainval.runs.state_file import read_state, write_state
from trainval.training.placement import data_device

from tiny_data import AfterSteps, TinyNet, tiny_images

# Factories that make a tensor on the CPU unless told otherwise: on a GPU each would be a host tensor.
_FACTORIES = {torch.arange, torch.randperm, torch.rand, torch.randint, torch.randn, torch.zeros, torch.ones,
              torch.full, torch.empty, torch.tensor, torch.as_tensor}


class Crash(Exception):
    pass


def crash() -> None:
    raise Crash


RECIPES = {  # name -> (augmentation, class weights)
    "alternating flips": (trainval.Augmentation(flip="alternating", translate=2), None),
    "random flips": (trainval.Augmentation(flip="random", translate=2), None),
    "no flips": (trainval.Augmentation(flip="none", translate=2), None),
    "mixed and weighted": (trainval.Augmentation(flip="random", translate=2, mixup=0.4, cutmix=1.0), "balanced"),
}


def _model(recipe: str = "alternating flips", data_on_device: bool | None = None) -> trainval.Model:
    torch.manual_seed(0)
    model = trainval.Model(TinyNet(), num_classes=4)
    model.compile(optimizer=SGD(learning_rate=0.05, momentum=0.9, nesterov=True), tta=2,
                  augmentation=RECIPES[recipe][0], data_on_device=data_on_device)
    return model


def _fit(model: trainval.Model, callbacks=(), recipe: str = "alternating flips") -> dict:
    images, labels = tiny_images(count=70, size=10)
    return model.fit(images, labels, batch_size=16, epochs=3, validation_split=0.2, seed=7, verbose=0,
                     callbacks=[Lookahead(every=2), *callbacks], class_weight=RECIPES[recipe][1]).history


def _same_weights(first: trainval.Model, second: trainval.Model) -> bool:
    pairs = zip(first.module.state_dict().items(), second.module.state_dict().items())
    return all(name == other and torch.equal(a, b) for (name, a), (other, b) in pairs)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_data_on_the_device_trains_to_the_host_placements_weights_bit_for_bit_on_the_cpu(recipe):
    host, device = _model(recipe), _model(recipe, data_on_device=True)
    assert _fit(host, recipe=recipe) == _fit(device, recipe=recipe)
    assert _same_weights(host, device)
    images, labels = tiny_images(count=30, size=10, seed=1)
    assert (host.predict(images) == device.predict(images)).all()
    assert host.evaluate(images, labels, verbose=0) == device.evaluate(images, labels, verbose=0)


@pytest.mark.parametrize("recipe, crash_after", [("alternating flips", 2), ("alternating flips", 11),
                                                 ("mixed and weighted", 6)])  # first epoch, last, middle
def test_a_fit_with_its_data_on_the_device_crashed_midway_resumes_to_the_uninterrupted_weights(tmp_path, recipe,
                                                                                              crash_after):
    straight = _model(recipe, data_on_device=True)
    history = _fit(straight, recipe=recipe)
    with pytest.raises(Crash):
        _fit(_model(recipe, data_on_device=True), [BackupAndRestore(tmp_path, save_freq=1),
                                                   AfterSteps(crash_after, crash)], recipe=recipe)
    resumed = _model(recipe, data_on_device=True)
    assert _fit(resumed, [BackupAndRestore(tmp_path, save_freq=1)], recipe=recipe) == history
    assert _same_weights(straight, resumed)


class _HostFactories(TorchFunctionMode):
    """Records every tensor factory called without a device (on a GPU, a tensor made on the host)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _FACTORIES and kwargs.get("device") is None:
            self.calls.append(func.__name__)
        return func(*args, **kwargs)


@pytest.mark.parametrize("recipe", ["alternating flips", "mixed and weighted"])
def test_every_order_index_and_random_draw_of_a_fit_with_its_data_on_the_device_is_made_on_a_device(recipe):
    model = _model(recipe, data_on_device=True)
    images, labels = tiny_images(count=40, size=10)
    with _HostFactories() as factories:
        model.fit(images, labels, batch_size=16, epochs=2, validation_split=0.2, seed=7, verbose=0,
                  class_weight=RECIPES[recipe][1])
        model.predict(images)
        model.evaluate(images, labels, verbose=0)
    assert factories.calls == []


def test_automatic_placement_keeps_data_on_the_host_of_a_cpu_and_the_switch_forces_either():
    cpu, images = torch.device("cpu"), torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    assert data_device(None, cpu, images) == cpu
    assert data_device(True, cpu, images) == cpu and data_device(False, cpu, images) == cpu
    assert _model().data_on_device is None and _model(data_on_device=True).data_on_device is True


@pytest.mark.parametrize("value", ["yes", 1, 0.0])
def test_data_on_device_other_than_true_false_or_none_is_a_config_error(value):
    with pytest.raises(ConfigError, match="data_on_device True, False or None"):
        trainval.Model(TinyNet(), num_classes=4).compile(data_on_device=value)


def test_a_checkpoint_whose_data_lived_on_another_kind_of_device_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(Crash):
        _fit(_model(), [BackupAndRestore(tmp_path, save_freq=1), AfterSteps(3, crash)])
    state = read_state(tmp_path / "last.safetensors")
    assert state["fit"]["data_device"] == "cpu"
    state["fit"]["data_device"] = "cuda"
    write_state(tmp_path / "last.safetensors", state)
    with pytest.raises(CheckpointError, match="data lived on cuda, and this fit's lives on cpu.*kind of device"):
        _fit(_model(), [BackupAndRestore(tmp_path, save_freq=1)])


def test_a_checkpoint_from_before_data_could_live_on_a_device_still_resumes_exactly(tmp_path):
    straight = _model()
    history = _fit(straight)
    with pytest.raises(Crash):
        _fit(_model(), [BackupAndRestore(tmp_path, save_freq=1), AfterSteps(5, crash)])
    state = read_state(tmp_path / "last.safetensors")
    del state["fit"]["data_device"]  # as trainval wrote it before
    write_state(tmp_path / "last.safetensors", state)
    resumed = _model()
    assert _fit(resumed, [BackupAndRestore(tmp_path, save_freq=1)]) == history
    assert _same_weights(straight, resumed)
