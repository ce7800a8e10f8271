"""Which samples go into which batch: index tensors, so a batch is one gather from memory."""

from __future__ import annotations

import torch


def sample_order(num_samples: int, shuffle: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """One epoch's order of sample indices: a permutation drawn from ``generator``, or 0..N-1."""
    return torch.randperm(num_samples, generator=generator) if shuffle else torch.arange(num_samples)


def split_order(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Cut an epoch's order into batches of ``batch_size``; the last may be partial.

    A lone sample left over at the end joins the batch before it, because BatchNorm cannot
    normalise a batch of one; every other partial batch is kept as it is. (With ``batch_size=1``
    every batch is a lone sample and none is merged.)
    """
    batches = list(torch.split(order, batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1 and batch_size > 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def count_training_batches(num_samples: int, batch_size: int) -> int:
    """How many batches :func:`training_batches` makes (its lone-sample rule included)."""
    batches = -(-num_samples // batch_size)
    lone_last = batches > 1 and num_samples % batch_size == 1
    return batches - lone_last


def evaluation_slices(num_samples: int, batch_size: int) -> list[slice]:
    """Consecutive slices over all samples in order; the last may be partial and is never dropped."""
    return [slice(start, min(start + batch_size, num_samples)) for start in range(0, num_samples, batch_size)]
