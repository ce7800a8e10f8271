"""Holdout splits mirror the class mix; batch plans cover every sample once."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainval.data.batches import count_training_batches, evaluation_slices, sample_order, split_order
from trainval.data.splits import holdout_split
from trainval.errors import ConfigError


def test_holdout_takes_each_class_in_proportion():
    labels = np.repeat(np.arange(10), 5000)
    train, validation = holdout_split(labels, 5000, seed=0)
    assert len(validation) == 5000 and len(train) == 45000
    assert np.array_equal(np.bincount(labels[validation]), np.full(10, 500))


def test_holdout_is_disjoint_complete_and_sorted():
    labels = np.random.default_rng(0).integers(0, 7, size=1001)
    train, validation = holdout_split(labels, 0.15, seed=3)
    assert len(np.intersect1d(train, validation)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, validation])), np.arange(1001))
    assert len(validation) == round(0.15 * 1001)
    assert np.all(np.diff(validation) > 0) and np.all(np.diff(train) > 0)


def test_holdout_depends_on_the_seed_only():
    labels = np.arange(300) % 3
    assert np.array_equal(holdout_split(labels, 0.1, seed=1)[1], holdout_split(labels, 0.1, seed=1)[1])
    assert not np.array_equal(holdout_split(labels, 0.1, seed=1)[1], holdout_split(labels, 0.1, seed=2)[1])


@pytest.mark.parametrize("size", [0.0, 1.0, -0.2, 0, 100])
def test_holdout_refuses_sizes_that_leave_nothing(size):
    with pytest.raises(ConfigError):
        holdout_split(np.arange(100) % 2, size)


@settings(max_examples=50, deadline=None)
@given(samples=st.integers(1, 200), batch_size=st.integers(1, 64), shuffle=st.booleans())
def test_training_batches_use_every_sample_once_and_never_a_batch_of_one(samples, batch_size, shuffle):
    batches = split_order(sample_order(samples, shuffle, torch.Generator().manual_seed(0)), batch_size)
    assert torch.equal(torch.sort(torch.cat(batches)).values, torch.arange(samples))
    if samples > 1:
        assert min(len(b) for b in batches) > 1 or batch_size == 1
    assert all(len(b) <= batch_size + 1 for b in batches)


@settings(max_examples=80, deadline=None)
@given(samples=st.integers(1, 200), batch_size=st.integers(1, 64), processes=st.integers(1, 8))
def test_data_parallel_batches_give_every_process_a_sample_and_are_counted_right(samples, batch_size, processes):
    batches = split_order(torch.arange(samples), batch_size, processes)
    assert len(batches) == count_training_batches(samples, batch_size, processes)
    assert torch.equal(torch.cat(batches), torch.arange(samples))
    if len(batches) > 1:  # only a data set smaller than the processes can leave one without a sample
        assert min(len(b) for b in batches) >= min(processes, batch_size)
        assert all(len(b) < batch_size + max(2, processes) for b in batches)
    if processes <= 2:  # one or two processes: the single-process batches (only a lone last sample merges)
        assert [len(b) for b in batches] == [len(b) for b in split_order(torch.arange(samples), batch_size)]


def test_evaluation_slices_keep_the_last_partial_batch():
    slices = evaluation_slices(10, 4)
    assert [(s.start, s.stop) for s in slices] == [(0, 4), (4, 8), (8, 10)]
