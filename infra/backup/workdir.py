"""Private scratch directories for plaintext data, and the sweep of those a killed run left.

A backup, verify or restore holds a service's data in plaintext in a scratch directory (0700):
a directory-format dump, a decrypted download, a Redis snapshot. A clean exit removes it; a
SIGKILL, the OOM killer or a power cut cannot, and every such run would leave a copy of the
data behind and fill the disk a little more. So each directory's name carries the host and the
PID of the process that made it, and every new one first removes those of this host whose
process is gone. A live process's directory (or one whose PID was reused) is never touched.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PREFIX = "persistence-"
# persistence-<purpose>-<host>-<pid>-<random>; the host token keeps two PID namespaces that
# share a temp folder (a container's bind mount) from judging each other's processes.
_NAME = re.compile(rf"{PREFIX}[a-z]+-(?P<host>[0-9a-f]{{8}})-(?P<pid>\d+)-[^/]+")


def _host() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep(root: Path | None = None) -> list[Path]:
    """Remove the scratch directories in ``root`` (default: the temp folder) that this user's
    processes on this host left when they died; returns them."""
    folder = root or Path(tempfile.gettempdir())
    removed = []
    host, uid = _host(), os.getuid()
    for path in folder.glob(f"{PREFIX}*"):
        match = _NAME.fullmatch(path.name)
        if match is None or match["host"] != host or not path.is_dir() or path.is_symlink():
            continue
        try:
            owner = path.stat().st_uid
        except FileNotFoundError:  # removed meanwhile by its own run, or by another sweep
            continue
        if owner != uid or _alive(int(match["pid"])):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


@contextmanager
def private_workdir(purpose: str) -> Iterator[Path]:
    """A fresh 0700 directory for ``purpose`` (lower-case letters), removed on exit; the
    leftovers of dead runs are swept first."""
    if not purpose.isalpha() or not purpose.islower():
        raise ValueError(f"workdir purpose must be lower-case letters, not {purpose!r}")
    sweep()
    prefix = f"{PREFIX}{purpose}-{_host()}-{os.getpid()}-"
    with tempfile.TemporaryDirectory(prefix=prefix) as work:  # mkdtemp: mode 0700
        yield Path(work)
