"""The speed-run recipe: whitening stem, fastnet, augmentation, schedule, optimiser groups, weight
averaging, test-time augmentation, label smoothing, presets, and the CLI's train and bench on them.

Expectations are derived from the definitions (linear algebra, the documented formulas, slow
reference loops written here), never copied from a run of the code.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import trainval
from trainval import presets
from trainval.cli import main
from trainval.data import augment as augment_module
from trainval.data.augment import Augmentation, cutout, flip_where, random_crop, translate
from trainval.errors import ConfigError
from trainval.model import Model
from trainval.models.fastnet import FastNet, PatchWhitening
from trainval.callbacks.lookahead import Lookahead
from trainval.training.losses import CategoricalCrossentropy
from trainval.optimizers import SGD, Adam, FineTuning, Muon
from trainval.optimizers.schedules import WarmupLinearDecay
from trainval.training.tta import least_confident, tta_logits
from cifar_files import write_cifar10_folder
from tiny_data import LearningRates, TinyNet, tiny_images

WHITENING_EPS = 5e-4  # documented in fastnet: added to every eigenvalue of the patch covariance
ACCURACY_LINE = re.compile(r"^Accuracy: \d+\.\d\d% \(95% CI \d+\.\d\d-\d+\.\d\d%, \d+ test images\)$", re.M)


# -- helpers -------------------------------------------------------------------------------------------

def correlated_images(count: int = 48, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Float NCHW images whose channels are mixed and whose neighbouring pixels correlate."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(count, 3, size + 1, size + 1, generator=g)
    smooth = noise[:, :, 1:, 1:] + 0.6 * noise[:, :, :-1, 1:] + 0.3 * noise[:, :, 1:, :-1]  # spatial correlation
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.7, 0.5, 0.0], [0.4, 0.4, 0.3]])  # channel correlation
    return torch.einsum("oc,nchw->nohw", mix, smooth) + 0.2


def patch_matrix(images: torch.Tensor, kernel: int = 2) -> torch.Tensor:
    """Every kernel x kernel patch as a row (C*k*k values, channel-major like a conv weight), slowly."""
    n, c, h, w = images.shape
    rows = []
    for i in range(h - kernel + 1):
        for j in range(w - kernel + 1):
            rows.append(images[:, :, i:i + kernel, j:j + kernel].reshape(n, -1))
    return torch.cat(rows).double()


def reflect_pad_numpy(image: np.ndarray, pixels: int) -> np.ndarray:
    """Reflect padding (edge pixel not repeated) of one CHW image, with NumPy."""
    return np.pad(image, ((0, 0), (pixels, pixels), (pixels, pixels)), mode="reflect")


class FakeModel:
    """What a callback sees as ``self.model``: only ``.module`` is used by Lookahead."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module


class SmallConvNet(nn.Module):
    """Non-linear and not mirror-symmetric, so every TTA view gives different logits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        return self.head(torch.tanh(self.conv(x)).flatten(1))


class MeanPoolNet(nn.Module):
    """Global average pool then a linear layer: a mirror image has exactly the same pooled features."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 5)

    def forward(self, x):
        return self.head(x.mean(dim=(2, 3)))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from more threads, and on a busy machine thread contention makes them crawl."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- whitening stem ------------------------------------------------------------------------------------

def test_whitening_filters_decorrelate_patches_to_unit_variance_up_to_eps():
    torch.manual_seed(0)
    images = correlated_images()
    stem = PatchWhitening(3)
    stem.initialize_from_data(images)
    patches = patch_matrix(images)
    second_moment = patches.T @ patches / len(patches)
    eigenvalues = torch.linalg.eigvalsh(second_moment)
    # The data really is correlated (else the test proves nothing) and no direction is near eps.
    off_diagonal = second_moment - torch.diag(torch.diag(second_moment))
    assert off_diagonal.abs().max() > 0.3
    assert eigenvalues.min() > 20 * WHITENING_EPS

    with torch.no_grad():
        out = stem(images)
    assert out.shape == (48, 24, 15, 15)
    whitened = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12).double()
    moment = whitened.T @ whitened / len(whitened)
    # Filters v_i / sqrt(l_i + eps) give E[y_i y_j] = delta_ij * l_i / (l_i + eps).
    expected_variances = (eigenvalues / (eigenvalues + WHITENING_EPS)).sort().values
    assert torch.allclose(torch.diag(moment).sort().values, expected_variances, atol=1e-4)
    assert torch.allclose(moment, torch.diag(torch.diag(moment)), atol=1e-4)
    assert torch.allclose(moment, torch.eye(12, dtype=moment.dtype), atol=WHITENING_EPS / eigenvalues.min() + 1e-4)


def test_whitening_second_half_is_the_exact_negative_with_zero_bias_and_nothing_trains():
    stem = PatchWhitening(3)
    stem.initialize_from_data(correlated_images(count=8))
    weight = stem.conv.weight
    assert torch.equal(weight[12:], -weight[:12])
    assert torch.count_nonzero(weight[:12]) > 0
    assert torch.equal(stem.conv.bias, torch.zeros(24))
    assert not any(p.requires_grad for p in stem.parameters())
    images = correlated_images(count=4, seed=1)
    with torch.no_grad():
        out = stem(images)
    assert torch.equal(out[:, 12:], -out[:, :12])


