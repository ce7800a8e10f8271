"""CIFAR-10 loading: locating, decoding, caching, downloading and refusing bad files.

Every test works on a tiny generated data set (``cifar_files``) in the official format, with
``XDG_CACHE_HOME`` pointing into ``tmp_path`` so nothing touches the real user cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import pickletools
import shlex
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cifar_files import (
    ARCHIVE_NAME,
    FOLDER_NAME,
    LABEL_NAMES,
    META_FILE,
    PROBE_PIXEL,
    PROBE_TEST_RGB,
    PROBE_TRAIN_RGB,
    TEST_FILE,
    TRAIN_FILES,
    batch_files,
    expected_arrays,
    make_batch,
    pickle_batch,
    write_cifar10_folder,
    write_cifar10_tarball,
)
from trainval.atomic_files import atomic_writer
from trainval.datasets import cifar10, cifar_format
from trainval.datasets.download import download_and_verify
from trainval.datasets.safe_pickle import safe_loads


def file_md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()
from trainval.errors import DataError

try:
    import resource
except ImportError:  # Windows has no RLIMIT_AS; the fuzz tests are skipped there
    resource = None


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every cache write inside tmp_path and ignore the caller's TRAINVAL_DATA."""
    cache_home = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    monkeypatch.delenv("TRAINVAL_DATA", raising=False)
    return cache_home


@pytest.fixture
def cache_home(_isolated_cache: Path) -> Path:
    return _isolated_cache


