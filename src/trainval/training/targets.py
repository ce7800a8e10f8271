"""What a training batch is scored against: each image's class and weight, and, when MixUp or CutMix
mixed the batch, its partner's class and weight and the share of its own label.

The loss follows Keras: a sample's weight (its ``sample_weight`` times its ``class_weight``)
multiplies its loss, and the batch's loss is the sum over the batch divided by the number of images
(Keras's ``sum_over_batch_size``), so a data-parallel rank's mean, weighted by its share of the batch,
still adds up to exactly the global batch's loss. A mixed image's loss is ``share`` times the loss
against its own label plus ``1 - share`` times the loss against its partner's: for cross-entropy
that is exactly the cross-entropy against the soft label ``share * onehot(a) + (1 - share) *
onehot(b)``, label smoothing included (smoothing is affine in the label), and each part carries the
weight of the image it came from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from trainval.data.class_weights import sample_weights
from trainval.errors import ConfigError
from trainval.training.losses import CategoricalCrossentropy

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # loss(logits, class indices)


def training_weights(loss_fn: LossFunction, labels: torch.Tensor, num_classes: int,
                     class_weight: Mapping[int, float] | str | None, sample_weight: Any) -> torch.Tensor | None:
    """Each training sample's loss weight from ``fit``'s ``class_weight`` or ``sample_weight`` (None: unweighted);
    a ConfigError if ``loss_fn`` cannot be weighted per sample."""
    weights = sample_weights(labels, num_classes, class_weight, sample_weight)
    if weights is not None and per_sample_losses(loss_fn) is None:
        raise ConfigError("class_weight and sample_weight need a loss trainval can weight per sample: "
                          "'categorical_crossentropy' or trainval.losses.CategoricalCrossentropy")
    return weights


def per_sample_losses(loss_fn: LossFunction) -> LossFunction | None:
    """The unreduced (N,) form of ``loss_fn``, for weighting; None for a custom loss that returns only a mean."""
    if loss_fn is F.cross_entropy:
        return lambda logits, classes: F.cross_entropy(logits, classes, reduction="none")
    if isinstance(loss_fn, CategoricalCrossentropy):
        return loss_fn.per_sample
    return None


@dataclass(frozen=True)
class BatchTargets:
    """The labels of the images a step trains on, on the training device."""

    classes: torch.Tensor  # int64 (N,)
    weights: torch.Tensor | None = None  # float32 (N,); None: every image weighs 1
    partner_classes: torch.Tensor | None = None  # the class of the image each one was mixed with
    partner_weights: torch.Tensor | None = None
    share: float = 1.0  # of each image's own label; the partner's label has the rest

    @classmethod
    def of(cls, labels: torch.Tensor, sample_weights: torch.Tensor | None, indices: torch.Tensor,
           device: torch.device) -> BatchTargets:
        """The targets of samples ``indices`` of a data set's ``labels`` and ``sample_weights`` (None: unweighted)."""
        weights = None if sample_weights is None else sample_weights[indices].to(device, non_blocking=True)
        return cls(labels[indices].to(device, non_blocking=True), weights)

    def mixed_with(self, partners: BatchTargets, share: float) -> BatchTargets:
        """These targets with ``partners``' mixed in, each image keeping ``share`` of its own label."""
        return replace(self, partner_classes=partners.classes, partner_weights=partners.weights, share=share)

    @property
    def dominant_classes(self) -> torch.Tensor:
        """The label with the larger share, which training accuracy counts against (Keras's categorical
        accuracy on a soft label)."""
        if self.partner_classes is None or self.share >= 0.5:
            return self.classes
        return self.partner_classes

    def loss(self, loss_fn: LossFunction, logits: torch.Tensor) -> torch.Tensor:
        """The batch's mean loss, weighted and mixed as the module docstring says."""
        own = _weighted_mean(loss_fn, logits, self.classes, self.weights)
        if self.partner_classes is None:
            return own
        partners = _weighted_mean(loss_fn, logits, self.partner_classes, self.partner_weights)
        return self.share * own + (1.0 - self.share) * partners


def _weighted_mean(loss_fn: LossFunction, logits: torch.Tensor, classes: torch.Tensor,
                   weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return loss_fn(logits, classes)
    per_sample = per_sample_losses(loss_fn)
    assert per_sample is not None, "Model.fit refuses weights with a loss it cannot weight"
    return (per_sample(logits, classes) * weights).sum() / len(classes)
