"""fit / evaluate / predict / save behave as Keras users expect."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch

import trainval
from trainval import Callback, Model
from trainval.data.splits import holdout_split
from trainval.errors import ConfigError, InputError, ModelFileError
from trainval.optimizers import SGD
from tiny_data import TinyNet, tiny_images


def tiny_model(seed: int = 0, **kwargs) -> Model:
    torch.manual_seed(seed)
    return Model(TinyNet(), device="cpu", **kwargs)


def weights_of(model: Model) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in model.module.state_dict().items()}


class StepCounter(Callback):
    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []
        self.seen_at_end: list[int] = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(batch)
        self.seen_at_end.append(logs["seen"])


def test_fit_trains_on_the_last_partial_batch_and_every_sample():
    x, y = tiny_images(count=23)
    counter = StepCounter()
    tiny_model().fit(x, y, batch_size=5, epochs=2, verbose=0, callbacks=[counter])
    assert counter.steps == [0, 1, 2, 3, 4] * 2  # 5 + 5 + 5 + 5 + 3
    assert counter.seen_at_end[4] == 23


def test_a_lone_last_sample_joins_the_previous_batch_so_batchnorm_never_sees_one():
    x, y = tiny_images(count=21)
    counter = StepCounter()
    history = tiny_model().fit(x, y, batch_size=5, epochs=1, verbose=0, callbacks=[counter])
    assert counter.steps == [0, 1, 2, 3]
    assert counter.seen_at_end[-1] == 21
    assert np.isfinite(history.history["loss"][0])


def test_history_has_the_tutorial_keys_per_epoch():
    x, y = tiny_images()
    history = tiny_model().fit(x, y, epochs=3, batch_size=8, validation_data=(x[:8], y[:8]), verbose=0)
    assert set(history.history) == {"loss", "acc", "val_loss", "val_acc"}
    assert all(len(values) == 3 for values in history.history.values())
    assert history.epoch == [0, 1, 2]
    assert all(0.0 <= acc <= 1.0 for acc in history.history["val_acc"])


def test_no_validation_means_no_val_keys():
    x, y = tiny_images()
    history = tiny_model().fit(x, y, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "acc"}


def test_initial_epoch_runs_only_the_remaining_epochs():
    x, y = tiny_images()
    history = tiny_model().fit(x, y, epochs=3, initial_epoch=2, verbose=0)
    assert history.epoch == [2]


def test_same_seed_gives_identical_history_and_weights():
    x, y = tiny_images()
    runs = []
    for _ in range(2):
        model = trainval.create_model("seed-cnn", num_classes=4, input_shape=(12, 12, 3), seed=7, device="cpu")
        history = model.fit(x, y, batch_size=8, epochs=2, validation_split=0.25, seed=3, verbose=0)
        runs.append((history.history, weights_of(model)))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])


def test_different_seeds_give_different_weights():
    x, y = tiny_images()
    weights = []
    for seed in (1, 2):
        model = trainval.create_model("seed-cnn", num_classes=4, input_shape=(12, 12, 3), seed=seed, device="cpu")
        model.fit(x, y, batch_size=8, epochs=1, seed=seed, verbose=0)
        weights.append(weights_of(model))
    assert not all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.parametrize("convert", [
    pytest.param(lambda x, y: (x, y), id="nhwc-uint8-int"),
    pytest.param(lambda x, y: (x.transpose(0, 3, 1, 2).copy(), y), id="nchw"),
    pytest.param(lambda x, y: (x.astype(np.float32) / 255, y), id="float-0-1"),
    pytest.param(lambda x, y: (x, y.reshape(-1, 1).astype(np.uint8)), id="labels-n-1"),
    pytest.param(lambda x, y: (x, np.eye(4, dtype=np.float32)[y]), id="one-hot"),
])
def test_every_input_convention_trains_to_the_same_weights(convert):
    x, y = tiny_images()
    reference = tiny_model()
    reference.compile(precision="fp32")
    reference.fit(x, y, batch_size=8, epochs=1, seed=0, verbose=0)
    model = tiny_model()
    model.compile(precision="fp32")
    model.fit(*convert(x, y), batch_size=8, epochs=1, seed=0, verbose=0)
    expected = weights_of(reference)
    assert all(torch.allclose(expected[k].float(), v.float(), atol=1e-6) for k, v in weights_of(model).items())


def test_validation_split_is_stratified_not_the_last_rows(monkeypatch):
    x, y = tiny_images(count=40)
    y = np.sort(y)  # the last rows are all one class: Keras's split would validate on class 3 only

    class Params(Callback):
        def on_train_begin(self, logs=None):
            self.seen = dict(self.params)

    probe = Params()
    splits = []

    def recording_split(labels, size, seed):
        splits.append(holdout_split(labels, size, seed))
        return splits[-1]

    monkeypatch.setattr(trainval.model, "holdout_split", recording_split)
    tiny_model().fit(x, y, epochs=1, validation_split=0.2, verbose=0, callbacks=[probe], seed=0)
    assert probe.seen["val_samples"] == 8 and probe.seen["samples"] == 32
    _, val_idx = splits[0]
    assert np.array_equal(np.bincount(y[val_idx]), [2, 2, 2, 2])


def test_evaluate_scores_every_sample_with_a_partial_batch():
    x, y = tiny_images(count=11)
    model = tiny_model()
    model.compile(precision="fp32")
    probabilities = model.predict(x, batch_size=4)
    loss, acc = model.evaluate(x, y, batch_size=4, verbose=0)
    expected_acc = float((probabilities.argmax(1) == y).mean())
    expected_loss = float(-np.log(probabilities[np.arange(11), y]).mean())
    assert acc == pytest.approx(expected_acc)
    assert loss == pytest.approx(expected_loss, rel=1e-4)


def test_predict_returns_probabilities_and_classes():
    x, y = tiny_images(count=9)
    model = tiny_model()
    probabilities = model.predict(x)
    assert probabilities.shape == (9, 4) and probabilities.dtype == np.float32
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(model.predict_classes(x), probabilities.argmax(axis=1))


def test_num_classes_and_input_shape_are_found_from_the_module_and_data():
    x, _ = tiny_images()
    model = tiny_model()
    model.predict(x)
    assert model.num_classes == 4 and model.input_shape == (12, 12, 3)


def test_save_and_load_give_identical_predictions(tmp_path):
    x, y = tiny_images()
    model = trainval.create_model("seed-cnn", num_classes=4, input_shape=(12, 12, 3), seed=0,
                                  class_names=["a", "b", "c", "d"], device="cpu")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, seed=0)
    model.save(tmp_path / "saved")
    loaded = trainval.load_model(tmp_path / "saved", device="cpu")
    assert loaded.class_names == ["a", "b", "c", "d"] and loaded.input_shape == (12, 12, 3)
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["model.json", "model.safetensors"]


def test_a_saved_model_keeps_its_selective_tta(tmp_path):
    x, y = tiny_images()
    model = trainval.create_model("seed-cnn", num_classes=4, input_shape=(12, 12, 3), seed=0, device="cpu")
    model.compile(optimizer="sgd", tta=2, tta_fraction=0.25)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, seed=0)
    model.save(tmp_path / "saved")
    loaded = trainval.load_model(tmp_path / "saved", device="cpu")
    assert (loaded.tta, loaded.tta_fraction) == (2, 0.25)
    assert np.array_equal(loaded.predict(x), model.predict(x))


def test_a_custom_module_loads_only_when_given_back(tmp_path):
    x, y = tiny_images()
    model = tiny_model()
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "custom")
    with pytest.raises(ModelFileError, match="module=MyNet"):
        trainval.load_model(tmp_path / "custom")
    loaded = trainval.load_model(tmp_path / "custom", module=TinyNet(), device="cpu")
    assert np.array_equal(loaded.predict(x), model.predict(x))
    with pytest.raises(ModelFileError, match="do not fit this architecture"):
        trainval.load_model(tmp_path / "custom", module=TinyNet(classes=5), device="cpu")


def test_compile_with_an_optimizer_spec_sets_the_keras_decay_schedule():
    x, y = tiny_images(count=16)
    model = tiny_model()
    model.compile(optimizer=SGD(learning_rate=0.1, momentum=0.9, nesterov=True, decay=0.5))
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # updates 0..3; Keras: update t uses 0.1 / (1 + 0.5 t)
    assert model._compiled().optimizer.param_groups[0]["lr"] == pytest.approx(0.1 / (1 + 0.5 * 3))


def test_verbose_2_prints_one_keras_line_per_epoch(capsys):
    x, y = tiny_images(count=20)
    tiny_model().fit(x, y, batch_size=10, epochs=2, validation_data=(x, y), verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "Train on 20 samples, validate on 20 samples"
    assert lines[1] == "Epoch 1/2" and lines[3] == "Epoch 2/2"
    pattern = (r"^20/20 \[={30}\] - \d+s \d+ms/step - loss: \d+\.\d{4} - acc: \d\.\d{4}"
               r" - val_loss: \d+\.\d{4} - val_acc: \d\.\d{4}$")
    assert re.match(pattern, lines[2]) and re.match(pattern, lines[4])


def test_verbose_0_prints_nothing(capsys):
    x, y = tiny_images(count=20)
    tiny_model().fit(x, y, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_verbose_1_draws_a_bar_that_ends_with_the_epoch_metrics(capsys):
    x, y = tiny_images(count=20)
    tiny_model().fit(x, y, batch_size=10, epochs=1, validation_data=(x, y), verbose=1)
    out = capsys.readouterr().out
    final = out.replace("\r", "\n").strip().splitlines()[-1]
    assert re.match(r"^20/20 \[=+\] - \d+s \d+ms/step - loss: .* - val_acc: \d\.\d{4}$", final), final


@pytest.mark.parametrize("call, message", [
    (lambda m, x, y: m.fit(x, y, batch_size=0, verbose=0), "batch_size"),
    (lambda m, x, y: m.fit(x, y, epochs=-1, verbose=0), "epochs"),
    (lambda m, x, y: m.fit(x, y, validation_split=1.5, verbose=0), "validation_split"),
    (lambda m, x, y: m.fit(x, y[:-1], verbose=0), "labels but there are"),
    (lambda m, x, y: m.fit(x, y + 10, verbose=0), "classes"),
    (lambda m, x, y: m.fit(x.astype(np.float32), y, verbose=0), r"\[0, 1\]"),
    (lambda m, x, y: m.fit(np.full(x.shape, np.nan, np.float32), y, verbose=0), "NaN"),
    (lambda m, x, y: m.fit(x[:, :, :, 0:2], y, verbose=0), "channels"),
    (lambda m, x, y: m.fit(x, None, verbose=0), "y is missing"),
    (lambda m, x, y: m.fit(x, y, validation_data=(x,), verbose=0), "validation_data"),
    (lambda m, x, y: m.fit(x, np.full((len(y), 4), 0.5), verbose=0), "one-hot"),
    (lambda m, x, y: m.fit(x, y, verbose=7), "verbose"),
    (lambda m, x, y: m.compile(optimizer="rmsprop-ish"), "optimizer"),
    (lambda m, x, y: m.compile(loss="hinge"), "loss"),
    (lambda m, x, y: m.compile(precision="fp8"), "precision"),
])
def test_bad_arguments_raise_a_clear_value_error(call, message):
    x, y = tiny_images()
    with pytest.raises(ValueError, match=message):
        call(tiny_model(), x, y)


def test_input_errors_name_the_argument():
    x, y = tiny_images()
    model = tiny_model()
    with pytest.raises(InputError, match=r"validation_data\[1\]"):
        model.fit(x, y, validation_data=(x, y[:3]), verbose=0)
    with pytest.raises(ConfigError):
        trainval.create_model("no-such-model")


def test_reversed_and_read_only_arrays_are_accepted_without_touching_them():
    x, y = tiny_images()
    reversed_channels = x[..., ::-1]
    read_only = x.copy()
    read_only.setflags(write=False)
    model = tiny_model()
    model.compile(precision="fp32")
    expected = model.predict(np.ascontiguousarray(reversed_channels))
    assert np.array_equal(model.predict(reversed_channels), expected)
    model.fit(read_only, y, epochs=1, verbose=0)
    assert np.array_equal(read_only, x)


def test_a_module_working_in_place_never_writes_into_the_callers_images():
    class InPlace(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(12 * 12 * 3, 4)

        def forward(self, inputs):
            inputs.mul_(0.5)
            return self.head(inputs.flatten(1))

    x, y = tiny_images()
    floats = x.astype(np.float32) / 255
    before = floats.copy()
    model = Model(InPlace(), device="cpu")
    model.fit(floats, y, epochs=1, verbose=0)
    model.predict(floats)
    assert np.array_equal(floats, before)


def test_compile_tta_changes_what_evaluate_and_predict_average():
    x, y = tiny_images(count=16)
    model = tiny_model()
    model.compile(precision="fp32", tta=0)
    plain = model.predict(x)
    model.compile(precision="fp32", tta=1)
    averaged = model.predict(x)
    mirrored = tiny_model()
    mirrored.module.load_state_dict(model.module.state_dict())
    mirrored.compile(precision="fp32")
    expected_logits = (torch.log(torch.from_numpy(plain)) + torch.log(torch.from_numpy(mirrored.predict(x[:, :, ::-1]))))
    assert not np.allclose(plain, averaged)
    assert np.allclose(averaged, torch.softmax(expected_logits / 2, dim=1).numpy(), atol=1e-5)


def test_predict_checks_its_verbose_argument():
    x, _ = tiny_images(count=4)
    with pytest.raises(ConfigError, match="verbose"):
        tiny_model().predict(x, verbose=9)


def test_unknown_model_options_and_negative_seeds_are_config_errors():
    with pytest.raises(ConfigError, match="takes the options widths"):
        trainval.create_model("fastnet", depth_multiplier=3)
    with pytest.raises(ConfigError, match="seed"):
        trainval.create_model("seed-cnn", seed=-1)
    x, y = tiny_images()
    with pytest.raises(ConfigError, match="seed"):
        tiny_model().fit(x, y, seed=-5, verbose=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_cuda_without_a_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        Model(TinyNet(), device="cuda")


def test_weights_from_another_save_are_refused(tmp_path):
    x, y = tiny_images()
    first = trainval.create_model("seed-cnn", num_classes=4, input_shape=(12, 12, 3), seed=0, device="cpu")
    second = trainval.create_model("seed-cnn", num_classes=4, input_shape=(12, 12, 3), seed=1, device="cpu")
    first.save(tmp_path / "a")
    second.save(tmp_path / "b")
    (tmp_path / "a" / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())
    with pytest.raises(ModelFileError, match="not the file"):
        trainval.load_model(tmp_path / "a")


def test_saved_files_get_the_usual_permissions(tmp_path):
    trainval.create_model("seed-cnn", num_classes=4, input_shape=(12, 12, 3), device="cpu").save(tmp_path / "m")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m" / "model.json").stat().st_mode & 0o777 == 0o666 & ~umask