def assert_loaded_as_written(loaded, train_per_batch: int = 6, test_size: int = 10, seed: int = 0) -> None:
    (x_train, y_train), (x_test, y_test) = loaded
    want = expected_arrays(train_per_batch, test_size, seed)
    n_train = 5 * train_per_batch
    assert x_train.shape == (n_train, 32, 32, 3) and x_train.dtype == np.uint8
    assert y_train.shape == (n_train, 1) and y_train.dtype == np.uint8
    assert x_test.shape == (test_size, 32, 32, 3) and x_test.dtype == np.uint8
    assert y_test.shape == (test_size, 1) and y_test.dtype == np.uint8
    np.testing.assert_array_equal(x_train, want.x_train)
    np.testing.assert_array_equal(y_train, want.y_train)
    np.testing.assert_array_equal(x_test, want.x_test)
    np.testing.assert_array_equal(y_test, want.y_test)


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Wrap cifar10._decode so that the test can count how often the pickles are decoded."""
    calls: list[int] = []
    original = cifar10._decode

    def counting(read_members):
        calls.append(1)
        return original(read_members)

    monkeypatch.setattr(cifar10, "_decode", counting)
    return calls


def refuse_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(read_members):
        raise AssertionError("the pickles were decoded again instead of read from the .npy cache")

    monkeypatch.setattr(cifar10, "_decode", fail)


# ---------------------------------------------------------------------------------------------
# Finding and decoding the files


def test_load_data_from_extracted_folder_returns_arrays_as_written(tmp_path: Path) -> None:
    folder = write_cifar10_folder(tmp_path / "data")
    assert_loaded_as_written(cifar10.load_data(folder))


def test_load_data_from_parent_of_extracted_folder_returns_arrays_as_written(tmp_path: Path) -> None:
    write_cifar10_folder(tmp_path / "data")
    assert_loaded_as_written(cifar10.load_data(tmp_path / "data"))


def test_load_data_from_cifar10_subfolder_of_given_folder(tmp_path: Path) -> None:
    write_cifar10_folder(tmp_path / "data" / "cifar10")
    assert_loaded_as_written(cifar10.load_data(str(tmp_path / "data")))


def test_load_data_from_folder_holding_only_the_tarball(tmp_path: Path) -> None:
    archive = write_cifar10_tarball(tmp_path / "data", train_per_batch=4, test_size=7, seed=3)
    assert sorted(os.listdir(archive.parent)) == [ARCHIVE_NAME]
    assert_loaded_as_written(cifar10.load_data(archive.parent), train_per_batch=4, test_size=7, seed=3)


def test_load_data_reads_pickles_written_by_python3_too(tmp_path: Path) -> None:
    folder = write_cifar10_folder(tmp_path / "data", seed=5, style="python3")
    assert b"_codecs\nencode" in (folder / TEST_FILE).read_bytes()
    assert_loaded_as_written(cifar10.load_data(folder), seed=5)


def test_load_data_uses_trainval_data_env_var_when_no_folder_is_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_home: Path) -> None:
    write_cifar10_folder(tmp_path / "data", seed=2)
    monkeypatch.setenv("TRAINVAL_DATA", str(tmp_path / "data"))
    assert_loaded_as_written(cifar10.load_data(), seed=2)
    assert not (cache_home / "trainval" / "cifar10").exists(), "nothing should have been downloaded"


def test_data_dir_argument_takes_precedence_over_trainval_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_cifar10_folder(tmp_path / "data")
    monkeypatch.setenv("TRAINVAL_DATA", str(tmp_path / "does-not-exist"))
    assert_loaded_as_written(cifar10.load_data(folder))


def test_load_data_decodes_colour_planes_into_last_axis(tmp_path: Path) -> None:
    folder = write_cifar10_folder(tmp_path / "data")
    (x_train, _), (x_test, _) = cifar10.load_data(folder)
    row, col = PROBE_PIXEL
    assert tuple(x_train[0, row, col]) == PROBE_TRAIN_RGB
    assert tuple(x_test[0, row, col]) == PROBE_TEST_RGB
    # And against the raw rows of the file: 1024 red values, 1024 green, 1024 blue, row-major.
    raw = pickle.loads((folder / TRAIN_FILES[1]).read_bytes(), encoding="bytes")[b"data"]
    image = 6 + 2  # the third image of data_batch_2 (6 images per batch)
    for h, w in [(0, 0), (5, 17), (31, 31)]:
        for c in range(3):
            assert x_train[image, h, w, c] == raw[2, c * 1024 + h * 32 + w]


def test_load_data_keeps_official_label_order_covering_all_classes(tmp_path: Path) -> None:
    folder = write_cifar10_folder(tmp_path / "data")
    (_, y_train), (_, y_test) = cifar10.load_data(folder)
    labels_in_files = [label for name in TRAIN_FILES
                       for label in pickle.loads((folder / name).read_bytes(), encoding="bytes")[b"labels"]]
    assert y_train[:, 0].tolist() == labels_in_files
    assert set(y_train[:, 0].tolist()) == set(range(10))
    assert set(y_test[:, 0].tolist()) == set(range(10))


def test_class_names_are_the_ten_names_of_batches_meta(tmp_path: Path) -> None:
    folder = write_cifar10_folder(tmp_path / "data")
    from_meta = [name.decode() for name in safe_loads((folder / META_FILE).read_bytes())[b"label_names"]]
    assert len(cifar10.CLASS_NAMES) == cifar10.NUM_CLASSES == 10
    assert len(set(cifar10.CLASS_NAMES)) == 10
    assert list(cifar10.CLASS_NAMES) == from_meta == [name.decode() for name in LABEL_NAMES]


# ---------------------------------------------------------------------------------------------
# The decoded .npy cache


def test_second_load_comes_from_decoded_npy_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_cifar10_folder(tmp_path / "data")
    first = cifar10.load_data(folder)
    refuse_decoding(monkeypatch)
    second = cifar10.load_data(folder)
    assert_loaded_as_written(second)
    for a, b in zip(first[0] + first[1], second[0] + second[1]):
        np.testing.assert_array_equal(a, b)


def test_decoded_cache_lives_under_xdg_cache_home(tmp_path: Path, cache_home: Path) -> None:
    folder = write_cifar10_folder(tmp_path / "data")
    (x_train, y_train), (x_test, y_test) = cifar10.load_data(folder)
    entries = list((cache_home / "trainval" / "decoded").glob("cifar10-*"))
    assert len(entries) == 1
    assert sorted(p.name for p in entries[0].iterdir()) == [
        "complete", "x_test.npy", "x_train.npy", "y_test.npy", "y_train.npy"]
    np.testing.assert_array_equal(np.load(entries[0] / "x_train.npy"), x_train)
    np.testing.assert_array_equal(np.load(entries[0] / "y_test.npy"), y_test)


def test_loading_from_folder_or_its_parent_shares_one_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_cifar10_folder(tmp_path / "data")
    cifar10.load_data(folder)
    refuse_decoding(monkeypatch)
    assert_loaded_as_written(cifar10.load_data(folder.parent))


def test_touching_a_source_file_invalidates_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_cifar10_folder(tmp_path / "data")
    calls = count_decodes(monkeypatch)
    cifar10.load_data(folder)
    cifar10.load_data(folder)
    assert len(calls) == 1
    stat = (folder / TRAIN_FILES[2]).stat()
    os.utime(folder / TRAIN_FILES[2], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert_loaded_as_written(cifar10.load_data(folder))
    assert len(calls) == 2


def test_replacing_the_source_files_invalidates_the_cache(tmp_path: Path) -> None:
    folder = write_cifar10_folder(tmp_path / "data")
    assert_loaded_as_written(cifar10.load_data(folder))
    write_cifar10_folder(tmp_path / "data", train_per_batch=7, test_size=4, seed=9)
    assert_loaded_as_written(cifar10.load_data(folder), train_per_batch=7, test_size=4, seed=9)


def test_replacing_the_tarball_invalidates_the_cache(tmp_path: Path) -> None:
    archive = write_cifar10_tarball(tmp_path / "data")
    assert_loaded_as_written(cifar10.load_data(archive.parent))
    write_cifar10_tarball(tmp_path / "data", train_per_batch=2, test_size=3, seed=4)
    assert_loaded_as_written(cifar10.load_data(archive.parent), train_per_batch=2, test_size=3, seed=4)


@pytest.mark.parametrize("damage", [lambda cached: cached.write_bytes(cached.read_bytes()[:100]), Path.unlink],
                         ids=["truncated", "missing"])
def test_damaged_or_missing_cache_file_is_decoded_again(tmp_path: Path, cache_home: Path,
                                                        monkeypatch: pytest.MonkeyPatch, damage) -> None:
    folder = write_cifar10_folder(tmp_path / "data")
    calls = count_decodes(monkeypatch)
    cifar10.load_data(folder)
    (entry,) = (cache_home / "trainval" / "decoded").glob("cifar10-*")
    damage(entry / "x_train.npy")
    assert_loaded_as_written(cifar10.load_data(folder))
    assert len(calls) == 2


# ---------------------------------------------------------------------------------------------
# Missing, incomplete and corrupt files


def test_missing_folder_raises_data_error_naming_it_and_how_to_point_at_data(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    with pytest.raises(DataError) as caught:
        cifar10.load_data(missing)
    message = str(caught.value)
    assert str(missing) in message
    assert "--data-dir" in message and "TRAINVAL_DATA" in message


def test_missing_trainval_data_folder_raises_data_error_naming_it(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "env-folder"
    monkeypatch.setenv("TRAINVAL_DATA", str(missing))
    with pytest.raises(DataError, match="TRAINVAL_DATA") as caught:
        cifar10.load_data()
    assert str(missing) in str(caught.value)


def test_folder_without_cifar_files_raises_data_error_naming_it_and_how_to_point_at_data(tmp_path: Path) -> None:
    folder = tmp_path / "wrong"
    (folder / "cifar10").mkdir(parents=True)
    (folder / "readme.txt").write_text("not CIFAR\n")
    (folder / "batches.meta").write_bytes(batch_files(1, 1)[META_FILE])
    with pytest.raises(DataError) as caught:
        cifar10.load_data(folder)
    message = str(caught.value)
    assert str(folder) in message
    assert "--data-dir" in message and "TRAINVAL_DATA" in message


def test_missing_data_batch_3_raises_data_error_naming_it(tmp_path: Path) -> None:
    folder = write_cifar10_folder(tmp_path / "data")
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3"):
        cifar10.load_data(folder)


def test_tarball_missing_data_batch_4_raises_data_error_naming_it(tmp_path: Path) -> None:
    archive = write_cifar10_tarball(tmp_path / "data", omit=("data_batch_4",))
    with pytest.raises(DataError, match="data_batch_4"):
        cifar10.load_data(archive.parent)


def test_truncated_data_batch_2_raises_data_error_naming_it(tmp_path: Path) -> None:
    folder = write_cifar10_folder(tmp_path / "data")
    path = folder / "data_batch_2"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="data_batch_2"):
        cifar10.load_data(folder)


def test_truncated_tarball_raises_data_error_naming_it(tmp_path: Path) -> None:
    archive = write_cifar10_tarball(tmp_path / "data")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError) as caught:
        cifar10.load_data(archive.parent)
    assert str(archive) in str(caught.value)


def test_tarball_with_corrupt_compressed_stream_raises_data_error(tmp_path: Path) -> None:
    archive = write_cifar10_tarball(tmp_path / "data")
    raw = bytearray(archive.read_bytes())
    start_of_deflate = raw.index(b"\x00", 10) + 1  # after the gzip header and its file name
    raw[start_of_deflate] ^= 0xFF
    archive.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=ARCHIVE_NAME):
        cifar10.load_data(archive.parent)


def test_tarball_with_one_altered_byte_fails_gzip_checksum(tmp_path: Path) -> None:
    """gzip stores a CRC-32 of the content; a byte changed on disk must not load as silently wrong pixels."""
    archive = write_cifar10_tarball(tmp_path / "data")
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    archive.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=ARCHIVE_NAME):
        cifar10.load_data(archive.parent)


class _Pwn:
    """Pickles as a call of ``function(*args)``: what a crafted CIFAR file would smuggle in."""

    def __init__(self, function, *args) -> None:
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


@pytest.mark.parametrize("attack", ["os.system", "builtins.eval", "builtins.exec"])
def test_pickle_that_calls_code_is_refused_without_running_it(tmp_path: Path, attack: str) -> None:
    folder = write_cifar10_folder(tmp_path / "data")
    marker = tmp_path / "pwned"
    payload = {
        "os.system": _Pwn(os.system, "touch " + shlex.quote(str(marker))),
        "builtins.eval": _Pwn(eval, f"open({str(marker)!r}, 'w').close()"),
        "builtins.exec": _Pwn(exec, f"open({str(marker)!r}, 'w').close()"),
    }[attack]
    batch = make_batch(np.zeros((2, 32, 32, 3), np.uint8), np.array([0, 1]), b"testing batch 1 of 1")
    batch[b"data"] = payload
    blob = pickle.dumps(batch, protocol=2)
    assert attack.split(".")[1].encode() in blob
    (folder / TEST_FILE).write_bytes(blob)
    with pytest.raises(DataError, match=TEST_FILE):
        cifar10.load_data(folder)
    assert not marker.exists()
    pickle.loads(blob)  # the payload is live: an unrestricted unpickler runs it
    assert marker.exists()


# ---------------------------------------------------------------------------------------------
# read_batch: malformed content and fuzzing


def _valid_batch(n: int = 2, style: str = "python3") -> bytes:
    want = expected_arrays(train_per_batch=1, test_size=n, seed=7)
    return pickle_batch(make_batch(want.x_test, want.y_test, b"testing batch 1 of 1"), style)


def _good_batch_dict(n: int = 2) -> dict:
    return make_batch(np.zeros((n, 32, 32, 3), np.uint8), np.arange(n), b"batch")


def _malformed(**changes) -> bytes:
    content = _good_batch_dict()
    for key, value in changes.items():
        content[key.encode()] = value
    return pickle.dumps(content, protocol=2)


def _flip_encoding_name(blob: bytes) -> bytes:
    """Python 3 writes bytes as _codecs.encode(text, 'latin1'); one flipped bit names no codec."""
    at = blob.index(b"latin1")
    return blob[:at] + b"latin0" + blob[at + 6:]


def _flip_dtype_state_to_dict(blob: bytes) -> bytes:
    """NumPy's dtype state tuple ends in ``K\\x00 t`` (flags 0, TUPLE); one bit turns TUPLE into DICT."""
    at = blob.index(b"J\xff\xff\xff\xffK\x00t") + 7
    return blob[:at] + b"d" + blob[at + 1:]


