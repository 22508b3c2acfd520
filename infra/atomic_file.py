"""The one atomic file writer: every file the command line writes goes through here.

The file is created with its final mode (no window where a secret is world-readable), written
to a temporary name beside it, synced, then renamed over the old one, so a crash or a full disk
never leaves a half-written file. Any OS failure (an unwritable directory, a full disk) is one
line, never a traceback.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from infra.errors import FileError


def write_text(path: Path, text: str, mode: int, *, parent_mode: int = 0o777) -> None:
    temporary: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=parent_mode)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise FileError(f"cannot write {path}: {reason}; nothing was changed there") from None
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
