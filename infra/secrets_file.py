"""The ``--secrets FILE`` of the command line: generated credentials kept between runs.

Created with mode 0600 when missing, reused afterwards so renders are stable. A file that
others can read, that another user owns, or a symlink in its place is refused rather than used.
"""

from __future__ import annotations

from pathlib import Path

from infra import atomic_file
from infra.config.model import StackConfig
from infra.credentials import Credentials, credentials_from_json, credentials_json
from infra.errors import SecretsError
from infra.private_file import PrivateFileError, read_private

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
    """Parse a secrets file; refuse a symlink, a file another user owns, or one others can read.

    Opened with O_NOFOLLOW and checked on the open descriptor, so what is checked is what is
    read: a link planted in place of the file is never followed to someone else's passwords.
    """
    try:
        text = read_private(path)
    except PrivateFileError as error:
        raise SecretsError(str(error)) from None
    try:
        return credentials_from_json(text.decode("utf-8"))
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise SecretsError(
            f"{path}: not a secrets file written by this tool ({error.__class__.__name__}); "
            "restore it from your password store or move it away to generate new credentials"
        ) from None


def write(path: Path, credentials: Credentials) -> None:
    """Write atomically with mode 0600, so a crash never leaves a half-written file."""
    atomic_file.write_text(path, credentials_json(credentials), PRIVATE_MODE)