MALFORMED_BATCHES = {
    "not a dict": pickle.dumps([1, 2, 3], protocol=2),
    "no data key": pickle.dumps({b"labels": [1]}, protocol=2),
    "data float": _malformed(data=np.zeros((2, 3072), np.float32)),
    "data rows too short": _malformed(data=np.zeros((2, 3071), np.uint8)),
    "data not an array": _malformed(data=b"\x00" * 6144),
    "labels missing": _malformed(labels=None),
    "labels count differs": _malformed(labels=[1, 2, 3]),
    "label 10": _malformed(labels=[1, 10]),
    "label -1": _malformed(labels=[-1, 1]),
    "labels text": _malformed(labels=[b"cat", b"dog"]),
    "label beyond int64": _malformed(labels=[1, 2**70]),
    "empty": b"",
    "not a pickle": b"this is not a pickle at all",
    "unknown codec name": _flip_encoding_name(_valid_batch()),
    "dtype state is a dict": _flip_dtype_state_to_dict(_valid_batch()),
}


@pytest.mark.parametrize("blob", MALFORMED_BATCHES.values(), ids=MALFORMED_BATCHES.keys())
def test_read_batch_turns_malformed_content_into_data_error_naming_the_file(blob: bytes) -> None:
    with pytest.raises(DataError, match="data_batch_5"):
        cifar_format.read_batch(blob, "data_batch_5", b"labels", 10)