# -- fastnet ---------------------------------------------------------------------------------------------

def test_fastnet_initialize_from_data_sets_per_channel_normalisation_and_the_flag():
    net = FastNet(10, (16, 16, 3), widths=(16, 32, 64))
    assert not bool(net.data_initialized)
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(40, 3, 16, 16)) * np.array([1.0, 0.5, 0.2])[None, :, None, None] + \
        np.array([0.0, 0.3, 0.6])[None, :, None, None]
    net.initialize_from_data(torch.tensor(images, dtype=torch.float32))
    assert bool(net.data_initialized)
    channels_first = images.transpose(1, 0, 2, 3).reshape(3, -1)
    np.testing.assert_allclose(net.mean.reshape(3).numpy(), channels_first.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(net.std.reshape(3).numpy(), channels_first.std(axis=1), rtol=1e-3)
    assert net.mean.shape == net.std.shape == (1, 3, 1, 1)


def test_model_fit_initialises_fastnet_from_the_data_exactly_once(monkeypatch):
    torch.manual_seed(0)
    net = FastNet(4, (16, 16, 3), widths=(8, 8, 8))
    calls = []
    original = net.initialize_from_data

    def spy(images):
        calls.append(images.clone())
        original(images)

    monkeypatch.setattr(net, "initialize_from_data", spy)
    model = Model(net, device="cpu")
    model.compile(optimizer=SGD(learning_rate=0.05, momentum=0.9), precision="fp32")
    x, y = tiny_images(count=16, size=16)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, seed=0)
    assert len(calls) == 1
    # It saw the training images as the network sees them: float, scaled to [0, 1].
    seen = calls[0]
    assert seen.dtype == torch.float32
    assert torch.allclose(seen, torch.tensor(x).permute(0, 3, 1, 2).float() / 255)
    assert bool(net.data_initialized)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, seed=1)
    assert len(calls) == 1


def test_fastnet_batchnorm_scales_are_frozen_and_shifts_train():
    torch.manual_seed(0)
    model = trainval.create_model("fastnet", num_classes=4, input_shape=(16, 16, 3), seed=0, widths=(8, 8, 8))
    norms = [m for m in model.module.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6  # two per conv group
    assert all(not m.weight.requires_grad and m.bias.requires_grad for m in norms)
    biases_before = [m.bias.detach().clone() for m in norms]
    x, y = tiny_images(count=16, size=16)
    model.compile(optimizer=SGD(learning_rate=0.05, momentum=0.9), precision="fp32")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, seed=0)
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)
    assert any(not torch.equal(m.bias, before) for m, before in zip(norms, biases_before))


@pytest.mark.parametrize("input_shape", [(32, 32, 3), (28, 28, 1)])
def test_fastnet_returns_one_logit_per_class_for_each_image(input_shape):
    height, width, channels = input_shape
    torch.manual_seed(0)
    net = FastNet(7, input_shape, widths=(16, 32, 64))
    images = torch.rand(5, channels, height, width)
    net.initialize_from_data(images)
    net.eval()
    with torch.no_grad():
        logits = net(images)
    assert logits.shape == (5, 7)
    assert torch.isfinite(logits).all()
    assert net.whiten.conv.out_channels == 2 * channels * 4


def test_fastnet_refuses_images_too_small_for_its_groups_and_accepts_the_smallest_allowed():
    with pytest.raises(ConfigError, match="8x8"):
        FastNet(10, (8, 8, 3), widths=(16, 32, 64))
    # The 2x2 stem trims one pixel, then three groups halve: 9 pixels is the smallest that works.
    net = FastNet(10, (9, 9, 3), widths=(16, 32, 64)).eval()
    with torch.no_grad():
        assert net(torch.rand(2, 3, 9, 9)).shape == (2, 10)


