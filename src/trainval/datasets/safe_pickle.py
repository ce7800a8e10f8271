"""A restricted unpickler for the official CIFAR python files.

The files are Python pickles, and a plain ``pickle.load`` runs whatever a crafted file asks for.
This unpickler admits only the handful of globals that NumPy arrays and Python-2 strings need.
"""

from __future__ import annotations

import codecs
import io
import pickle
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
    # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(text, "latin1").
    ("_codecs", "encode"): codecs.encode,
}


class ForbiddenPickleContent(pickle.UnpicklingError):
    """The pickle asked for a global that a CIFAR file never contains."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise ForbiddenPickleContent(
                f"it asks to load '{module}.{name}', which a CIFAR data file never contains"
            ) from None


def safe_loads(data: bytes) -> Any:
    """Unpickle ``data`` admitting only NumPy arrays, dtypes and plain Python containers.

    Raises ``pickle.UnpicklingError`` (or ``EOFError`` and friends for truncated input); callers
    turn those into a :class:`~trainval.errors.DataError` that names the file.
    """
    return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