def test_read_batch_error_names_the_exception_when_it_has_no_text(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail_without_text(blob: bytes) -> None:
        raise MemoryError()

    monkeypatch.setattr(cifar_format, "safe_loads", fail_without_text)
    with pytest.raises(DataError, match="data_batch_5") as caught:
        cifar_format.read_batch(b"irrelevant", "data_batch_5", b"labels", 10)
    assert "()" not in str(caught.value)
    assert "MemoryError" in str(caught.value)


def test_read_batch_refuses_a_petabyte_bytearray_before_allocating_it() -> None:
    blob = b"\x80\x02\x96" + struct.pack("<Q", 1 << 50)
    with pytest.raises(DataError, match="data_batch_5"):
        cifar_format.read_batch(blob, "data_batch_5", b"labels", 10)


@pytest.mark.parametrize("flags", [1, 8, 16])
def test_read_batch_refuses_or_cleans_a_data_dtype_with_tampered_flags(flags: int) -> None:
    """NumPy's dtype state carries its flags; flag 1 claims the uint8 items are Python objects."""
    blob = _valid_batch(style="python2")
    at = blob.index(b"J\xff\xff\xff\xffK\x00t") + 6
    tampered = blob[:at] + bytes([flags]) + blob[at + 1:]
    try:
        images, labels = cifar_format.read_batch(tampered, "data_batch_5", b"labels", 10)
    except DataError:
        return
    assert images.dtype.flags == np.dtype(np.uint8).flags
    assert not images.dtype.hasobject
    np.testing.assert_array_equal(images, expected_arrays(train_per_batch=1, test_size=2, seed=7).x_test)


@contextlib.contextmanager
def _address_space_headroom(extra_bytes: int = 1 << 30) -> Iterator[None]:
    """Cap this process's address space a little above its current size, then restore the limit.

    CPython's C unpickler grows its memo to whatever index a LONG_BINPUT names, so one flipped
    bit can make it allocate (and zero) tens of GB. Capped, such an input fails at once with
    MemoryError, which read_batch must also turn into DataError.
    """
    with open("/proc/self/statm") as statm:
        current = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = current + extra_bytes
    for existing in (soft, hard):
        if existing != resource.RLIM_INFINITY:
            limit = min(limit, existing)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


needs_linux = pytest.mark.skipif(resource is None or not sys.platform.startswith("linux"),
                                 reason="fuzzing needs RLIMIT_AS to stop pickle memo blow-ups")

FUZZ_SETTINGS = settings(max_examples=30, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow])
_FUZZ_BLOBS = {style: _valid_batch(n=2, style=style) for style in ("python2", "python3")}


