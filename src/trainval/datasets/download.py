"""Download a file and check its published MD5 before anything reads it."""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from trainval.atomic_files import atomic_writer
from trainval.errors import DataError

_CHUNK_BYTES = 1 << 20


def download_and_verify(url: str, md5: str, destination: str | Path, *, progress: bool = True) -> Path:
    """Fetch ``url`` into ``destination`` and keep it only if its MD5 is ``md5``.

    The bytes go to a temporary file beside ``destination`` that is renamed into place after the
    checksum matches, so an interrupted or corrupt download never looks like a good file.

    Raises:
        DataError: the download failed or the checksum did not match.
    """
    destination = Path(destination)
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_writer(destination) as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"Downloading {destination.name}",
                      disable=not progress, mininterval=0.5) as bar:
                for chunk in iter(lambda: response.read(_CHUNK_BYTES), b""):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
            if digest.hexdigest() != md5:
                raise DataError(
                    f"downloaded {url} but its MD5 is {digest.hexdigest()}, not the published {md5}; "
                    "the file was discarded. Try again, or download it yourself and pass its folder "
                    "with --data-dir or TRAINVAL_DATA."
                )
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise DataError(
            f"could not download {url} ({error}). Without internet access, download the file "
            "elsewhere and pass its folder with --data-dir or the TRAINVAL_DATA environment variable."
        ) from error
    return destination