def test_every_fastnet_conv_starts_by_passing_its_first_channels_through():
    torch.manual_seed(0)
    net = FastNet(10, (32, 32, 3), widths=(16, 32, 64))  # stem gives 24 channels: first conv narrows to 16
    convs = [m for m in net.groups.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 6
    for conv in convs:
        x = torch.randn(2, conv.in_channels, 6, 6)
        overlap = min(conv.in_channels, conv.out_channels)
        with torch.no_grad():
            out = conv(x)
        assert torch.allclose(out[:, :overlap], x[:, :overlap], atol=1e-6)
        if conv.out_channels > overlap:  # the extra filters keep a random start
            assert conv.weight[overlap:].abs().sum() > 0


# -- augmentation ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_flip_and_translate_keep_shape_and_dtype(dtype):
    images = (torch.rand(6, 3, 9, 7) * 255).to(dtype)
    mask = torch.tensor([True, False, True, False, False, True])
    flipped = flip_where(images, mask)
    assert flipped.shape == images.shape and flipped.dtype == dtype
    for i in range(6):
        assert torch.equal(flipped[i], images[i].flip(2) if mask[i] else images[i])
    shifted = translate(images, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape and shifted.dtype == dtype


def test_translate_by_zero_or_by_exactly_the_padding_reproduces_the_image(monkeypatch):
    images = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(translate(images, 0, torch.Generator().manual_seed(0)), images)
    unchanged = Augmentation(flip="none", translate=0).bind(5, torch.Generator().manual_seed(0))
    assert torch.equal(unchanged(images, torch.arange(5), 0), images)

    # Offsets are drawn in [0, 2p]; offset p on both axes is the window centred on the original.
    monkeypatch.setattr(augment_module.torch, "randint",
                        lambda low, high, size, generator=None, device=None: torch.full(size, (high - 1) // 2,
                                                                                        device=device))
    assert torch.equal(translate(images, 3, torch.Generator()), images)
    assert torch.equal(translate(images.float(), 2, torch.Generator()), images.float())


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_every_translated_image_is_a_window_of_its_reflect_padded_original(dtype):
    pixels = 2
    count, height, width = 300, 6, 5
    images = (torch.rand(count, 3, height, width) * 255).to(dtype)
    shifted = translate(images, pixels, torch.Generator().manual_seed(1))
    seen_offsets = set()
    for i in range(count):
        padded = reflect_pad_numpy(images[i].numpy(), pixels)
        matches = [(dy, dx) for dy in range(2 * pixels + 1) for dx in range(2 * pixels + 1)
                   if np.array_equal(padded[:, dy:dy + height, dx:dx + width], shifted[i].numpy())]
        assert len(matches) == 1, f"image {i} is not a window of its padded original: {matches}"
        seen_offsets.add(matches[0])
    # Every offset in [-pixels, pixels]^2 occurs (300 draws of 25 values).
    assert len(seen_offsets) == (2 * pixels + 1) ** 2


def test_alternating_flip_mirrors_each_image_on_every_other_epoch():
    count = 64
    images = torch.rand(count, 3, 5, 6)
    bound = Augmentation(flip="alternating", translate=0).bind(count, torch.Generator().manual_seed(0))
    indices = torch.arange(count)
    mirrored = {}
    for epoch in range(4):
        out = bound(images, indices, epoch)
        flags = []
        for i in range(count):
            is_same, is_mirror = torch.equal(out[i], images[i]), torch.equal(out[i], images[i].flip(2))
            assert is_same != is_mirror
            flags.append(is_mirror)
        mirrored[epoch] = torch.tensor(flags)
        assert torch.equal(mirrored[epoch], bound.first_flip ^ bool(epoch % 2))
    # Over epochs 0 and 1 every image is seen both ways; the pattern repeats every two epochs.
    assert torch.equal(mirrored[0], ~mirrored[1])
    assert torch.equal(mirrored[0], mirrored[2]) and torch.equal(mirrored[1], mirrored[3])
    assert 0 < int(mirrored[0].sum()) < count  # the first coin differs between images


def test_alternating_flip_follows_the_sample_not_its_position_in_the_batch():
    count = 32
    images = torch.rand(count, 3, 4, 5)
    bound = Augmentation(flip="alternating", translate=0).bind(count, torch.Generator().manual_seed(3))
    reference = bound(images, torch.arange(count), 1)
    order = torch.randperm(count, generator=torch.Generator().manual_seed(4))[:20]
    out = bound(images[order], order, 1)
    for position, sample in enumerate(order.tolist()):
        assert torch.equal(out[position], reference[sample])


@pytest.mark.parametrize("flip", ["alternating", "random", "none"])
def test_augmented_batch_keeps_images_in_the_order_of_their_indices(flip):
    count = 40
    # Image k is the constant k: mirrors and reflect-shifts of it are still k, so order is visible.
    images = torch.arange(count, dtype=torch.uint8)[:, None, None, None].expand(count, 3, 8, 8).contiguous()
    bound = Augmentation(flip=flip, translate=2).bind(count, torch.Generator().manual_seed(0))
    indices = torch.randperm(count, generator=torch.Generator().manual_seed(1))[:25]
    for epoch in range(2):
        out = bound(images[indices], indices, epoch)
        assert out.shape == (25, 3, 8, 8)
        assert torch.equal(out, indices.to(torch.uint8)[:, None, None, None].expand_as(out))


def test_every_random_crop_is_a_window_of_its_image_and_every_position_occurs():
    count, size = 200, 3
    images = torch.rand(count, 3, 5, 4)
    crops = random_crop(images, size, size, torch.Generator().manual_seed(2))
    assert crops.shape == (count, 3, size, size)
    seen = set()
    for i in range(count):
        matches = [(dy, dx) for dy in range(5 - size + 1) for dx in range(4 - size + 1)
                   if torch.equal(images[i, :, dy:dy + size, dx:dx + size], crops[i])]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 3 * 2
    with pytest.raises(ConfigError, match="cannot crop 5x4 images to 5x5"):
        random_crop(images, 5, 5, torch.Generator())


def test_progressive_resizing_crops_a_share_of_each_side_in_the_first_crop_epochs_only():
    images = torch.randint(0, 256, (6, 3, 10, 20), dtype=torch.uint8)
    bound = Augmentation(flip="none", translate=1, crop=0.6, crop_epochs=2).bind(6, torch.Generator().manual_seed(0))
    sizes = [tuple(bound(images, torch.arange(6), epoch).shape[2:]) for epoch in range(4)]
    assert sizes == [(6, 12), (6, 12), (10, 20), (10, 20)]


def test_cutout_blanks_one_square_per_image_with_the_batch_mean_and_keeps_the_rest():
    images = torch.randint(0, 250, (300, 3, 9, 9), dtype=torch.uint8)
    out = cutout(images, 4, torch.Generator().manual_seed(3))
    mean = images.float().mean(dim=(0, 2, 3)).to(torch.uint8)
    changed = (out != images).any(dim=1)  # (N, H, W)
    areas = set()
    for i in range(len(images)):
        blank = (out[i] == mean[:, None, None]).all(dim=0)
        assert changed[i].logical_and(~blank).sum() == 0  # only blanked pixels differ
        box = blank.nonzero()
        if len(box):  # the blank pixels form one axis-aligned rectangle of at most 4 x 4
            height, width = int(box[:, 0].max() - box[:, 0].min() + 1), int(box[:, 1].max() - box[:, 1].min() + 1)
            assert height <= 4 and width <= 4 and blank.sum() >= height * width - 2
            areas.add((height, width))
    assert (4, 4) in areas and any(h < 4 or w < 4 for h, w in areas)  # whole squares inside, cut ones at edges
    assert torch.equal(cutout(images, 4, torch.Generator().manual_seed(3)), out)  # seeded


def test_fastnet_depth_three_adds_a_residual_conv_per_group_and_refuses_other_depths():
    shallow = trainval.create_model("fastnet", num_classes=10, input_shape=(32, 32, 3), widths=(16, 32, 32))
    deep = trainval.create_model("fastnet", num_classes=10, input_shape=(32, 32, 3), widths=(16, 32, 32), depth=3)
    assert deep.count_params() - shallow.count_params() == sum(w * w * 9 + 2 * w for w in (16, 32, 32))
    assert deep.predict(np.zeros((2, 32, 32, 3), dtype=np.uint8)).shape == (2, 10)
    with pytest.raises(ConfigError, match="depth"):
        trainval.create_model("fastnet", num_classes=10, input_shape=(32, 32, 3), depth=4)


@pytest.mark.parametrize("kwargs", [{"flip": "sometimes"}, {"flip": "horizontal"}, {"translate": -1},
                                    {"crop": 0.75}, {"crop_epochs": 2}, {"crop": -0.5, "crop_epochs": 2},
                                    {"crop": 24, "crop_epochs": 2}, {"crop": 0.75, "crop_epochs": 1.5},
                                    {"cutout": -1}, {"cutout": 2.5}])
def test_augmentation_refuses_unknown_flip_modes_negative_shifts_and_half_set_crops(kwargs):
    with pytest.raises(ConfigError):
        Augmentation(**kwargs)


# -- schedule and optimiser groups ------------------------------------------------------------------

def test_warmup_linear_decay_rises_from_start_to_one_then_falls_to_end():
    schedule = WarmupLinearDecay(warmup=0.25, start=0.2, end=0.1)
    total = 2000
    values = [schedule.multiplier(step, total) for step in range(total)]
    assert values[0] == pytest.approx(0.2)
    peak = int(0.25 * total)
    assert values[peak] == pytest.approx(1.0)
    assert max(values) == pytest.approx(1.0)
    # The last step is within one step's decrement of end; the end of the run is end exactly.
    assert values[-1] == pytest.approx(0.1, abs=(1.0 - 0.1) / (0.75 * total) + 1e-12)
    assert schedule.multiplier(total, total) == pytest.approx(0.1)
    rising, falling = np.diff(values[:peak + 1]), np.diff(values[peak:])
    assert (rising > 0).all() and (falling < 0).all()
    # Linear on both sides: constant increments.
    assert np.allclose(rising, (1.0 - 0.2) / (0.25 * total)) and np.allclose(falling, -(1.0 - 0.1) / (0.75 * total))
    assert all(0.1 <= v <= 1.0 + 1e-12 for v in values)


def test_warmup_must_be_a_fraction():
    for warmup in (-0.1, 1.0, 1.5):
        with pytest.raises(ConfigError):
            WarmupLinearDecay(warmup=warmup)


def test_sgd_puts_batchnorm_parameters_in_a_faster_less_decayed_group_and_skips_frozen_ones():
    module = TinyNet()
    module.features[0].bias.requires_grad_(False)  # a frozen parameter
    optimizer = SGD(learning_rate=0.1, momentum=0.9, weight_decay=5e-3, norm_lr_scale=64).create(module)
    assert len(optimizer.param_groups) == 2
    base, norms = optimizer.param_groups
    norm_params = {id(p) for m in module.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))
                   for p in m.parameters()}
    other_trainable = {id(p) for p in module.parameters() if p.requires_grad and id(p) not in norm_params}
    assert {id(p) for p in norms["params"]} == norm_params
    assert {id(p) for p in base["params"]} == other_trainable
    assert id(module.features[0].bias) not in {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert base["lr"] == pytest.approx(0.1) and base["weight_decay"] == pytest.approx(5e-3)
    assert norms["lr"] == pytest.approx(0.1 * 64) and norms["weight_decay"] == pytest.approx(5e-3 / 64)
    # Both groups shrink by the same factor per step: lr * weight_decay is equal.
    assert norms["lr"] * norms["weight_decay"] == pytest.approx(base["lr"] * base["weight_decay"])


def test_lr_multiplier_is_keras_decay_times_the_schedule():
    schedule = WarmupLinearDecay(warmup=0.2, start=0.3, end=0.05)
    spec = SGD(learning_rate=0.1, decay=1e-2, schedule=schedule)
    for step in (0, 7, 20, 55, 99):
        assert spec.lr_multiplier(step, 100) == pytest.approx(schedule.multiplier(step, 100) / (1 + 1e-2 * step))
    assert SGD(decay=1e-2).lr_multiplier(30, 100) == pytest.approx(1 / 1.3)
    assert Adam(schedule=schedule).lr_multiplier(55, 100) == pytest.approx(schedule.multiplier(55, 100))


def test_fit_sets_each_steps_learning_rate_from_the_schedule():
    torch.manual_seed(0)
    model = Model(TinyNet(), device="cpu")
    schedule = WarmupLinearDecay(warmup=0.25, start=0.2, end=0.1)
    model.compile(optimizer=SGD(learning_rate=0.1, momentum=0.9, norm_lr_scale=4, schedule=schedule), precision="fp32")
    x, y = tiny_images(count=40)
    recorder = LearningRates()
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, seed=0, callbacks=[recorder])
    total = 3 * 5
    assert len(recorder.seen) == total
    for step, (base_lr, norm_lr) in enumerate(recorder.seen):
        assert base_lr == pytest.approx(0.1 * schedule.multiplier(step, total))
        assert norm_lr == pytest.approx(0.4 * schedule.multiplier(step, total))
    assert len({lr for lr, _ in recorder.seen}) > 5  # it really changes


