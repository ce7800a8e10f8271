"""Headless Chromium for tests: find it, and screenshot a local HTML file with all networking shut off."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT_SECONDS = 120
CONFUSION_DARK_BLUE = np.array([8, 48, 107])  # the dark end of matplotlib's "Blues", the confusion matrix's diagonal


def find_chromium() -> str | None:
    """Path of the first Chromium-like browser on PATH, or None when there is none."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html_file: Path, png_file: Path, width: int = 1200, height: int = 2400) -> None:
    """Render ``html_file`` in headless Chromium and save a ``width`` x ``height`` PNG of its top.

    The proxy points at a closed port and every host name fails to resolve, so a page that tried to
    fetch anything would show it missing rather than quietly load it.
    """
    chromium = find_chromium()
    assert chromium is not None, f"no browser found on PATH (looked for {', '.join(CHROMIUM_NAMES)})"
    with tempfile.TemporaryDirectory(prefix="trainval-chromium-", ignore_cleanup_errors=True) as profile:
        command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}",
                   "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
                   f"--window-size={width},{height}", f"--screenshot={png_file}", Path(html_file).resolve().as_uri()]
        # Its own process group, so a hung browser is killed with all of its helper processes.
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        try:
            _, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            _, stderr = process.communicate()
            raise AssertionError(f"Chromium took more than {TIMEOUT_SECONDS} s to screenshot {html_file}; "
                                 f"its stderr ends:\n{stderr[-3000:]}") from None
    written = f"{png_file.stat().st_size} bytes" if png_file.is_file() else "nothing"
    assert process.returncode == 0 and png_file.is_file() and png_file.stat().st_size > 0, (
        f"Chromium exited with {process.returncode} and wrote {written} to {png_file}; "
        f"its stderr ends:\n{stderr[-3000:]}")


def assert_report_rendered(png_file: Path, size: tuple[int, int]) -> None:
    """Fail unless the screenshot shows a drawn page with a decoded confusion-matrix plot, not a blank one.

    Thresholds from measured pages: a real report has ~10,000 colours and a pixel std of ~50; a page
    of text only, or with broken images, has ~340 colours and no dark-blue pixels.
    """
    image = Image.open(png_file)
    assert image.format == "PNG" and image.size == size
    pixels = np.asarray(image.convert("RGB"), dtype=np.int64)
    colours = image.convert("RGB").getcolors(maxcolors=1 << 24)
    assert len(colours) > 2000, f"only {len(colours)} colours: the page looks blank"
    assert pixels.std() > 30, f"pixel standard deviation {pixels.std():.1f}: the page looks blank"
    # The confusion matrix's dark cells only show up if its embedded image was decoded and drawn.
    dark_blue = (np.abs(pixels - CONFUSION_DARK_BLUE) <= 25).all(axis=-1).sum()
    assert dark_blue > 2000, f"{dark_blue} dark blue pixels: the confusion matrix did not render"
