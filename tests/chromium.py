"""Finding and starting Debian's Chromium for the browser tests (never ``playwright install``)."""

from __future__ import annotations

import os
import shutil

# Headless flags that keep Chromium from reaching the internet on its own (TOOLCHAIN.md).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def find_chromium() -> str | None:
    """The Chromium executable: ``$CHROMIUM``, else the first browser on ``PATH``, else None."""
    for candidate in (
        os.environ.get("CHROMIUM"),
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None