# -- lookahead averaging -----------------------------------------------------------------------------

def _lookahead_on(module: nn.Module, steps: int = 10, epochs: int = 1, **kwargs) -> Lookahead:
    lookahead = Lookahead(**kwargs)
    lookahead.set_model(FakeModel(module))
    lookahead.set_params({"epochs": epochs, "initial_epoch": 0, "steps": steps})
    lookahead.on_train_begin()
    return lookahead


def _perturb(module: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for value in module.state_dict().values():
            if value.dtype.is_floating_point:
                value.add_(torch.randn(value.shape, generator=g))


def test_lookahead_moves_the_average_toward_the_weights_and_loads_it_into_the_model():
    torch.manual_seed(0)
    module = TinyNet()
    lookahead = _lookahead_on(module)
    for seed, decay in ((1, 0.7), (2, 0.3)):
        previous = {k: v.clone() for k, v in lookahead._average.items()}
        _perturb(module, seed)
        current = {k: v.clone() for k, v in module.state_dict().items()}
        lookahead._apply(decay)
        state = module.state_dict()
        for name, before in previous.items():
            expected = before + (1 - decay) * (current[name] - before)
            assert torch.allclose(lookahead._average[name], expected, atol=1e-6)
            assert torch.equal(state[name], lookahead._average[name])
            assert not torch.allclose(state[name], current[name])  # it was pulled back


def test_lookahead_decay_zero_copies_the_weights_and_integer_buffers_are_left_alone():
    torch.manual_seed(0)
    module = TinyNet()
    lookahead = _lookahead_on(module)
    counters = [name for name, value in module.state_dict().items() if not value.dtype.is_floating_point]
    assert counters and all(name.endswith("num_batches_tracked") for name in counters)
    assert not set(counters) & set(lookahead._average)
    _perturb(module, 5)
    with torch.no_grad():
        for name in counters:
            module.state_dict()[name].fill_(7)
    current = {k: v.clone() for k, v in module.state_dict().items()}
    lookahead._apply(0.0)
    for name, value in module.state_dict().items():
        assert torch.equal(value, current[name])
    for name, average in lookahead._average.items():
        assert torch.equal(average, current[name])
    assert all(int(module.state_dict()[name]) == 7 for name in counters)


def test_lookahead_leaves_the_model_holding_the_average_at_the_end():
    torch.manual_seed(0)
    module = TinyNet()
    lookahead = _lookahead_on(module)
    _perturb(module, 1)
    lookahead._apply(0.5)
    average = {k: v.clone() for k, v in lookahead._average.items()}
    _perturb(module, 2)  # training goes on after the last averaging
    lookahead.on_train_end()
    state = module.state_dict()
    for name, value in average.items():
        assert torch.equal(state[name], value)
        assert torch.equal(lookahead._average[name], value)


def test_lookahead_averages_every_few_steps_with_decay_growing_as_progress_cubed(monkeypatch):
    module = TinyNet()
    lookahead = _lookahead_on(module, steps=10, epochs=2, every=5, decay=0.9)
    applied = []
    monkeypatch.setattr(lookahead, "_apply", applied.append)
    for step in range(20):
        lookahead.on_train_batch_end(step % 10)
    assert applied == pytest.approx([0.9 ** 5 * (k / 20) ** 3 for k in (5, 10, 15, 20)])


# -- test-time augmentation ----------------------------------------------------------------------------

def test_tta_levels_average_the_documented_views():
    torch.manual_seed(0)
    module = SmallConvNet().eval()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        plain, mirror = module(x), module(x.flip(3))
        level0, level1, level2 = (tta_logits(module, x, level) for level in (0, 1, 2))
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        views = [padded[:, :, 0:8, 0:8], padded[:, :, 2:10, 2:10]]
        shifted = [(module(v) + module(v.flip(3))) / 2 for v in views]
    assert torch.allclose(level0, plain)
    assert torch.allclose(level1, (plain + mirror) / 2, atol=1e-6)
    assert torch.allclose(level2, 0.5 * level1 + 0.5 * (shifted[0] + shifted[1]) / 2, atol=1e-6)
    # The views matter for this module, so the comparisons above could fail.
    assert not torch.allclose(level1, level0, atol=1e-3) and not torch.allclose(level2, level1, atol=1e-3)


def test_tta_flip_level_changes_nothing_for_a_mirror_invariant_module():
    torch.manual_seed(0)
    module = MeanPoolNet().eval()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(tta_logits(module, x, 1), tta_logits(module, x, 0), atol=1e-6)


def test_least_confident_picks_the_rows_with_the_lowest_top_probability_rounding_up():
    logits = torch.tensor([[4.0, 0.0], [0.1, 0.0], [0.0, 2.0], [0.0, 0.0], [3.0, 3.5]])
    assert least_confident(logits, 0.4).tolist() == [3, 1]
    assert least_confident(logits, 0.5).tolist() == [3, 1, 4]  # 2.5 images round up to 3
    assert least_confident(logits, 1.0).tolist() == [3, 1, 4, 2, 0]


@pytest.mark.parametrize("batch_size", [3, 16])
def test_selective_tta_gives_the_views_to_the_least_confident_images_only(batch_size):
    x, y = tiny_images(count=16, size=8)
    torch.manual_seed(0)
    model = Model(SmallConvNet(), num_classes=5, device="cpu")
    model.compile(precision="fp32", tta=2)
    full = torch.from_numpy(model.predict(x, batch_size=batch_size))
    model.compile(precision="fp32", tta=0)
    plain = torch.from_numpy(model.predict(x, batch_size=batch_size))
    model.compile(precision="fp32", tta=2, tta_fraction=0.25)
    selective = torch.from_numpy(model.predict(x, batch_size=batch_size))
    unsure = set(least_confident(torch.log(plain), 0.25).tolist())
    assert len(unsure) == 4
    for row in range(16):
        expected = full[row] if row in unsure else plain[row]
        assert torch.allclose(selective[row], expected, atol=1e-6), row
    assert not torch.allclose(full, plain, atol=1e-4)  # the views change these predictions
    assert model.evaluate(x, y, batch_size=batch_size, verbose=0)[1] == pytest.approx(
        float((selective.argmax(1) == torch.from_numpy(y)).double().mean()))


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5, True])
def test_a_tta_fraction_outside_zero_to_one_is_refused(fraction):
    with pytest.raises(ConfigError, match="tta_fraction must be a share of the images"):
        Model(SmallConvNet(), num_classes=5, device="cpu").compile(tta=2, tta_fraction=fraction)