def _positions(blob: bytes) -> st.SearchStrategy[int]:
    """Any byte, with half the draws outside the pixel payload, where the structure is."""
    ops = list(pickletools.genops(blob))
    # The pixel rows are the one long string opcode (BINSTRING or BINUNICODE, by style).
    start, end = max(((op[2], after[2]) for op, after in zip(ops, ops[1:])), key=lambda span: span[1] - span[0])
    assert end - start > 2 * 3072
    return st.one_of(st.integers(0, start - 1), st.integers(end, len(blob) - 1), st.integers(0, len(blob) - 1))


@needs_linux
@FUZZ_SETTINGS
@given(st.sampled_from(sorted(_FUZZ_BLOBS)), st.data())
def test_bit_flipped_batch_decodes_to_valid_arrays_or_raises_data_error(style: str, data) -> None:
    blob = _FUZZ_BLOBS[style]
    flips = data.draw(st.lists(st.tuples(_positions(blob), st.integers(0, 7)), min_size=1, max_size=3), label="flips")
    mutated = bytearray(blob)
    for position, bit in flips:
        mutated[position] ^= 1 << bit
    blob = bytes(mutated)
    try:
        with _address_space_headroom():
            images, labels = cifar_format.read_batch(blob, "data_batch_1", b"labels", 10)
    except DataError as error:
        assert "data_batch_1" in str(error)
        return
    assert images.dtype == np.uint8 and not images.dtype.hasobject
    assert images.ndim == 4 and images.shape[1:] == (32, 32, 3)
    assert labels.dtype == np.uint8 and labels.shape == (len(images),)
    assert labels.size == 0 or int(labels.max()) < 10


