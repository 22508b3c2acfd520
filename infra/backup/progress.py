"""Bytes-done progress on a terminal; silent when stderr is not a TTY or CI is set."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO


def enabled(stream: TextIO = sys.stderr) -> bool:
    return stream.isatty() and not os.environ.get("CI")


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} GiB"


def track(chunks: Iterable[bytes], label: str, stream: TextIO = sys.stderr) -> Iterator[bytes]:
    """Pass chunks through, redrawing ``label: N MiB`` at most a few times a second."""
    show = enabled(stream)
    done = 0
    last = 0.0
    for chunk in chunks:
        done += len(chunk)
        if show and time.monotonic() - last > 0.2:
            last = time.monotonic()
            stream.write(f"\r{label}: {human(done)}   ")
            stream.flush()
        yield chunk
    if show:
        stream.write(f"\r{label}: {human(done)} done\n")
        stream.flush()