# -- loss ----------------------------------------------------------------------------------------------

def test_label_smoothing_cross_entropy_matches_the_smoothed_target_formula():
    torch.manual_seed(0)
    classes = 6
    logits = torch.randn(9, classes, dtype=torch.float64) * 3
    targets = torch.randint(0, classes, (9,))
    smoothing = 0.2
    q = (1 - smoothing) * F.one_hot(targets, classes).double() + smoothing / classes
    log_p = logits - logits.exp().sum(dim=1, keepdim=True).log()
    expected = -(q * log_p).sum(dim=1).mean()
    got = CategoricalCrossentropy(label_smoothing=smoothing)(logits, targets)
    assert float(got) == pytest.approx(float(expected), rel=1e-9)
    plain = -log_p[torch.arange(9), targets].mean()
    assert float(CategoricalCrossentropy()(logits, targets)) == pytest.approx(float(plain), rel=1e-9)
    assert float(got) != pytest.approx(float(plain))


@pytest.mark.parametrize("smoothing", [-0.1, 1.0, 1.5])
def test_label_smoothing_outside_zero_to_one_is_refused(smoothing):
    with pytest.raises(ConfigError):
        CategoricalCrossentropy(label_smoothing=smoothing)


# -- presets -------------------------------------------------------------------------------------------

