"""The ``--secrets FILE`` of the command line: generated credentials kept between runs.

Created with mode 0600 when missing, reused afterwards so renders are stable. A file that
others can read is refused rather than silently used.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from infra.config.model import StackConfig
from infra.credentials import Credentials, credentials_from_json, credentials_json
from infra.errors import SecretsError

PRIVATE_MODE = 0o600


def default_path(stack: str) -> Path:
    """Where credentials live when ``--secrets`` is not given (git-ignored)."""
    return Path.home() / ".config" / "persistence" / f"{stack}.secrets.json"


def load_or_create(path: Path, config: StackConfig) -> Credentials:
    """Read the file, add what the stack needs that it lacks, and save it back if it changed."""
    existing = read(path) if path.exists() else None
    credentials = (existing or Credentials.generate()).completed_for(config)
    if credentials != existing:
        write(path, credentials)
    return credentials


def read(path: Path) -> Credentials:
    """Parse a secrets file; refuse one that group or others can read."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecretsError(
            f"{path}: mode {mode:04o} lets other users read credentials; run `chmod 600 {path}`"
        )
    try:
        return credentials_from_json(path.read_text(encoding="utf-8"))
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise SecretsError(
            f"{path}: not a secrets file written by this tool ({error.__class__.__name__}); "
            "restore it from your password store or move it away to generate new credentials"
        ) from None


def write(path: Path, credentials: Credentials) -> None:
    """Write atomically with mode 0600, so a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = credentials_json(credentials)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, PRIVATE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
