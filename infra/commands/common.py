"""Options and loading shared by every command: the stack, and its secrets file."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from infra import secrets_file
from infra.backup import pg
from infra.config import StackConfig, load_stack
from infra.config.load import stack_name
from infra.credentials import Credentials
from infra.errors import UsageError

ADMIN_URL_ENV = "PERSISTENCE_ADMIN_URL"


def add_stack_options(parser: argparse.ArgumentParser) -> None:
    """``--stack`` (required) and ``--secrets`` (defaults to a per-user file)."""
    parser.add_argument(
        "--stack",
        required=True,
        help="stack name (reads Pulumi.<stack>.yaml at the repository root) or a stack file path",
    )
    parser.add_argument(
        "--secrets",
        type=Path,
        default=None,
        help="generated credentials (created mode 0600 when missing, reused after); "
        "default: ~/.config/persistence/<stack>.secrets.json",
    )


def load(args: argparse.Namespace) -> tuple[StackConfig, Credentials]:
    """Validate the stack first, then read or create its credentials."""
    config = load_stack(args.stack)
    return config, secrets_file.load_or_create(secrets_path(args), config)


def secrets_path(args: argparse.Namespace) -> Path:
    """``--secrets``, or the per-user default for the stack: the one place it is decided."""
    path: Path = args.secrets or secrets_file.default_path(stack_name(args.stack))
    return path


def admin_url(args: argparse.Namespace, credentials: Credentials) -> str:
    """The admin URL every command uses, worked out in this one place.

    ``--admin-url`` (or $PERSISTENCE_ADMIN_URL); its password is the URL's own, else
    PGPASSWORD, else the secrets file's admin password, and is carried in the URL itself, so
    the client binaries and every connection see the same one.
    """
    if not args.admin_url:
        raise UsageError(
            f"--admin-url is required (or set {ADMIN_URL_ENV}), e.g. "
            "postgresql://platform_admin@127.0.0.1:15432/postgres"
        )
    return pg.with_password(
        str(args.admin_url), os.environ.get("PGPASSWORD") or credentials.postgres_admin
    )