def _rebuild(values: dict) -> presets.Preset:
    """A Preset made again from ``to_dict()``'s plain values."""
    values = dict(values)
    optimizer = dict(values["optimizer"])
    spec_type = {"SGD": SGD, "Adam": Adam, "Muon": Muon}[optimizer.pop("type")]
    if optimizer.get("schedule") is not None:
        optimizer["schedule"] = WarmupLinearDecay(**optimizer["schedule"])
    values["optimizer"] = spec_type(**optimizer)
    if values.get("augmentation") is not None:
        values["augmentation"] = Augmentation(**values["augmentation"])
    if values.get("fine_tuning") is not None:
        values["fine_tuning"] = FineTuning(**values["fine_tuning"])
    return presets.Preset(**values)


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_round_trips_through_plain_values(name):
    preset = presets.get(name)
    values = preset.to_dict()
    text = json.dumps(values)
    assert json.loads(text)["name"] == name
    assert values["optimizer"]["type"] == type(preset.optimizer).__name__
    assert _rebuild(values) == preset


@pytest.mark.parametrize("name", presets.names())
def test_doubling_a_presets_batch_size_scales_only_its_learning_rates(name):
    preset = presets.get(name)
    doubled = preset.with_overrides(batch_size=2 * preset.batch_size)
    assert doubled.batch_size == 2 * preset.batch_size
    assert doubled.optimizer == preset.optimizer.scaled_to_batch(2.0) != preset.optimizer
    assert dataclasses.replace(doubled, batch_size=preset.batch_size, optimizer=preset.optimizer) == preset
    assert preset.with_overrides() == preset
    longer = preset.with_overrides(epochs=3)  # crop epochs, if any, scale with the length (tested below)
    assert longer == dataclasses.replace(preset, epochs=3, augmentation=longer.augmentation)


