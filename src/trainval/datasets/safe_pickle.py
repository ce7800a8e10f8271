"""A restricted unpickler for the official CIFAR python files.

The files are Python pickles, and a plain ``pickle.load`` runs whatever a crafted file asks for.
This unpickler admits only the handful of globals that NumPy arrays and Python-2 strings need,
and refuses opcodes a CIFAR file never uses before unpickling starts.
"""

from __future__ import annotations

import codecs
import io
import pickle
import pickletools
from typing import Any

import numpy as np

# ndarray.__reduce__ names NumPy's array reconstructor; asking NumPy for it avoids importing a
# private module whose path moved between NumPy 1 and 2.
_RECONSTRUCT = np.ndarray((0,)).__reduce__()[0]

_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
}
_ALLOWED_ENCODINGS = {"latin1", "latin-1"}
# The official files were written with protocol 2. Later opcodes, and memo indices far beyond
# what a file of 10,000 images needs (the C unpickler allocates its memo up to the index),
# can only come from damage or malice.
_MAX_PROTOCOL = 2
_MAX_MEMO_INDEX = 1_000_000


class ForbiddenPickleContent(pickle.UnpicklingError):
    """The pickle holds something a CIFAR file never contains."""


def _safe_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    if encoding not in _ALLOWED_ENCODINGS:
        raise ForbiddenPickleContent(f"it encodes text as {encoding!r}, which a CIFAR file never does")
    return codecs.encode(text, encoding, errors)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(text, "latin1").
        if (module, name) == ("_codecs", "encode"):
            return _safe_encode
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise ForbiddenPickleContent(
                f"it asks to load '{module}.{name}', which a CIFAR data file never contains"
            ) from None


def _check_opcodes(data: bytes) -> None:
    for opcode, argument, _ in pickletools.genops(data):
        if opcode.proto > _MAX_PROTOCOL:
            raise ForbiddenPickleContent(f"it uses the opcode {opcode.name} from pickle protocol {opcode.proto}")
        if opcode.name in ("LONG_BINPUT", "LONG_BINGET", "PUT", "GET") and int(argument) > _MAX_MEMO_INDEX:
            raise ForbiddenPickleContent(f"it uses the memo index {argument}, far beyond any CIFAR file's")


def safe_loads(data: bytes) -> Any:
    """Unpickle ``data`` admitting only NumPy arrays, dtypes and plain Python containers.

    Raises ``pickle.UnpicklingError`` for forbidden content; damaged input can raise almost any
    exception, which callers turn into a :class:`~trainval.errors.DataError` naming the file.
    """
    _check_opcodes(data)
    return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
