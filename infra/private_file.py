"""Reading a file that holds credentials: ours, private, regular, and never through a link.

Opened with O_NOFOLLOW and O_NONBLOCK and checked on the open descriptor, so what is checked is
what is read: a link planted in its place is never followed to someone else's secrets, and a
FIFO planted there is refused instead of waited on forever.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class PrivateFileError(Exception):
    """Why the file is refused, as one line that names it and the fix; callers re-raise it as
    their own user-facing error."""


def read_private(path: str | Path, what: str = "", *, limit: int | None = None) -> bytes:
    """The file's bytes (at most ``limit``); refused unless it is a regular file of this user's
    that no one else may read or change. ``what`` prefixes the path in messages."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise PrivateFileError(
                f"{what}{path}: is a symbolic link; name the real file (a planted link is "
                "never followed)"
            ) from None
        raise PrivateFileError(f"cannot read {what}{path}: {error.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise PrivateFileError(f"{what}{path}: not a regular file")
        if info.st_uid != os.getuid():
            raise PrivateFileError(
                f"{what}{path}: owned by uid {info.st_uid}, not you (uid {os.getuid()}): its "
                f"owner could have chosen its contents; run `chown {os.getuid()} {path}` if it "
                "is yours"
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise PrivateFileError(
                f"{what}{path}: mode {mode:04o} lets other users read credentials; run "
                f"`chmod 600 {path}`"
            )
        try:
            return handle.read() if limit is None else handle.read(limit)
        except OSError as error:
            raise PrivateFileError(f"cannot read {what}{path}: {error.strerror}") from None
