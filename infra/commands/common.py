"""What every command resolves the same way: the stack, its secrets file and the admin URL.

This is the one place that decides the default secrets path (from the stack's name, whether
``--stack`` is ``dev``, ``Pulumi.dev.yaml`` or a path to it), where the PostgreSQL admin's
password comes from (the URL's own, else ``PGPASSWORD``, else the secrets file) and where the
RabbitMQ admin's comes from, so no two commands can disagree.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from infra.errors import UsageError

if TYPE_CHECKING:
    from infra.config import StackConfig
    from infra.credentials import Credentials

# What the commands need only once they run (the database driver, the stack's YAML, the
# backup tooling) is imported there, never here: building the parser stays cheap
# (tests/unit/test_cli_startup.py).

ADMIN_URL_ENV = "PERSISTENCE_ADMIN_URL"
# The prod backup job gets the admin password from Secret Manager as this variable (never a file).
ADMIN_PASSWORD_ENV = "PERSISTENCE_ADMIN_PASSWORD"  # noqa: S105 - a variable's name
RABBITMQ_PASSWORD_ENV = "RABBITMQ_ADMIN_PASSWORD"  # noqa: S105 - the variable name, not a password

Params = ParamSpec("Params")
Result = TypeVar("Result")


def reusing_admin_sessions(step: Callable[Params, Result]) -> Callable[Params, Result]:
    """Run ``step`` with the admin's sessions to its maintenance database and to the tooling
    database kept open for reuse (``infra.postgres.driver.reusing``): a command logs in once
    to each, not once per catalog step (a restore's admin logins there: 19 before, 5 now)."""

    @functools.wraps(step)
    def run(*args: Params.args, **kwargs: Params.kwargs) -> Result:
        from infra.naming import TOOLING_DATABASE
        from infra.postgres.driver import reusing

        with reusing(None, TOOLING_DATABASE):
            return step(*args, **kwargs)

    return run


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


def add_admin_url_option(parser: argparse.ArgumentParser) -> None:
    """``--admin-url``, defaulting to $PERSISTENCE_ADMIN_URL, for every command that connects."""
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(ADMIN_URL_ENV),
        help=f"postgresql://ADMIN@HOST:PORT/postgres (default: ${ADMIN_URL_ENV}); leave the "
        "password out: it comes from PGPASSWORD or the secrets file",
    )


def load(args: argparse.Namespace) -> tuple[StackConfig, Credentials]:
    """Validate the stack first, then read or create its credentials."""
    from infra import secrets_file
    from infra.config import load_stack

    config = load_stack(args.stack)
    return config, secrets_file.load_or_create(secrets_path(args), config)


def load_admin_only(args: argparse.Namespace) -> tuple[StackConfig, Credentials]:
    """The admin password from ``$PERSISTENCE_ADMIN_PASSWORD`` (prod), else the secrets file.

    The prod job reads only the admin login's secret: it never sees any service's passwords,
    and never writes a secrets file inside a read-only container.
    """
    from infra.config import load_stack
    from infra.credentials import Credentials

    password = os.environ.get(ADMIN_PASSWORD_ENV)
    if not password:
        return load(args)
    config = load_stack(args.stack)
    return config, Credentials(
        postgres_superuser="", postgres_admin=password, redis_admin="", rabbitmq_admin=""
    )


def secrets_path(args: argparse.Namespace) -> Path:
    """``--secrets``, or the per-user default for the stack: the one place it is decided."""
    from infra import secrets_file
    from infra.config.load import stack_name

    path: Path = args.secrets or secrets_file.default_path(stack_name(args.stack))
    return path


def existing_secrets(args: argparse.Namespace, alternative: str) -> Credentials:
    """The stack's secrets file, which must exist: a fresh password would only be refused."""
    from infra import secrets_file

    path = secrets_path(args)
    if not path.exists():
        raise UsageError(
            f"{path}: no secrets file; pass --secrets FILE (the one the stack was rendered "
            f"with) or {alternative}"
        )
    return secrets_file.read(path)


def admin_url(args: argparse.Namespace, credentials: Credentials) -> str:
    """``--admin-url`` (or $PERSISTENCE_ADMIN_URL), with its password resolved."""
    if not args.admin_url:
        raise UsageError(
            f"--admin-url is required (or set {ADMIN_URL_ENV}), e.g. "
            "postgresql://platform_admin@127.0.0.1:15432/postgres"
        )
    return resolve_admin_url(str(args.admin_url), credentials)


def resolve_admin_url(url: str, credentials: Credentials) -> str:
    """Any admin URL a command was given, with the password every command agrees on.

    The URL's own password, else PGPASSWORD, else the secrets file's admin password; it is
    carried in the URL itself, so the client binaries and every connection see the same one.
    """
    from infra.backup import pg

    return pg.with_password(url, os.environ.get("PGPASSWORD") or credentials.postgres_admin)


def rabbitmq_admin_password(args: argparse.Namespace) -> str:
    """From $RABBITMQ_ADMIN_PASSWORD (e.g. a Pulumi secret output) or the existing secrets file."""
    return os.environ.get(RABBITMQ_PASSWORD_ENV) or (
        existing_secrets(args, f"set {RABBITMQ_PASSWORD_ENV}").rabbitmq_admin
    )
