"""Shared fixtures: a tiny CIFAR-10 in the official format, with the user cache kept in tmp_path."""

from __future__ import annotations

import pytest

from cifar_files import write_cifar10_folder


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
