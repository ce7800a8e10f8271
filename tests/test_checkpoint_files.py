"""Checkpoint files: a failed write keeps the previous one; damaged files always give CheckpointError."""

from __future__ import annotations

import errno
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trainval
from trainval.callbacks import BackupAndRestore, Callback
from trainval.errors import CheckpointError
from trainval.runs.state_file import dump_state, parse_state, read_state

from tiny_data import TinyNet, tiny_images


def _fit(backup_dir, callbacks=(), epochs=2):
    torch.manual_seed(0)
    model = trainval.Model(TinyNet(), num_classes=4)
    images, labels = tiny_images(count=40, size=8)
    model.fit(images, labels, batch_size=8, epochs=epochs, seed=1, verbose=0,
              callbacks=[*callbacks, BackupAndRestore(backup_dir, save_freq=1, delete_checkpoint=False)])
    return model


def _full_disk(*args):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class HalfWritingFile:
    """A file whose writes stop halfway with ENOSPC, as on a disk that fills up mid-write."""

    def __init__(self, handle):
        self.handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def write(self, data):
        self.handle.write(data[: len(data) // 2])
        self.handle.flush()
        _full_disk()


def _break_writes(monkeypatch, how):
    if how == "fsync":
        monkeypatch.setattr(os, "fsync", _full_disk)
    else:
        real_fdopen = os.fdopen
        monkeypatch.setattr(os, "fdopen", lambda fd, mode: HalfWritingFile(real_fdopen(fd, mode)))


class FailWritesAfter(Callback):
    """From step ``steps`` on, every file write fails as on a full disk."""

    def __init__(self, steps, monkeypatch, how):
        super().__init__()
        self.steps, self.monkeypatch, self.how, self.done = steps, monkeypatch, how, 0

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done == self.steps:
            _break_writes(self.monkeypatch, self.how)


@pytest.mark.parametrize("how", ["half-write", "fsync"])
def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint_and_resume_still_matches(tmp_path, monkeypatch, how):
    reference = _fit(tmp_path / "reference")
    with pytest.raises(CheckpointError, match="No space left on device.*previous checkpoint there is intact"):
        _fit(tmp_path / "backup", callbacks=[FailWritesAfter(3, monkeypatch, how)])
    monkeypatch.undo()
    state = read_state(tmp_path / "backup" / "last.safetensors")
    assert (state["fit"]["epoch"], state["fit"]["batch"]) == (0, 2)  # the last write that succeeded
    assert [p.name for p in (tmp_path / "backup").iterdir()] == ["last.safetensors"]  # no temporary left
    resumed = _fit(tmp_path / "backup")
    for name, value in reference.module.state_dict().items():
        assert torch.equal(resumed.module.state_dict()[name], value), name


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    _fit(folder, epochs=1)
    return (folder / "last.safetensors").read_bytes()


def test_an_intact_checkpoint_parses(checkpoint_bytes):
    assert parse_state(checkpoint_bytes, "ckpt")["format"] == "trainval-checkpoint"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_truncated_checkpoint_is_always_a_checkpoint_error(checkpoint_bytes, data):
    length = data.draw(st.integers(0, len(checkpoint_bytes) - 1))
    with pytest.raises(CheckpointError, match="truncated or corrupt|does not hold"):
        parse_state(checkpoint_bytes[:length], "ckpt")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_flipped_bits_anywhere_in_a_checkpoint_are_always_a_checkpoint_error(checkpoint_bytes, data):
    damaged = bytearray(checkpoint_bytes)
    header_end = 8 + int.from_bytes(checkpoint_bytes[:8], "little")
    # Half the flips land in the header (JSON, offsets, metadata), half anywhere.
    for _ in range(data.draw(st.integers(1, 3))):
        limit = header_end if data.draw(st.booleans()) else len(damaged)
        position = data.draw(st.integers(0, limit - 1))
        damaged[position] ^= 1 << data.draw(st.integers(0, 7))
    if bytes(damaged) == checkpoint_bytes:  # two flips of the same bit cancel
        return
    with pytest.raises(CheckpointError):
        parse_state(bytes(damaged), "ckpt")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_are_a_checkpoint_error(blob):
    with pytest.raises(CheckpointError):
        parse_state(blob, "ckpt")


def test_a_damaged_checkpoint_stops_a_resuming_fit_with_a_clear_error(tmp_path, checkpoint_bytes):
    (tmp_path / "last.safetensors").write_bytes(checkpoint_bytes[: len(checkpoint_bytes) // 2])
    with pytest.raises(CheckpointError, match="last.safetensors is truncated or corrupt"):
        _fit(tmp_path)


def test_state_files_keep_integer_keys_dtypes_and_special_floats():
    state = {"optimizer": {0: {"momentum": torch.ones(3, dtype=torch.bfloat16)}}, "flags": torch.tensor([True, False]),
             "best": float("inf"), "nested": [1, None, "x"], "scalar": torch.tensor(2.5, dtype=torch.float64)}
    back = parse_state(dump_state(state), "mem")
    assert list(back["optimizer"]) == [0] and back["optimizer"][0]["momentum"].dtype == torch.bfloat16
    assert torch.equal(back["flags"], state["flags"]) and back["best"] == float("inf")
    assert back["nested"] == [1, None, "x"] and back["scalar"].item() == 2.5
