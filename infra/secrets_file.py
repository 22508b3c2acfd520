"""The ``--secrets FILE`` of the command line: generated credentials kept between runs.

Created with mode 0600 when missing, reused afterwards so renders are stable. A file that
others can read is refused rather than silently used.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from infra.config.model import StackConfig
from infra.credentials import Credentials, ServiceCredentials
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
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        services = {
            name: ServiceCredentials(**values) for name, values in data.pop("services").items()
        }
        return Credentials(**data, services=services)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise SecretsError(
            f"{path}: not a secrets file written by this tool ({error.__class__.__name__}); "
            "restore it from your password store or move it away to generate new credentials"
        ) from None


def write(path: Path, credentials: Credentials) -> None:
    """Write atomically with mode 0600, so a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = json.dumps(asdict(credentials), indent=2, sort_keys=True) + "\n"
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