@needs_linux
@FUZZ_SETTINGS
@given(st.sampled_from(sorted(_FUZZ_BLOBS)), st.data())
def test_truncated_batch_raises_data_error(style: str, data) -> None:
    blob = _FUZZ_BLOBS[style]
    cut = data.draw(st.integers(0, len(blob) - 1), label="cut")
    with pytest.raises(DataError, match="data_batch_1"):
        with _address_space_headroom():
            cifar_format.read_batch(blob[:cut], "data_batch_1", b"labels", 10)


def test_unflipped_fuzz_seed_batches_decode() -> None:
    want = expected_arrays(train_per_batch=1, test_size=2, seed=7)
    for blob in _FUZZ_BLOBS.values():
        images, labels = cifar_format.read_batch(blob, "data_batch_1", b"labels", 10)
        np.testing.assert_array_equal(images, want.x_test)
        np.testing.assert_array_equal(labels, want.y_test[:, 0])


# ---------------------------------------------------------------------------------------------
# Downloading


def test_download_and_verify_with_right_md5_writes_the_file(tmp_path: Path) -> None:
    source = write_cifar10_tarball(tmp_path / "server")
    destination = tmp_path / "downloads" / ARCHIVE_NAME
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    assert download_and_verify(source.as_uri(), md5, destination, progress=False) == destination
    assert destination.read_bytes() == source.read_bytes()
    assert file_md5(destination) == md5
    assert os.listdir(destination.parent) == [ARCHIVE_NAME]


def test_download_and_verify_with_wrong_md5_raises_and_leaves_no_file(tmp_path: Path) -> None:
    source = write_cifar10_tarball(tmp_path / "server")
    destination = tmp_path / "downloads" / ARCHIVE_NAME
    wrong = hashlib.md5(b"something else").hexdigest()
    with pytest.raises(DataError, match="MD5"):
        download_and_verify(source.as_uri(), wrong, destination, progress=False)
    assert not destination.exists()
    assert not destination.parent.exists() or os.listdir(destination.parent) == []