def test_sgd_and_adam_learning_rates_scale_linearly_with_the_batch():
    assert SGD(learning_rate=0.1, momentum=0.9).scaled_to_batch(4.0) == SGD(learning_rate=0.4, momentum=0.9)
    assert Adam(learning_rate=1e-3).scaled_to_batch(0.5) == Adam(learning_rate=5e-4)


def test_changing_a_presets_model_drops_its_model_options():
    quick = presets.get("quick")
    assert quick.model == "fastnet" and quick.model_options
    changed = quick.with_overrides(model="seed-cnn")
    assert changed.model == "seed-cnn" and changed.model_options == {}
    assert dataclasses.replace(changed, model=quick.model, model_options=quick.model_options) == quick
    assert quick.with_overrides(model="fastnet") == quick  # same model: options kept
    # A network with a fixed input size (seed-cnn's flatten) trains on whole images: no crops.
    fast = presets.get("fast")
    assert fast.augmentation.crop_epochs and fast.with_overrides(model="fastnet") == fast
    uncropped = fast.with_overrides(model="seed-cnn").augmentation
    assert uncropped.crop_epochs == 0 and uncropped.crop == 0.0


@pytest.mark.parametrize(("epochs", "crop_epochs"), [(9, 3), (18, 6), (4, 1), (1, 0), (2, 1)])
def test_another_length_keeps_the_share_of_epochs_on_crops(epochs, crop_epochs):
    recipe = presets.get("fast")
    assert (recipe.epochs, recipe.augmentation.crop_epochs) == (9, 3)
    changed = recipe.with_overrides(epochs=epochs).augmentation
    assert changed.crop_epochs == crop_epochs and (changed.crop > 0) == (crop_epochs > 0)


def test_seed_cnn_trains_with_a_crop_preset_given_another_model(cifar_dir, capsys):
    status = main(["train", "--preset", "fast", "--model", "seed-cnn", "--data-dir", str(cifar_dir),
                   "--holdout-size", "10", "--verbose", "0", "--runs-dir", str(cifar_dir.parent / "runs")])
    assert status == 0, capsys.readouterr()


def test_the_96_preset_builds_the_wider_residual_fastnet_and_trains_a_step_on_small_images():
    recipe = presets.get("96")
    assert recipe.augmentation.cutout and recipe.model_options["depth"] == 3
    x, y = tiny_images(count=8, size=16, classes=10)
    model = dataclasses.replace(recipe, epochs=1, batch_size=8).build_model(10, x.shape[1:], seed=0, precision="fp32")
    wide = sum(p.numel() for p in model.module.parameters())
    assert wide > 2 * sum(p.numel() for p in presets.get("94").build_model(10, x.shape[1:]).module.parameters())
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(model.predict(x)).all()


def test_known_presets_exist_and_unknown_names_are_refused():
    assert {"tutorial", "quick", "94", "fast", "94-sgd", "96"} <= set(presets.names())
    tutorial = presets.get("tutorial")
    assert (tutorial.model, tutorial.epochs, tutorial.batch_size) == ("seed-cnn", 10, 100)
    with pytest.raises(ConfigError, match="quick"):
        presets.get("no-such-preset")


# -- CLI: train and bench on tiny generated CIFAR files --------------------------------------------------

