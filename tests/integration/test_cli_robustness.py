"""Command-line robustness (issue 10, class 5) against a real PostgreSQL 15.

Every user or environment mistake is one line on stderr, never a traceback, and comes before
anything changes. The tooling runs as the stack's non-superuser admin.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from infra.config import StackConfig
from infra.credentials import Credentials
from infra.postgres import apply
from tests.integration.backup_helpers import (
    cli,
    cli_options,
    databases,
)
from tests.servers.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def common(
    postgres: PostgresServer, dev_rendered: tuple[Path, Credentials], dev_config: StackConfig
) -> list[str]:
    rendered, credentials = dev_rendered
    apply(postgres.admin_url, dev_config, credentials)
    return cli_options(postgres, rendered, dev_config.postgres.admin_user)


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _copy_secrets(common: list[str], tmp_path: Path) -> Path:
    copy = tmp_path / "copy.secrets.json"
    shutil.copy(common[common.index("--secrets") + 1], copy)
    copy.chmod(0o600)
    return copy


def test_an_unavailable_extension_is_refused_before_anything_is_created(
    postgres: PostgresServer, common: list[str], tmp_path: Path
) -> None:
    stack = tmp_path / "Pulumi.dev.yaml"
    text = (REPO / "Pulumi.dev.yaml").read_text()
    stack.write_text(
        text.replace(
            "  persistence:services:\n",
            "  persistence:services:\n    - name: ghost\n      extensions: [no_such_extension]\n",
        )
    )
    secrets = _copy_secrets(common, tmp_path)
    args = ["--stack", str(stack), "--secrets", str(secrets), "--admin-url", common[-1]]
    for command in ("plan", "apply"):
        code, _, err = cli("db", command, *args)
        assert code == 1, err
        line = _one_line(err)
        assert "ghost" in line, line
        assert "no_such_extension" in line, line
    assert "ghost" not in databases(postgres)
    roles = postgres.superuser_psql("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'ghost%'")
    assert roles == "0"


def test_a_stack_file_that_is_not_utf8_is_one_line(common: list[str], tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_bytes(b"config:\n  persistence:platform: docker\xff\xfe\n")
    code, _, err = cli("db", "plan", "--stack", str(stack), *common[2:])
    assert code == 2, err
    assert "not UTF-8" in _one_line(err)


def test_unwritable_secrets_and_out_paths_are_one_line(common: list[str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, _, err = cli(
        "render",
        "--stack",
        "dev",
        "--secrets",
        str(blocker / "s.json"),
        "--out",
        str(tmp_path / "out"),
    )
    assert code == 1, err
    assert "cannot write" in _one_line(err)
    code, _, err = cli(
        "render", "--stack", "dev", "--secrets", common[3], "--out", str(blocker / "out")
    )
    assert code == 1, err
    assert "cannot write" in _one_line(err)


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(
    common: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    folder = tmp_path / "secrets"
    code, _, err = cli(
        "render",
        "--stack",
        "dev",
        "--secrets",
        str(folder / "new.json"),
        "--out",
        str(tmp_path / "out"),
    )
    assert code == 1, err
    assert "No space left on device" in _one_line(err)
    assert list(folder.iterdir()) == [], "no temporary or half-written file is left"
    bucket = tmp_path / "bucket"
    code, _, err = cli("backup", *common, "--bucket", f"file://{bucket}", "--service", "users")
    assert code == 1, err
    assert "Traceback" not in err
    assert "No space left on device" in err, err
    assert not [p for p in bucket.rglob("*") if p.is_file()], "nothing half-written stays"


def test_a_bucket_path_that_does_not_exist_is_one_line(common: list[str], tmp_path: Path) -> None:
    missing = f"file://{tmp_path / 'no-such-dir'}"
    for argv in (
        ("list", "--bucket", missing),
        ("prune", "--stack", "dev", "--bucket", missing),
        ("verify", *common, "--bucket", missing),
        ("restore", *common, "--bucket", missing, "--service", "users"),
    ):
        code, _, err = cli(*argv)
        assert code == 2, (argv, err)
        assert "is not an existing directory" in _one_line(err)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, _, err = cli("backup", *common, "--bucket", f"file://{blocker / 'b'}")
    assert code == 1, err
    assert "Traceback" not in err
    assert "cannot write" in err, err


@pytest.mark.parametrize(
    ("grant", "revoke", "words"),
    [
        ("SUPERUSER", "NOSUPERUSER", "is a superuser"),
        ("NOCREATEROLE", "CREATEROLE", "lacks CREATEROLE"),
    ],
)
def test_a_superuser_or_non_createrole_admin_is_named_before_changes(
    postgres: PostgresServer,
    common: list[str],
    dev_config: StackConfig,
    grant: str,
    revoke: str,
    words: str,
) -> None:
    admin = dev_config.postgres.admin_user
    postgres.superuser_psql("CREATE ROLE drifted_into_users")
    postgres.superuser_psql("GRANT users_owner TO drifted_into_users")  # apply would revoke it
    postgres.superuser_psql(f"ALTER ROLE {admin} {grant}")
    try:
        for command in ("plan", "apply"):
            code, _, err = cli("db", command, *common)
            assert code == 1, err
            line = _one_line(err)
            assert admin in line, line
            assert words in line, line
        member = postgres.superuser_psql(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
            "WHERE r.rolname = 'drifted_into_users'"
        )
        assert member == "1", "apply changed nothing"
    finally:
        postgres.superuser_psql(f"ALTER ROLE {admin} {revoke}")
        postgres.superuser_psql("DROP ROLE drifted_into_users")


def test_backup_honours_pgpassword_like_the_db_commands(
    common: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PGPASSWORD wins over the secrets file for every command: a wrong one fails them all."""
    monkeypatch.setenv("PGPASSWORD", "not-the-admin-password")
    bucket = f"file://{tmp_path / 'bucket'}"
    code, _, err = cli("db", "plan", *common)
    assert code == 1, err
    assert "password authentication failed" in _one_line(err)
    code, _, err = cli("backup", *common, "--bucket", bucket, "--service", "users")
    assert code == 1, err
    assert "Traceback" not in err
    assert "password authentication failed" in err, err
    monkeypatch.delenv("PGPASSWORD")
    code, _, err = cli("backup", *common, "--bucket", bucket, "--service", "users")
    assert code == 0, err
