"""The one atomic file writer: every file the command line writes goes through here.

The file is created with its final mode (no window where a secret is world-readable), written
to a temporary name beside it, synced, then renamed over the old one, so a crash or a full disk
never leaves a half-written file. Any OS failure (an unwritable directory, a full disk) is one
line, never a traceback.

The folder matters as much as the file: whoever can write a folder can swap a rendered
``pg_hba.conf`` or secrets file in it after we leave. So folders we create are 0700 whatever
the umask, and an existing folder (or the one ours are created in) that another user owns, or
that group (unless it is our own private group) or others can write without the sticky bit, is
refused (never "fixed": it may be
someone else's on purpose).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import tempfile
from pathlib import Path

from infra.errors import FileError

PRIVATE_DIR_MODE = 0o700


def write_text(path: Path, text: str, mode: int, *, private_parent: bool = True) -> None:
    """Write ``text`` to ``path`` with ``mode``; ``private_parent=False`` only for a file that
    is neither secret nor read by a server (a status file in a container's own /tmp)."""
    temporary: str | None = None
    try:
        if private_parent:
            private_directory(path.parent)
        else:
            path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)  # replaces a planted symlink itself, never its target
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise FileError(f"cannot write {path}: {reason}; nothing was changed there") from None
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def private_directory(folder: Path) -> None:
    """Create the missing folders of ``folder`` 0700 (whatever the umask), or refuse an
    existing one that is not private to us (root's own folders are trusted, as ssh does)."""
    check_private_directory(_existing(folder))  # the folder itself, or the one ours go in
    create_private_dirs(folder)


def create_private_dirs(folder: Path) -> None:
    """``mkdir -p`` where every folder created is 0700 whatever the umask (``Path.mkdir``
    gives the parents it creates the umask's mode, 0777 under ``umask 000``)."""
    missing: list[Path] = []
    current = folder
    while not os.path.lexists(current):
        missing.append(current)
        current = current.parent
    for created in reversed(missing):
        try:
            os.mkdir(created, PRIVATE_DIR_MODE)
        except FileExistsError:  # made by a run beside us meanwhile: fine, it made it 0700
            continue
        os.chmod(created, PRIVATE_DIR_MODE)  # mkdir's mode is masked by the umask


def _existing(folder: Path) -> Path:
    """``folder`` or its nearest ancestor that exists."""
    while not os.path.lexists(folder):
        folder = folder.parent
    return folder


def check_private_directory(folder: Path) -> None:
    """Refuse a folder another user owns, or that group or others may write into, unless it
    is sticky like /tmp (there nobody else may rename or delete what we create)."""
    info = os.stat(folder)
    if not stat.S_ISDIR(info.st_mode):
        raise FileError(f"cannot write into {folder}: not a directory; give a directory path")
    if info.st_uid not in (os.getuid(), 0):
        raise FileError(
            f"cannot write into {folder}: owned by uid {info.st_uid}, not you "
            f"(uid {os.getuid()}): its owner could swap the files written there; choose a "
            "directory of your own"
        )
    mode = stat.S_IMODE(info.st_mode)
    writers = 0o002 if _private_group(info.st_gid) else 0o022
    if mode & writers and not mode & stat.S_ISVTX:
        raise FileError(
            f"cannot write into {folder}: mode {mode:04o} lets other users replace the files "
            f"written there; run `chmod go-w {folder}` or choose a private directory"
        )


def _private_group(gid: int) -> bool:
    """Our own primary group with no other members: Debian's user-private groups (umask 002),
    where a group-writable folder is still writable by us alone."""
    if gid != os.getgid():
        return False
    try:
        members = set(grp.getgrgid(gid).gr_mem)
        me = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return False
    return members <= {me}
