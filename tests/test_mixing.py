"""MixUp and CutMix: what a mixed batch holds, the loss against its soft labels, and seeded, exact resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import trainval
from trainval.callbacks import BackupAndRestore, Callback
from trainval.data.augment import Augmentation
from trainval.data.mixing import draw_mix
from trainval.errors import ConfigError
from trainval.presets import Preset
from trainval.optimizers import SGD
from trainval.training.losses import CategoricalCrossentropy
from trainval.training.targets import BatchTargets

from tiny_data import TinyNet, tiny_images


def images(count: int = 6, size: int = 8) -> torch.Tensor:
    return torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(1))


def test_no_mixing_draws_nothing_and_leaves_the_generator_untouched():
    generator = torch.Generator().manual_seed(3)
    before = generator.get_state()
    assert draw_mix(0.0, 0.0, 8, 4, 4, generator) is None
    assert torch.equal(generator.get_state(), before)


def test_mixup_blends_each_image_with_its_partner_by_the_drawn_share():
    batch = images()
    mix = draw_mix(0.4, 0.0, len(batch), 8, 8, torch.Generator().manual_seed(0))
    assert mix.box is None and 0.0 <= mix.share <= 1.0
    assert sorted(mix.partner.tolist()) == list(range(len(batch)))
    mixed = mix.apply(batch.clone(), batch[mix.partner])
    torch.testing.assert_close(mixed, mix.share * batch + (1 - mix.share) * batch[mix.partner])


@pytest.mark.parametrize("seed", range(6))
def test_cutmix_pastes_the_partners_box_and_the_share_is_what_lies_outside_it(seed):
    batch = images(size=12)
    mix = draw_mix(0.0, 1.0, len(batch), 12, 12, torch.Generator().manual_seed(seed))
    top, bottom, left, right = mix.box
    assert 0 <= top <= bottom <= 12 and 0 <= left <= right <= 12
    mixed = mix.apply(batch.clone(), batch[mix.partner])
    inside = torch.zeros(12, 12, dtype=torch.bool)
    inside[top:bottom, left:right] = True
    assert torch.equal(mixed[:, :, inside], batch[mix.partner][:, :, inside])
    assert torch.equal(mixed[:, :, ~inside], batch[:, :, ~inside])
    assert mix.share == pytest.approx(1 - inside.float().mean().item())


def test_with_both_on_each_batch_takes_one_of_them():
    generator = torch.Generator().manual_seed(0)
    kinds = {draw_mix(0.4, 1.0, 4, 8, 8, generator).box is None for _ in range(40)}
    assert kinds == {True, False}


def test_the_same_generator_state_draws_the_same_mix():
    first = draw_mix(0.4, 1.0, 16, 8, 8, torch.Generator().manual_seed(9))
    second = draw_mix(0.4, 1.0, 16, 8, 8, torch.Generator().manual_seed(9))
    assert torch.equal(first.partner, second.partner) and first.share == second.share and first.box == second.box


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_the_mixed_loss_is_cross_entropy_against_the_smoothed_soft_label(smoothing):
    torch.manual_seed(0)
    classes, share = 5, 0.3
    logits = torch.randn(7, classes, dtype=torch.float64) * 2
    own, partner = torch.randint(0, classes, (7,)), torch.randint(0, classes, (7,))
    soft = share * F.one_hot(own, classes).double() + (1 - share) * F.one_hot(partner, classes).double()
    smoothed = (1 - smoothing) * soft + smoothing / classes
    expected = -(smoothed * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    targets = BatchTargets(own).mixed_with(BatchTargets(partner), share)
    got = targets.loss(CategoricalCrossentropy(smoothing), logits)
    assert float(got) == pytest.approx(float(expected), rel=1e-12)


def test_each_part_of_a_mixed_loss_carries_the_weight_of_the_image_it_came_from():
    torch.manual_seed(1)
    logits = torch.randn(4, 3, dtype=torch.float64)
    own, partner = torch.tensor([0, 1, 2, 0]), torch.tensor([2, 2, 1, 0])
    own_weights = torch.tensor([1.0, 2.0, 0.5, 0.0], dtype=torch.float64)
    partner_weights = torch.tensor([0.5, 0.5, 2.0, 1.0], dtype=torch.float64)
    share = 0.7
    per_sample = lambda classes: F.cross_entropy(logits, classes, reduction="none")  # noqa: E731
    expected = (share * own_weights * per_sample(own) + (1 - share) * partner_weights * per_sample(partner)).sum() / 4
    targets = BatchTargets(own, own_weights).mixed_with(BatchTargets(partner, partner_weights), share)
    assert float(targets.loss(F.cross_entropy, logits)) == pytest.approx(float(expected), rel=1e-12)


def test_accuracy_counts_against_the_label_with_the_larger_share():
    own, partner = torch.tensor([0, 1]), torch.tensor([1, 0])
    assert torch.equal(BatchTargets(own).mixed_with(BatchTargets(partner), 0.6).dominant_classes, own)
    assert torch.equal(BatchTargets(own).mixed_with(BatchTargets(partner), 0.4).dominant_classes, partner)


@pytest.mark.parametrize("options", [{"mixup": -0.1}, {"cutmix": float("inf")}, {"mixup": True}, {"cutmix": "1"}])
def test_augmentation_refuses_a_mixing_concentration_that_is_not_a_number_at_least_0(options):
    with pytest.raises(ConfigError, match="Beta concentration"):
        Augmentation(**options)


def _mixing_model() -> trainval.Model:
    torch.manual_seed(0)
    model = trainval.Model(TinyNet(), num_classes=4)
    model.compile(optimizer=SGD(learning_rate=0.05, momentum=0.9), loss=CategoricalCrossentropy(0.1),
                  augmentation=Augmentation(flip="random", translate=1, mixup=0.4, cutmix=1.0))
    return model


def _weights(model: trainval.Model) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in model.module.state_dict().items()}


def test_a_mixed_fit_repeats_exactly_with_the_same_seed_and_differs_from_an_unmixed_one():
    x, y = tiny_images(count=40, size=8)
    runs = [_mixing_model() for _ in range(2)]
    histories = [model.fit(x, y, batch_size=8, epochs=2, seed=4, verbose=0).history for model in runs]
    assert histories[0] == histories[1]
    for name, value in _weights(runs[0]).items():
        assert torch.equal(value, _weights(runs[1])[name]), name
    torch.manual_seed(0)
    plain = trainval.Model(TinyNet(), num_classes=4)
    plain.compile(optimizer=SGD(learning_rate=0.05, momentum=0.9), loss=CategoricalCrossentropy(0.1),
                  augmentation=Augmentation(flip="random", translate=1))
    assert plain.fit(x, y, batch_size=8, epochs=2, seed=4, verbose=0).history["loss"] != histories[0]["loss"]


class Crash(Exception):
    pass


class CrashAfter(Callback):
    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps, self.done = steps, 0

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done == self.steps:
            raise Crash


@pytest.mark.parametrize("crash_after", [2, 5])
def test_a_mixed_and_class_weighted_fit_resumes_to_the_uninterrupted_weights(tmp_path, crash_after):
    x, y = tiny_images(count=42, size=8)
    keep = np.concatenate([np.flatnonzero(y != 3), np.flatnonzero(y == 3)[:3]])  # class 3 is rare
    x, y = x[keep], y[keep]

    def fit(folder, crash: int | None = None) -> trainval.Model:
        model = _mixing_model()
        callbacks = [BackupAndRestore(folder, save_freq=1, delete_checkpoint=False)]
        callbacks += [CrashAfter(crash)] if crash else []
        model.fit(x, y, batch_size=8, epochs=2, seed=2, verbose=0, class_weight="balanced", callbacks=callbacks)
        return model

    straight = fit(tmp_path / "straight")
    with pytest.raises(Crash):
        fit(tmp_path / "resumed", crash_after)
    resumed = fit(tmp_path / "resumed")
    assert resumed.history.history == straight.history.history
    for name, value in _weights(straight).items():
        assert torch.equal(value, _weights(resumed)[name]), name


def test_a_preset_can_carry_mixing_into_the_model_it_builds():
    preset = Preset(name="mixed", description="fastnet with MixUp and CutMix", model="fastnet", epochs=1,
                    batch_size=16, optimizer=SGD(learning_rate=0.1), model_options={"widths": (8, 8, 8)},
                    augmentation=Augmentation(mixup=0.2, cutmix=1.0))
    model = preset.build_model(4, (16, 16, 3), seed=0)
    assert model.augmentation == Augmentation(mixup=0.2, cutmix=1.0)
    assert preset.to_dict()["augmentation"]["mixup"] == 0.2
    x, y = tiny_images(count=32, size=16)
    history = model.fit(x, y, batch_size=preset.batch_size, epochs=1, seed=0, verbose=0)
    assert np.isfinite(history.history["loss"][0])