def test_download_and_verify_with_wrong_md5_keeps_the_previous_file(tmp_path: Path) -> None:
    source = write_cifar10_tarball(tmp_path / "server")
    destination = tmp_path / "downloads" / ARCHIVE_NAME
    destination.parent.mkdir()
    destination.write_bytes(b"previous content")
    with pytest.raises(DataError):
        download_and_verify(source.as_uri(), "0" * 32, destination, progress=False)
    assert destination.read_bytes() == b"previous content"
    assert os.listdir(destination.parent) == [ARCHIVE_NAME]


def test_download_and_verify_from_unreachable_url_raises_data_error(tmp_path: Path) -> None:
    url = (tmp_path / "server" / "nothing-here.tar.gz").as_uri()
    destination = tmp_path / "downloads" / ARCHIVE_NAME
    with pytest.raises(DataError, match="nothing-here"):
        download_and_verify(url, "0" * 32, destination, progress=False)
    assert not destination.exists()
    assert not destination.parent.exists() or os.listdir(destination.parent) == []


def test_load_data_without_folder_downloads_archive_into_cache(tmp_path: Path, cache_home: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_cifar10_tarball(tmp_path / "server", seed=11)
    monkeypatch.setattr(cifar10, "URL", source.as_uri())
    monkeypatch.setattr(cifar10, "MD5", file_md5(source))
    assert_loaded_as_written(cifar10.load_data(), seed=11)
    downloaded = cache_home / "trainval" / "cifar10" / ARCHIVE_NAME
    assert downloaded.read_bytes() == source.read_bytes()
    assert os.listdir(downloaded.parent) == [ARCHIVE_NAME]


def test_load_data_without_folder_reuses_the_downloaded_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                cache_home: Path) -> None:
    source = write_cifar10_tarball(tmp_path / "server", seed=12)
    monkeypatch.setattr(cifar10, "URL", source.as_uri())
    monkeypatch.setattr(cifar10, "MD5", file_md5(source))
    cifar10.load_data()
    source.unlink()
    for decoded in (cache_home / "trainval" / "decoded").iterdir():  # force a decode from the archive
        for file in decoded.iterdir():
            file.unlink()
        decoded.rmdir()
    assert_loaded_as_written(cifar10.load_data(), seed=12)


def test_load_data_without_folder_with_wrong_md5_raises_and_caches_nothing(
        tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_cifar10_tarball(tmp_path / "server")
    monkeypatch.setattr(cifar10, "URL", source.as_uri())
    monkeypatch.setattr(cifar10, "MD5", "0" * 32)
    with pytest.raises(DataError, match="MD5"):
        cifar10.load_data()
    downloads = cache_home / "trainval" / "cifar10"
    assert not downloads.exists() or os.listdir(downloads) == []
    with pytest.raises(DataError):  # and the next attempt does not find a half-trusted file either
        cifar10.load_data()


# ---------------------------------------------------------------------------------------------
# atomic_writer


def test_atomic_writer_replaces_the_file_when_the_block_succeeds(tmp_path: Path) -> None:
    target = tmp_path / "out" / "file.bin"
    with atomic_writer(target) as handle:
        handle.write(b"first")
    with atomic_writer(target) as handle:
        handle.write(b"second")
        assert target.read_bytes() == b"first"  # not visible until the block ends
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["file.bin"]


def test_atomic_writer_exception_in_block_keeps_previous_content_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    target.write_bytes(b"previous content")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_writer(target) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"previous content"
    assert os.listdir(tmp_path) == ["file.bin"]


def test_atomic_writer_exception_leaves_no_file_where_there_was_none(tmp_path: Path) -> None:
    target = tmp_path / "new.bin"
    with pytest.raises(KeyboardInterrupt):
        with atomic_writer(target) as handle:
            handle.write(b"partial")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_tarball_members_live_under_the_official_folder_name(tmp_path: Path) -> None:
    import tarfile

    archive = write_cifar10_tarball(tmp_path)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {f"{FOLDER_NAME}/{name}" for name in TRAIN_FILES + (TEST_FILE, META_FILE)} <= names
