"""Which samples go into which batch: index tensors, so a batch is one gather from memory."""

from __future__ import annotations

import torch


def sample_order(num_samples: int, shuffle: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """One epoch's order of sample indices: a permutation drawn from ``generator``, or 0..N-1, on the
    generator's device (the CPU without one)."""
    device = generator.device if generator is not None else None
    if shuffle:
        return torch.randperm(num_samples, generator=generator, device=device)
    return torch.arange(num_samples, device=device)


def split_order(order: torch.Tensor, batch_size: int, processes: int = 1) -> list[torch.Tensor]:
    """Cut an epoch's order into batches of ``batch_size``; the last may be partial.

    A last batch too small to share joins the batch before it: a lone sample, because BatchNorm
    cannot normalise a batch of one, and in data-parallel training any last batch with fewer
    samples than ``processes``, which would leave a process nothing to train on. Every other
    partial batch is kept as it is. (With ``batch_size=1`` every batch is a lone sample and none
    is merged.)
    """
    batches = list(torch.split(order, batch_size))
    if len(batches) > 1 and len(batches[-1]) < _smallest_last_batch(batch_size, processes):
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def count_training_batches(num_samples: int, batch_size: int, processes: int = 1) -> int:
    """How many batches :func:`split_order` makes (its merging of a small last batch included)."""
    batches = -(-num_samples // batch_size)
    last = num_samples - (batches - 1) * batch_size
    return batches - (batches > 1 and last < _smallest_last_batch(batch_size, processes))


def _smallest_last_batch(batch_size: int, processes: int) -> int:
    return 1 if batch_size == 1 else max(2, processes)


def evaluation_slices(num_samples: int, batch_size: int) -> list[slice]:
    """Consecutive slices over all samples in order; the last may be partial and is never dropped."""
    return [slice(start, min(start + batch_size, num_samples)) for start in range(0, num_samples, batch_size)]
