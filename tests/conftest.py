"""Shared fixtures: a tiny CIFAR-10 in the official format, with the user cache kept in tmp_path; the
``gpu`` tests skipped without a CUDA GPU."""

from __future__ import annotations

import pytest
import torch

from cifar_files import write_cifar10_folder


def pytest_collection_modifyitems(config, items):
    """Skip the ``gpu`` tests, with the reason, where torch sees no CUDA GPU."""
    if torch.cuda.is_available():
        return
    no_gpu = pytest.mark.skip(reason="needs a CUDA GPU: torch.cuda.is_available() is False here")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(no_gpu)


@pytest.fixture(autouse=True)
def _work_in_tmp_path(tmp_path, monkeypatch):
    """Run every test in its own folder, so run folders (./runs) never land in the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TRAINVAL_DATA", raising=False)
    write_cifar10_folder(tmp_path / "data")
    return tmp_path / "data"
