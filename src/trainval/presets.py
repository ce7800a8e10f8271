"""Training recipes as data: each preset is a frozen dataclass, printed at the start of a run.

``trainval.presets.get("94")`` returns one; ``trainval train --preset 94`` runs it. Learning rates
of the speed-run presets are stated per 1024 examples (for a mean loss over the batch) and scaled
linearly to the preset's batch size (Muon's filter rate with its root: see ``Muon.scaled_to_batch``),
so a preset can change its batch size without retuning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from trainval.checks import require_int
from trainval.model_factory import create_model
from trainval.data.augment import Augmentation
from trainval.model import Model
from trainval.models import get_entry, timm_models
from trainval.registry import Registry
from trainval.callbacks.lookahead import Lookahead
from trainval.callbacks.base import Callback
from trainval.training.losses import CategoricalCrossentropy
from trainval.optimizers import SGD, FineTuning, Muon, OptimizerSpec
from trainval.optimizers.schedules import WarmupLinearDecay


@dataclass(frozen=True)
class Preset:
    """A whole training recipe: model, optimiser and schedule, augmentation, averaging, TTA, length."""

    name: str
    description: str
    model: str
    epochs: int
    batch_size: int
    optimizer: OptimizerSpec
    model_options: dict[str, Any] = field(default_factory=dict)
    label_smoothing: float = 0.0  # fraction of target mass spread over all classes
    augmentation: Augmentation | None = None  # training batches only
    lookahead: bool = False  # average weights every 5 steps (see callbacks())
    tta: int = 0  # test-time augmentation level: 0 none, 1 flip, 2 flip and 1-pixel shifts
    # For a model started from pretrained weights (--init-from, --pretrained): the body's learning rate as a
    # fraction of the new head's, and the fraction of the steps in which the head learns alone. None: as one.
    fine_tuning: FineTuning | None = None
    tta_fraction: float = 1.0  # share of test images, the least confident, that get the TTA views

    def with_overrides(self, model: str | None = None, epochs: int | None = None,
                       batch_size: int | None = None, learning_rate: float | None = None) -> Preset:
        """This preset with another model, length, batch size (learning rates scaled with it, see the
        optimiser spec's ``scaled_to_batch``) or learning rate.

        Another model trains on whole images (progressive resizing suits fastnet, whose global pooling takes
        any size, not a network with a fixed input); another length keeps the share of epochs on crops.
        """
        changed = self
        if model is not None and model != self.model:
            changed = replace(changed, model=model, model_options={})
            if changed.augmentation is not None:
                changed = replace(changed, augmentation=changed.augmentation.with_crop_epochs(0))
        if epochs is not None and epochs != self.epochs:
            require_int("epochs", epochs, 0)
            changed = replace(changed, epochs=epochs)
            if changed.augmentation is not None:
                crop_epochs = min(epochs, round(changed.augmentation.crop_epochs * epochs / self.epochs))
                changed = replace(changed, augmentation=changed.augmentation.with_crop_epochs(crop_epochs))
        if batch_size is not None and batch_size != self.batch_size:
            require_int("batch-size", batch_size, 1)
            changed = replace(changed, batch_size=batch_size,
                              optimizer=self.optimizer.scaled_to_batch(batch_size / self.batch_size))
        if learning_rate is not None:
            changed = replace(changed, optimizer=replace(changed.optimizer, learning_rate=learning_rate))
        return changed

    def without_mirroring(self) -> Preset:
        """This preset with no left-right flips in augmentation or TTA, for data whose classes change
        when mirrored (digits). TTA goes to level 0, since every TTA level includes the flip."""
        augmentation = self.augmentation and replace(self.augmentation, flip="none")
        return replace(self, augmentation=augmentation, tta=0)

    def build_model(self, num_classes: int, input_shape: Sequence[int], *, seed: int | None = None,
                    class_names: Sequence[str] | None = None, precision: str = "auto",
                    sync_batchnorm: bool = False, compile: bool = False, weights: str | None = None,
                    pretrained: bool | None = None) -> Model:
        """A model of this preset's architecture, compiled with its optimiser, loss, augmentation and TTA
        (``compile``: and through ``torch.compile``).

        ``weights`` starts it from pretrained weights (see ``create_model``). A ``pretrained`` model
        (by default: one given ``weights``) trains with this preset's ``fine_tuning``; a resumed run
        passes ``pretrained=True`` without ``weights``, its checkpoint holding the weights.
        """
        model = create_model(self.model, num_classes=num_classes, input_shape=input_shape, seed=seed,
                             class_names=class_names, weights=weights, **self.model_options)
        pretrained = weights is not None if pretrained is None else pretrained
        model.compile(optimizer=self.optimizer, loss=CategoricalCrossentropy(self.label_smoothing),
                      precision=precision, augmentation=self.augmentation, tta=self.tta,
                      sync_batchnorm=sync_batchnorm, compile=compile,
                      tta_fraction=self.tta_fraction, fine_tuning=self.fine_tuning if pretrained else None)
        return model

    def callbacks(self) -> list[Callback]:
        """The callbacks ``fit`` needs for this recipe (lookahead averaging every 5 steps)."""
        return [Lookahead(every=5)] if self.lookahead else []

    def to_dict(self) -> dict[str, Any]:
        """Plain values for printing and saving, with each spec's type name."""
        values = asdict(self)
        values["optimizer"] = {"type": type(self.optimizer).__name__, **values["optimizer"]}
        return values


def speedrun_sgd(batch_size: int, lr_per_1024: float, weight_decay: float, momentum: float = 0.85,
                 norm_lr_scale: float = 64.0, schedule: WarmupLinearDecay = WarmupLinearDecay()) -> SGD:
    """Nesterov SGD as the CIFAR-10 speed runs use it, with the learning rate scaled to ``batch_size``.

    ``weight_decay`` is torch's coupled L2 coefficient; because the learning rate scales with the
    batch size, the decay per epoch stays the same at any batch size. BatchNorm shifts learn
    ``norm_lr_scale`` times faster with proportionally less decay.
    """
    return SGD(learning_rate=lr_per_1024 * batch_size / 1024, momentum=momentum, nesterov=True,
               weight_decay=weight_decay, norm_lr_scale=norm_lr_scale, schedule=schedule)


def speedrun_muon(batch_size: int, learning_rate: float, momentum: float, sgd_lr_per_1024: float,
                  sgd_weight_decay: float, norm_lr_scale: float = 64.0) -> Muon:
    """Muon for the convolution filters at ``learning_rate``; the head and BatchNorm shifts as
    :func:`speedrun_sgd` trains them (Nesterov 0.85, the learning rate per 1024 images scaled to
    ``batch_size``). No warm-up: the orthogonalised steps have a fixed size from the first update,
    and every rate falls linearly to 0 at the end.
    """
    sgd_learning_rate = sgd_lr_per_1024 * batch_size / 1024
    return Muon(learning_rate=learning_rate, momentum=momentum, nesterov=True,
                sgd_lr_ratio=sgd_learning_rate / learning_rate, sgd_momentum=0.85,
                sgd_weight_decay=sgd_weight_decay, norm_lr_scale=norm_lr_scale, renormalize=True,
                schedule=WarmupLinearDecay(warmup=0.0, start=1.0, end=0.0))


_PRESETS: Registry[Preset] = Registry("preset")


def _register(preset: Preset) -> None:
    _PRESETS.add(preset.name, preset)


_register(Preset(
    name="tutorial",
    description="the Keras CIFAR-10 tutorial: seed-cnn, SGD lr 0.01 Nesterov, decay 1e-6, 10 epochs of batch 100",
    model="seed-cnn", epochs=10, batch_size=100,
    optimizer=get_entry("seed-cnn").default_optimizer,
))


# Muon for the filters at batch 512 (filters' rate 0.12, momentum 0.6; 0.06 and 0.24 did worse in 3-epoch
# trials), progressive resizing (24 of 32 pixels a side: about half the work per image), no weight
# averaging, and both TTA levels for the quarter of the test images the plain pass is least sure of.
# 10 epochs, the first 4 on crops: 94.06% mean over 5 seeds at 0.77-0.94x airbench94's time here (docs/performance.md).
_SPEEDRUN = Preset(
    name="94",
    description="94% on CIFAR-10: fastnet 64/256/256 with Muon for the filters, 10 epochs, the first 4 on 3/4-size "
                "crops, TTA for the least sure images",
    model="fastnet", model_options={"widths": (64, 256, 256)}, epochs=10, batch_size=512,
    optimizer=speedrun_muon(512, learning_rate=0.12, momentum=0.6, sgd_lr_per_1024=1.5, sgd_weight_decay=1.33e-3),
    label_smoothing=0.2, augmentation=Augmentation(flip="alternating", translate=2, crop=0.75, crop_epochs=4),
    tta=2, tta_fraction=0.25,
)
_register(_SPEEDRUN)  # first of the fastnet presets: the recipe ``--model fastnet`` trains with

# The same in 9 epochs, the first 3 on crops: a tenth faster, 93.97% mean over 5 seeds.
_register(replace(
    _SPEEDRUN, name="fast", epochs=9, augmentation=_SPEEDRUN.augmentation.with_crop_epochs(3),
    description="94's recipe in 9 epochs, the first 3 on crops: 93.97% on CIFAR-10 (5 seeds) in nine tenths of the time",
))

# The previous 94: Nesterov SGD on whole images with lookahead for 12 epochs (94.24% over 5 seeds, 1.15x airbench94).
# Batch 512 for 12 epochs: 10 epochs of 512 gave 93.99% on seed 0, 10 epochs of 256 only 93.74%.
_register(Preset(
    name="94-sgd",
    description="the speed-run recipe with Nesterov SGD (fastnet 64/256/256, whole images, lookahead, 12 epochs): "
                "94.24% on CIFAR-10",
    model="fastnet", model_options={"widths": (64, 256, 256)}, epochs=12, batch_size=512,
    optimizer=speedrun_sgd(512, lr_per_1024=1.5, weight_decay=1.33e-3),
    label_smoothing=0.2, augmentation=Augmentation(flip="alternating", translate=2), lookahead=True, tta=2,
))

# The same recipe in one epoch of a narrow fastnet, on whole images: crops made it about 1.4x faster on
# CIFAR-10 (76.0% instead of 83.5% on seed 0) but cost Fashion-MNIST 3 points (87.6% instead of 90.7%).
_register(replace(
    _SPEEDRUN, name="quick", description="better than the tutorial in seconds: a narrow fastnet with Muon for 1 epoch",
    model_options={"widths": (32, 64, 128)}, epochs=1, batch_size=256,
    optimizer=speedrun_muon(256, learning_rate=0.2, momentum=0.6, sgd_lr_per_1024=1.5, sgd_weight_decay=1.33e-3),
    augmentation=Augmentation(flip="alternating", translate=2), tta=1, tta_fraction=1.0,
))

# The public 96% speed-run recipe's shape in our parts: a wider fastnet with a residual third conv per
# group, 37 epochs of batch 1024, 4-pixel shifts and 12-pixel cutout against the longer training's
# overfitting, weight averaging, full TTA. Hours on a 2-core CPU; minutes on a GPU.
_register(Preset(
    name="96",
    description="96% on CIFAR-10 for GPUs and patient CPUs: fastnet 128/384/512 with 3 convs a group, 37 epochs, "
                "cutout, TTA",
    model="fastnet", model_options={"widths": (128, 384, 512), "depth": 3}, epochs=37, batch_size=1024,
    optimizer=speedrun_sgd(1024, lr_per_1024=1.2, weight_decay=1.33e-3),
    label_smoothing=0.2, augmentation=Augmentation(flip="alternating", translate=4, cutout=12), lookahead=True,
    tta=2,
))

# The same ingredients on a standard ResNet-18, whose trainable BatchNorm scales and plain
# initialisation want the classic CIFAR settings: lr 0.1 per 128 images, momentum 0.9, decay 5e-4.
_register(Preset(
    name="resnet18",
    description="ResNet-18 in 5 epochs: SGD with warm-up and linear decay, label smoothing, flip and shift, flip TTA",
    model="resnet18", epochs=5, batch_size=512,
    optimizer=speedrun_sgd(512, lr_per_1024=0.8, weight_decay=5e-4, momentum=0.9, norm_lr_scale=1.0),
    label_smoothing=0.1, augmentation=Augmentation(flip="alternating", translate=2), tta=1,
))


# Fine-tuning a trained model on a few hundred images of new classes (--init-from, --pretrained): the
# speed-run ingredients at a small batch for a short schedule. The new head learns alone for the first
# fifth of the steps, then the pretrained body joins at 0.3 of the head's rate (on 100 cats and 100 dogs,
# from a fastnet pre-trained on CIFAR-10's other classes, 0.3 did best of 0.03, 0.1, 0.3, 0.5 and 1,
# 0.5 within the noise: docs/photos.md).
_register(Preset(
    name="finetune",
    description="fine-tune a trained model (--init-from, --pretrained) on new classes: the new head alone first, "
                "then the body at 0.3 of its learning rate",
    model="fastnet", model_options={"widths": (64, 256, 256)}, epochs=10, batch_size=64,
    # BatchNorm learns at the same rate as the rest (norm_lr_scale 1): as good as 64 here, and safe for
    # pretrained networks whose BatchNorm scales train (timm's).
    optimizer=speedrun_sgd(64, lr_per_1024=1.5, weight_decay=1.33e-3, norm_lr_scale=1.0),
    label_smoothing=0.2, augmentation=Augmentation(flip="alternating", translate=2), tta=2,
    fine_tuning=FineTuning(body_lr_scale=0.3, head_only=0.2),
))


def get(name: str) -> Preset:
    """The preset called ``name``; a ConfigError listing the known names if there is none."""
    return _PRESETS.get(name)


def names() -> list[str]:
    """Names of all presets."""
    return _PRESETS.names()


DEFAULT = "94"


FINE_TUNING = "finetune"  # the recipe of a model started from pretrained weights, when no preset is named


def for_model(model: str | None) -> Preset:
    """The recipe a model trains with when no preset is named: the first preset built on it
    (``seed-cnn``: ``tutorial``, ``fastnet``: ``94``), ``resnet18``'s for a timm model (a standard
    network with trainable BatchNorm scales), else the default preset with that model."""
    if model is None:
        return get(DEFAULT)
    if model.startswith(timm_models.PREFIX):
        return get("resnet18")
    for name in names():
        if get(name).model == model:
            return get(name)
    return get(DEFAULT)