@pytest.mark.parametrize("validation", ["holdout", "none"])
def test_quick_preset_trains_end_to_end_through_the_cli(cifar_dir, capsys, validation):
    status = main(["train", "--preset", "quick", "--data-dir", str(cifar_dir), "--epochs", "1",
                   "--validation", validation, "--holdout-size", "10", "--verbose", "0"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert ACCURACY_LINE.search(out), out
    assert "Preset quick" in out and "10 test images" in out


def test_bench_prints_a_row_per_seed_and_writes_the_json_report(cifar_dir, tmp_path, capsys):
    report_path = tmp_path / "bench.json"
    status = main(["bench", "--preset", "quick", "--seeds", "2", "--data-dir", str(cifar_dir),
                   "--json", str(report_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    rows = re.findall(r"^\s*(\d+)\s+\d+\.\d\s+\d+\.\d\s+0\.0\s+(\d+\.\d\d)%\s+\d+$", out, re.M)  # compile_s 0
    assert [int(seed) for seed, _ in rows] == [0, 1]
    assert "test accuracy" in out and "images/s" in out

    report = json.loads(report_path.read_text())
    assert [row["seed"] for row in report["seeds"]] == [0, 1]
    accuracies = [row["test_accuracy"] for row in report["seeds"]]
    assert all(0.0 <= a <= 1.0 for a in accuracies)
    assert [f"{a * 100:.2f}" for a in accuracies] == [acc for _, acc in rows]
    for column in ("test_accuracy", "train_seconds", "wall_seconds", "images_per_second"):
        values = [row[column] for row in report["seeds"]]
        summary = report["summary"][column]
        assert summary["mean"] == pytest.approx(sum(values) / 2)
        assert summary["std"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
        assert (summary["min"], summary["max"]) == (min(values), max(values))
    for row in report["seeds"]:
        assert row["images_per_second"] == pytest.approx(30 / row["train_seconds"], rel=1e-6)  # 30 images, 1 epoch
    machine = report["machine"]
    assert {"cpu", "threads", "torch", "device", "precision"} <= set(machine)
    assert machine["torch"] == torch.__version__ and machine["precision"] in ("bf16", "fp32")
    assert machine["threads"] == torch.get_num_threads()
    assert report["preset"]["name"] == "quick" and report["validation"] == "none"


def test_bench_epochs_replaces_the_presets_in_the_runs_and_the_report(cifar_dir, tmp_path, capsys):
    report_path = tmp_path / "bench.json"
    status = main(["bench", "--preset", "fast", "--epochs", "2", "--seeds", "1", "--data-dir", str(cifar_dir),
                   "--json", str(report_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "preset fast, 1 seeds, cifar10, all training images, 2 epochs, " in out
    report = json.loads(report_path.read_text())
    assert report["preset"]["epochs"] == 2 and presets.get("fast").epochs != 2
    # 30 images a pass: two passes' worth of images per training second
    row = report["seeds"][0]
    assert row["images_per_second"] == pytest.approx(60 / row["train_seconds"], rel=1e-6)


def test_bench_compare_reports_a_positive_throughput_ratio(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TRAINVAL_DATA", raising=False)
    # 300 training images: enough for the tutorial preset's warm-up batch of 100 plus a timed step.
    data = tmp_path / "data"
    write_cifar10_folder(data, train_per_batch=60)
    report_path = tmp_path / "bench.json"
    status = main(["bench", "--preset", "tutorial", "--seeds", "1", "--data-dir", str(data), "--compare",
                   "--compare-steps", "1", "--json", str(report_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    compare = json.loads(report_path.read_text())["compare"]
    assert compare["ratio"] > 0
    assert compare["ratio"] == pytest.approx(compare["preset_images_per_second"] / compare["tutorial_images_per_second"])
    assert re.search(r"ratio \d+\.\d\dx", out)


def test_bench_compare_with_too_little_data_fails_before_any_seed_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data = tmp_path / "data"
    write_cifar10_folder(data)  # 30 training images: fewer than one quick batch of 256
    status = main(["bench", "--preset", "quick", "--seeds", "1", "--data-dir", str(data), "--compare",
                   "--compare-steps", "1"])
    captured = capsys.readouterr()
    assert status == 2
    assert "needs 512 training images" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "seed   train_s" not in captured.out


def test_bench_with_no_seeds_is_a_usage_error_in_one_line(cifar_dir, capsys):
    assert main(["bench", "--preset", "quick", "--seeds", "0", "--data-dir", str(cifar_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("trainval: error: ") and "seeds" in err
    assert len(err.strip().splitlines()) == 1


def test_fastnet_trains_the_muon_94_by_default_and_the_sgd_recipe_stays_available_as_94_sgd():
    assert presets.for_model("fastnet").name == presets.for_model(None).name == "94"
    muon, sgd = presets.get("94"), presets.get("94-sgd")
    assert isinstance(muon.optimizer, Muon) and not muon.lookahead
    assert isinstance(sgd.optimizer, SGD) and sgd.lookahead and sgd.augmentation.crop_epochs == 0
    assert (muon.model, muon.model_options, muon.batch_size) == (sgd.model, sgd.model_options, sgd.batch_size)
    fast = presets.get("fast")  # 94 one crop epoch shorter, otherwise the same recipe
    assert dataclasses.replace(fast, name="94", description=muon.description, epochs=10,
                               augmentation=muon.augmentation) == muon
