"""Every command resolves the secrets file and the admin URL the same way, for every ``--stack``.

Each command runs in-process through ``python -m infra``'s parser with a fresh home directory
that holds the stack's default secrets file. The test watches the two sinks: which secrets file
is read (``secrets_file.read``) and which login every PostgreSQL connection carries
(``psycopg.connect``, refused here, so nothing needs a server). A command that worked out a
path or a password on its own would read another file, or connect with another password.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from infra import cli, secrets_file
from infra.backup.storage import FileBucket
from infra.config import load_stack
from infra.config.load import REPO_ROOT
from infra.credentials import Credentials
from tests.unit.backup_fakes import add_backup

ADMIN = "postgresql://platform_admin@127.0.0.1:1/postgres"
VERIFY_ADMIN = "postgresql://platform_admin@127.0.0.1:2/postgres"
PGPASSWORD = "from-the-environment"


def _stack_forms(tmp_path: Path) -> list[str]:
    """A name, the stack file's name, and a path to a copy of it elsewhere."""
    elsewhere = tmp_path / "stacks" / "Pulumi.dev.yaml"
    elsewhere.parent.mkdir()
    shutil.copy(REPO_ROOT / "Pulumi.dev.yaml", elsewhere)
    return ["dev", "Pulumi.dev.yaml", str(elsewhere)]


def _bucket_with_a_backup(root: Path, verified: bool | None) -> str:
    """A file bucket holding one intact backup of ``users``, so restore and verify go on."""
    add_backup(FileBucket(root), datetime(2026, 1, 1, tzinfo=UTC), verified=verified)
    return f"file://{root}"


def _commands(stack: str, tmp_path: Path) -> dict[str, list[str]]:
    """Every command that takes --secrets, with what it needs to reach its first connection."""
    admin = ["--admin-url", ADMIN]
    fresh = f"file://{tmp_path / 'fresh'}"
    verified = _bucket_with_a_backup(tmp_path / "verified", True)
    return {
        "render": ["render", "--stack", stack, "--out", str(tmp_path / "out")],
        "broker prune": ["broker", "prune", "--stack", stack, "--management-url", "http://127.0.0.1:1"],
        # Refuses a dev stack, once it has resolved the admin password like the others.
        "broker rolling-restart": ["broker", "rolling-restart", "--stack", stack],
        "db plan": ["db", "plan", "--stack", stack, *admin],
        "db apply": ["db", "apply", "--stack", stack, *admin],
        "db rotate": ["db", "rotate", "--stack", stack, *admin, "--service", "users"],
        "db drop": ["db", "drop", "--stack", stack, *admin, "--service", "x", "--confirm", "x"],
        # The pooler's console, with its own login from the same secrets file.
        "db pools": ["db", "pools", "--stack", stack],
        "db lag": ["db", "lag", "--stack", stack, *admin],
        "backup": ["backup", "--stack", stack, "--bucket", fresh, *admin],
        "verify": [
            "verify", "--stack", stack, *admin,
            "--bucket", _bucket_with_a_backup(tmp_path / "unverified", None),
        ],
        "restore": [
            "restore", "--stack", stack, *admin, "--service", "users",
            "--bucket", verified,
        ],
        "dr-drill": ["dr-drill", "--stack", stack, "--bucket", verified, *admin],
        "backup-loop": ["backup-loop", "--stack", stack, "--bucket", fresh, *admin, "--runs", "1",
                        "--status-file", str(tmp_path / "status.json")],
        "backup-run": ["backup-run", "--stack", stack, "--bucket", fresh, *admin,
                       "--verify-admin-url", VERIFY_ADMIN],
    }  # fmt: skip


def _commands_with_secrets() -> set[str]:
    """Every subcommand of the real parser that accepts --secrets, as ``_commands`` names it."""
    found: set[str] = set()

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{prefix} {name}".strip())
            elif "--secrets" in action.option_strings:
                found.add(prefix)

    walk(cli.build_parser(), "")
    return found


def test_the_table_covers_every_command_that_reads_secrets(tmp_path: Path) -> None:
    assert set(_commands("dev", tmp_path)) == _commands_with_secrets()


class Sinks:
    """What the commands read and how they log in, recorded at the two sinks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.secrets_read: set[Path] = set()
        self.logins: set[tuple[str, str, str]] = set()
        real_read: Callable[[Path], Credentials] = secrets_file.read

        def read(path: Path) -> Credentials:
            self.secrets_read.add(path.resolve())
            return real_read(path)

        def connect(conninfo: str = "", **overrides: Any) -> Any:
            params = {**conninfo_to_dict(conninfo), **overrides}
            self.logins.add(
                (str(params.get("user")), str(params.get("port")), str(params.get("password")))
            )
            raise psycopg.OperationalError("refused by the test")

        monkeypatch.setattr(secrets_file, "read", read)
        monkeypatch.setattr(psycopg, "connect", connect)
        monkeypatch.setattr("time.sleep", lambda _seconds: None)


@pytest.mark.parametrize("pgpassword", [None, PGPASSWORD])
def test_every_command_resolves_the_same_secrets_file_and_admin_login(
    pgpassword: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    for name in ("PGPASSWORD", "PERSISTENCE_ADMIN_PASSWORD", "RABBITMQ_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    if pgpassword is not None:
        monkeypatch.setenv("PGPASSWORD", pgpassword)
    default = home / ".config" / "persistence" / "dev.secrets.json"
    credentials = Credentials.generate().completed_for(load_stack("dev"))
    secrets_file.write(default, credentials)
    password = pgpassword or credentials.postgres_admin
    wanted_logins = {("platform_admin", "1", password), ("platform_admin", "2", password)}

    for index, stack in enumerate(_stack_forms(tmp_path)):
        for command, argv in _commands(stack, tmp_path / f"run{index}").items():
            sinks = Sinks(monkeypatch)
            cli.main(argv)
            err = capsys.readouterr().err
            where = f"{command} --stack {stack}"
            assert sinks.secrets_read == {default.resolve()}, where
            assert "Traceback" not in err, where
            if command in ("render", "broker prune", "broker rolling-restart"):
                continue
            if command == "db pools":
                console = ("pooler_admin", "16432", credentials.pooler_admin)
                assert sinks.logins == {console}, where
                continue
            assert sinks.logins, f"{where} never connected: {err}"
            assert sinks.logins <= wanted_logins, where
            if command == "backup-run":
                assert sinks.logins == wanted_logins, where
