"""Restore and verify never lose data or lie (issue 10, class 4), on a real PostgreSQL 15.

The tooling runs as the stack's non-superuser admin; the superuser only sets the scene.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from infra.backup import fetch, health, pg
from infra.backup import safety as safety_module
from infra.backup import verify as verify_module
from infra.backup.catalog import utc_now
from infra.backup.storage import FileBucket
from infra.config import StackConfig
from infra.config.load import REPO_ROOT
from infra.credentials import Credentials
from infra.postgres import apply
from tests.integration.backup_helpers import (
    assert_role_model,
    cli,
    databases,
    fingerprint,
    login_url,
)
from tests.servers.postgres import PostgresServer


class Killed(Exception):  # noqa: N818 - stands for a SIGKILL: no cleanup handler catches it
    """Not a PlatformError: restore's own error handling never sees it, as with a kill."""


def _list(bucket: str, service: str = "users") -> list[dict[str, Any]]:
    code, out, err = cli("list", "--bucket", bucket, "--service", service, "--json")
    assert code == 0, err
    items: list[dict[str, Any]] = json.loads(out)
    return items


def _states(bucket: str, service: str = "users") -> dict[str, str]:
    return {item["backup_id"]: item["state"] for item in _list(bucket, service)}


def _verified_backup(common: list[str], tmp_path: Path) -> str:
    """A file bucket holding one verified backup of ``users``."""
    bucket = f"file://{tmp_path / 'bucket'}"
    assert cli("backup", *common, "--bucket", bucket, "--service", "users")[0] == 0
    assert cli("verify", *common, "--bucket", bucket, "--service", "users")[0] == 0
    return bucket


def _drop_old_copies(server: PostgresServer) -> None:
    for name in databases(server):
        if name.startswith("users__old_"):
            server.superuser_psql(f'DROP DATABASE "{name}"')


def test_restore_without_at_takes_the_newest_verified_backup_never_a_safety_one(
    postgres: PostgresServer, common: list[str], tmp_path: Path
) -> None:
    bucket = f"file://{tmp_path / 'bucket'}"
    assert cli("backup", *common, "--bucket", bucket, "--service", "users")[0] == 0
    assert cli("verify", *common, "--bucket", bucket, "--service", "users")[0] == 0
    (verified,) = _states(bucket)
    assert cli("backup", *common, "--bucket", bucket, "--service", "users")[0] == 0
    unverified = next(i for i, s in _states(bucket).items() if s == "unverified")
    code, out, err = cli(
        "restore", *common, "--bucket", bucket, "--service", "users", "--secure-replaced"
    )
    assert code == 0, err
    assert f"from {verified}" in out, out
    items = {item["backup_id"]: item for item in _list(bucket)}
    (safety,) = set(items) - {verified, unverified}
    assert items[safety]["purpose"] == "safety"
    # Everything verified now: the newest backup is the safety one, and it is never chosen.
    assert cli("verify", *common, "--bucket", bucket, "--service", "users")[0] == 0
    assert set(_states(bucket).values()) == {"verified"}
    code, out, err = cli("restore", *common, "--bucket", bucket, "--service", "users")
    assert code == 0, err
    assert f"from {unverified}" in out, out
    # ... unless it is asked for by name.
    code, out, err = cli(
        "restore", *common, "--bucket", bucket, "--service", "users", "--at", safety
    )
    assert code == 0, err
    assert f"from {safety}" in out, out
    _drop_old_copies(postgres)


def test_restore_without_at_refuses_when_nothing_is_verified(
    postgres: PostgresServer, common: list[str], tmp_path: Path
) -> None:
    bucket = f"file://{tmp_path / 'bucket'}"
    assert cli("backup", *common, "--bucket", bucket, "--service", "users")[0] == 0
    before = databases(postgres)
    code, _, err = cli("restore", *common, "--bucket", bucket, "--service", "users")
    assert code == 1, err
    assert "no verified backup of postgres/users" in err, err
    assert "run verify first" in err, err
    assert "Traceback" not in err
    assert databases(postgres) == before
    assert len(_states(bucket)) == 1, "no safety backup taken"


def _kill_on_call(target: Any, name: str, call: int, *, after: bool) -> Callable[..., Any]:
    """Wrap ``target.name``: its ``call``-th call raises Killed (before or after running)."""
    real = getattr(target, name)
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == call and not after:
            raise Killed(f"killed before {name} #{call}")
        result = real(*args, **kwargs)
        if calls["n"] == call and after:
            raise Killed(f"killed after {name} #{call}")
        return result

    return wrapper


# Where the kill lands: (module attribute to wrap, which call, after it ran?)
STEPS = {
    "restoring-into-copy": ("check_restored", 1, False),  # users__restore exists
    "live-closed": ("rename_checked", 1, False),  # users has ALLOW_CONNECTIONS false
    "live-renamed-aside": ("rename_checked", 1, True),  # no users, users__old_ and __restore
    "swapped-not-converged": ("rename_checked", 2, True),  # the copy is users, not converged
}


@pytest.mark.parametrize(
    ("step", "command"),
    [
        ("restoring-into-copy", "backup"),
        ("live-closed", "apply"),
        ("live-closed", "backup"),
        ("live-closed", "restore"),
        ("live-renamed-aside", "apply"),
        ("live-renamed-aside", "backup"),
        ("live-renamed-aside", "restore"),
        ("swapped-not-converged", "apply"),
        ("swapped-not-converged", "backup"),
        ("swapped-not-converged", "restore"),
    ],
)
def test_a_restore_killed_at_each_step_is_finished_or_undone_by_the_next_command(
    postgres: PostgresServer,
    common: list[str],
    tmp_path: Path,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    command: str,
) -> None:
    _, credentials = dev_rendered
    bucket = _verified_backup(common, tmp_path)
    before = fingerprint(postgres, "users")
    name, call, after = STEPS[step]
    owner = verify_module if name == "check_restored" else pg
    monkeypatch.setattr(owner, name, _kill_on_call(owner, name, call, after=after))
    with pytest.raises(Killed):
        cli("restore", *common, "--bucket", bucket, "--service", "users")
    monkeypatch.undo()

    if command == "apply":
        code, out, err = cli("db", "apply", *common)
    elif command == "backup":
        code, out, err = cli("backup", *common, "--bucket", bucket, "--service", "users")
    else:
        code, out, err = cli("restore", *common, "--bucket", bucket, "--service", "users")
    assert code == 0, out + err
    assert "Traceback" not in err
    left = databases(postgres)
    assert "users" in left
    assert "users__restore" not in left
    allowed = postgres.superuser_psql("SELECT datallowconn FROM pg_database WHERE datname='users'")
    assert allowed == "t", "the live database accepts connections again"
    assert fingerprint(postgres, "users") == before
    if command != "backup":
        assert_role_model(postgres, "users", postgres.admin_url, dev_config, credentials)
    elif step == "swapped-not-converged":  # backup never converges: it says who finishes it
        assert "`db apply` (or the next restore) finishes it" in out, out
    _drop_old_copies(postgres)
    apply(postgres.admin_url, dev_config, credentials, services=["users"])


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_verify_cut_off_by_the_network_is_not_recorded_as_failed(
    postgres: PostgresServer, common: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = f"file://{tmp_path / 'bucket'}"
    assert cli("backup", *common, "--bucket", bucket, "--service", "users")[0] == 0
    real = fetch.pg_restore
    port = _closed_port()

    def unreachable(login: str, database: str, dump: Path, **kwargs: Any) -> None:
        params = {k: str(v) for k, v in conninfo_to_dict(login).items() if v is not None}
        params["port"] = str(port)  # the server is gone from pg_restore's point of view
        real(make_conninfo("", **params), database, dump, **kwargs)

    monkeypatch.setattr(verify_module, "pg_restore", unreachable)
    code, out, err = cli("verify", *common, "--bucket", bucket, "--service", "users")
    assert code == 1, out + err
    assert "not the backup's fault" in err, err
    assert "Traceback" not in err
    assert set(_states(bucket).values()) == {"unverified"}, "a network fault is no FAILED backup"
    assert not (set(databases(postgres)) & {"users__verify"})
    monkeypatch.undo()
    assert cli("verify", *common, "--bucket", bucket, "--service", "users")[0] == 0
    assert set(_states(bucket).values()) == {"verified"}


def test_an_archive_pg_restore_rejects_is_recorded_as_failed(
    common: list[str], tmp_path: Path
) -> None:
    """The other side: a fault of the backup itself still fails its verification."""
    root = tmp_path / "bucket"
    bucket = f"file://{root}"
    assert cli("backup", *common, "--bucket", bucket, "--service", "users")[0] == 0
    (backup_id,) = _states(bucket)
    folder = root / "postgres" / "users" / backup_id
    junk = b"PGDMP this is not a custom-format archive" * 10
    (folder / "dump.pgcustom").unlink()
    (folder / "dump.pgcustom").write_bytes(junk)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(size=len(junk), sha256=hashlib.sha256(junk).hexdigest())
    (folder / "manifest.json").unlink()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = cli("verify", *common, "--bucket", bucket, "--service", "users")
    assert code == 1, err
    assert "pg_restore" in err, err
    assert _states(bucket) == {backup_id: "failed"}


def test_restore_without_pg_signal_backend_stops_before_anything(
    postgres: PostgresServer, common: list[str], tmp_path: Path, dev_config: StackConfig
) -> None:
    bucket = f"file://{tmp_path / 'bucket'}"
    assert cli("backup", *common, "--bucket", bucket, "--service", "users")[0] == 0
    assert cli("verify", *common, "--bucket", bucket, "--service", "users")[0] == 0
    admin = dev_config.postgres.admin_user
    before = databases(postgres)
    postgres.superuser_psql(f"REVOKE pg_signal_backend FROM {admin}")
    try:
        code, _, err = cli("restore", *common, "--bucket", bucket, "--service", "users")
    finally:
        postgres.superuser_psql(f"GRANT pg_signal_backend TO {admin}")
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "pg_signal_backend" in lines[0], err
    assert admin in lines[0], err
    assert databases(postgres) == before
    assert len(_states(bucket)) == 1, "no safety backup was taken"


def test_the_dev_servers_admin_sync_restores_what_restore_needs(
    postgres: PostgresServer, dev_rendered: tuple[Path, Credentials], dev_config: StackConfig
) -> None:
    """A data volume kept from an older stack: the admin sync run at every start of the dev
    server gives the admin pg_signal_backend back (`make up`'s admin has what restore needs)."""
    rendered, _ = dev_rendered
    admin = dev_config.postgres.admin_user
    member = f"SELECT pg_has_role('{admin}', 'pg_signal_backend', 'MEMBER')::text"
    postgres.superuser_psql(f"REVOKE pg_signal_backend FROM {admin}")
    try:
        assert postgres.superuser_psql(member) == "false"
        postgres.superuser_psql((rendered / "postgres" / "sync-admin.sql").read_text())
        assert postgres.superuser_psql(member) == "true"
    finally:
        postgres.superuser_psql(f"GRANT pg_signal_backend TO {admin}")


def test_a_corrupt_manifest_or_record_does_not_break_list_or_prune_for_the_others(
    common: list[str], tmp_path: Path
) -> None:
    root = tmp_path / "bucket"
    bucket = f"file://{root}"
    for service in ("users", "auth"):
        assert cli("backup", *common, "--bucket", bucket, "--service", service)[0] == 0
    assert cli("verify", *common, "--bucket", bucket, "--service", "auth")[0] == 0
    (users_id,) = _states(bucket, "users")
    (auth_id,) = _states(bucket, "auth")
    manifest = root / "postgres" / "users" / users_id / "manifest.json"
    manifest.unlink()
    manifest.write_bytes(b"{not json")
    (record,) = (root / "postgres" / "auth" / auth_id).glob("verification-*.json")
    record.unlink()
    record.write_bytes(b"\xff\xfe garbage")

    code, out, err = cli("list", "--bucket", bucket)
    assert code == 0, err
    assert "Traceback" not in err
    assert "postgres/auth" in out, out
    assert auth_id in out, out
    assert "unverified" in out, "a corrupt newest record proves nothing"
    assert f"refused: {bucket}/postgres/users/{users_id}/manifest.json: not JSON" in err, err
    assert f"ignored: {bucket}/postgres/auth/{auth_id}/verification-" in err, err
    code, out, err = cli("prune", "--stack", "dev", "--bucket", bucket, "--dry-run")
    assert code == 0, err
    assert f"users/{users_id}/manifest.json: not JSON" in err
    assert "kept 1," in out, out


@dataclass(frozen=True)
class Damaged:
    """A verified backup of ``users``, then its live data changed (what a restore replaces)."""

    bucket: str
    original: str  # the fingerprint the backup holds
    orders: int  # the orders left in the live database


@pytest.fixture
def damaged(
    postgres: PostgresServer,
    common: list[str],
    tmp_path: Path,
    dev_rendered: tuple[Path, Credentials],
) -> Damaged:
    original = fingerprint(postgres, "users")
    bucket = _verified_backup(common, tmp_path)
    return Damaged(bucket, original, _damage(postgres, dev_rendered[1]))


def _damage(postgres: PostgresServer, credentials: Credentials) -> int:
    """Change the live data through the app login; the orders it still has."""
    with psycopg.connect(login_url(postgres, credentials, "users", "app"), autocommit=True) as c:
        c.execute("DELETE FROM orders WHERE id > 100")
    return int(postgres.superuser_psql("SELECT count(*) FROM orders", "users"))


def _replaced_copies(postgres: PostgresServer) -> list[str]:
    return sorted(n for n in databases(postgres) if n.startswith(("users__old_", "users__safety")))


def _assert_secured(postgres: PostgresServer, bucket: str, orders: int) -> None:
    """No replaced copy is left, and a verified safety backup holds what it held."""
    assert _replaced_copies(postgres) == []
    held = [
        item
        for item in _list(bucket)
        if item["purpose"] == "safety"
        and item["state"] == "verified"
        and item["database"].startswith(("users__old_", "users__safety"))
        and item["row_counts"]["public.orders"] == orders
    ]
    assert held, _list(bucket)


# Where a kill lands after the swap, while what the restore replaced is being secured:
# (module, attribute to wrap, which call, after it ran?)
SECURE_STEPS = {
    "replaced-not-secured": (pg, "rename_checked", 3, False),  # users__old_<time>, closed
    "renamed-for-its-dump": (safety_module, "backup_postgres", 1, False),  # users__safety
    "dumped-not-verified": (safety_module, "verify", 1, False),
    "verified-not-dropped": (safety_module, "verify", 1, True),
}


@pytest.mark.parametrize("command", ["backup", "restore"])
@pytest.mark.parametrize("step", SECURE_STEPS)
def test_what_a_restore_replaced_is_kept_until_a_verified_dump_of_it_exists(
    postgres: PostgresServer,
    common: list[str],
    damaged: Damaged,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    command: str,
) -> None:
    bucket, original = damaged.bucket, damaged.original
    owner, name, call, after = SECURE_STEPS[step]
    monkeypatch.setattr(owner, name, _kill_on_call(owner, name, call, after=after))
    with pytest.raises(Killed):
        cli("restore", *common, "--bucket", bucket, "--service", "users", "--secure-replaced")
    monkeypatch.undo()
    assert fingerprint(postgres, "users") == original, "the restore itself was done"
    assert len(_replaced_copies(postgres)) == 1, "what it replaced is still there"

    secure_now = ["--secure-replaced"] if command == "restore" else []
    code, out, err = cli(command, *common, "--bucket", bucket, "--service", "users", *secure_now)
    assert code == 0, out + err
    assert "Traceback" not in err
    assert fingerprint(postgres, "users") == original
    _assert_secured(postgres, bucket, damaged.orders)


def test_a_safety_dump_that_cannot_be_stored_keeps_what_the_restore_replaced(
    postgres: PostgresServer, common: list[str], damaged: Damaged, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk (or a failed upload) after the swap: the service is back, nothing is lost,
    and the next backup finishes the job."""
    bucket, original = damaged.bucket, damaged.original

    def full(*args: Any, **kwargs: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FileBucket, "_write", full)
    code, out, err = cli(
        "restore", *common, "--bucket", bucket, "--service", "users", "--secure-replaced"
    )
    monkeypatch.undo()
    assert code == 1, out + err
    assert "restored users" in out, out
    assert "No space left on device" in err, err
    assert "kept as users__safety" in err, err
    assert "Traceback" not in err
    assert fingerprint(postgres, "users") == original
    assert _replaced_copies(postgres) == ["users__safety"]

    code, out, err = cli("backup", *common, "--bucket", bucket, "--service", "users")
    assert code == 0, out + err
    _assert_secured(postgres, bucket, damaged.orders)


def test_two_restores_at_once_take_turns_and_lose_nothing(
    postgres: PostgresServer, common: list[str], damaged: Damaged
) -> None:
    """Two processes restore one service together: both succeed, one after the other, and
    both databases they replaced end up in verified safety backups before being dropped."""
    bucket, original = damaged.bucket, damaged.original
    argv = [sys.executable, "-m", "infra", "restore", *common, "--bucket", bucket]
    runs = [
        subprocess.Popen(
            [*argv, "--service", "users", "--secure-replaced"],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, out + err
    assert fingerprint(postgres, "users") == original
    _assert_secured(postgres, bucket, damaged.orders)
    safety = [item for item in _list(bucket) if item["purpose"] == "safety"]
    assert len(safety) == 2, "each restore's replaced database was dumped once"
    assert {item["state"] for item in safety} == {"verified"}


def _healthy(bucket: str, status: Path) -> str:
    """backup-health's one line, for a loop that has just run and failed nothing."""
    now = utc_now()
    health.write_status(status, health.LoopStatus(started=now, last_run=now))
    code, out, err = cli("backup-health", "--stack", "dev", "--bucket", bucket, "--status-file",
                         str(status))  # fmt: skip
    assert code == 0, out + err
    return out.strip()


def test_restore_is_done_when_the_service_is_back_and_the_next_backup_secures_the_copy(
    postgres: PostgresServer, common: list[str], damaged: Damaged, tmp_path: Path
) -> None:
    """Issue 22: no dump of the replaced database inside the command. It stays, registered as
    ours, under its __old_ name (the output says so and names the command that secures it);
    the backup container stays healthy meanwhile; the next backup saves it as a verified
    safety backup and drops it, and prune keeps both that and the service's own backups."""
    bucket, original = damaged.bucket, damaged.original
    (before,) = _states(bucket)
    status = tmp_path / "status.json"
    assert _healthy(bucket, status) == "healthy"

    code, out, err = cli("restore", *common, "--bucket", bucket, "--service", "users")
    assert code == 0, out + err
    assert fingerprint(postgres, "users") == original
    (copy,) = _replaced_copies(postgres)
    assert re.fullmatch(r"users__old_\d{14}", copy), copy
    assert safety_module.pending_copies(postgres.admin_url, "users") == [copy]
    (line,) = [line for line in out.splitlines() if line.startswith("kept:")]
    assert copy in line, line
    assert "python -m infra backup" in line, line
    assert "--secure-replaced" in line, line
    assert list(_states(bucket)) == [before], "nothing was dumped inside the command"
    assert _healthy(bucket, status) == "healthy", "a waiting copy is no unhealthy backup"

    code, out, err = cli("backup", *common, "--bucket", bucket, "--service", "users")
    assert code == 0, out + err
    assert f"{copy} saved as safety backup" in out, out
    _assert_secured(postgres, bucket, damaged.orders)
    assert fingerprint(postgres, "users") == original
    (safety,) = [item["backup_id"] for item in _list(bucket) if item["purpose"] == "safety"]
    (own,) = set(_states(bucket)) - {before, safety}
    # Taken in the same run, so in the same hour: the safety backup must not take the hour's
    # place of the service's own backup (or be the "newest verified" that is always kept).
    assert cli("verify", *common, "--bucket", bucket, "--service", "users")[0] == 0
    code, out, err = cli("prune", "--stack", "dev", "--bucket", bucket)
    assert code == 0, err
    assert set(_states(bucket)) >= {own, safety}, out
    assert _healthy(bucket, status) == "healthy"


def test_a_restore_killed_after_the_swap_loses_nothing_and_the_next_backup_secures_it(
    postgres: PostgresServer,
    common: list[str],
    damaged: Damaged,
    monkeypatch: pytest.MonkeyPatch,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
) -> None:
    bucket, original = damaged.bucket, damaged.original
    monkeypatch.setattr(pg, "rename_checked", _kill_on_call(pg, "rename_checked", 2, after=True))
    with pytest.raises(Killed):
        cli("restore", *common, "--bucket", bucket, "--service", "users")
    monkeypatch.undo()
    assert fingerprint(postgres, "users") == original
    assert len(_replaced_copies(postgres)) == 1, "what it replaced is still there"

    code, out, err = cli("backup", *common, "--bucket", bucket, "--service", "users")
    assert code == 0, out + err
    _assert_secured(postgres, bucket, damaged.orders)
    assert cli("db", "apply", *common)[0] == 0
    assert fingerprint(postgres, "users") == original
    assert_role_model(postgres, "users", postgres.admin_url, dev_config, dev_rendered[1])


def test_a_file_bucket_dump_is_read_in_place_and_refused_if_written_to_meanwhile(
    postgres: PostgresServer,
    common: list[str],
    damaged: Damaged,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No copy of the dump: pg_restore reads the descriptor the checksum was taken through.
    Touched while it was read (its inode changed), it is refused before the swap."""
    bucket = damaged.bucket
    (backup_id,) = _states(bucket)
    (dump,) = Path(bucket.removeprefix("file://")).glob(f"postgres/users/{backup_id}/dump.*")
    real = fetch.pg_restore
    seen: list[Path] = []

    def touching(login: str, database: str, path: Path, **kwargs: Any) -> None:
        seen.append(path)
        real(login, database, path, **kwargs)
        os.utime(dump)  # the same bytes, but someone wrote to the object while it was read

    monkeypatch.setattr(verify_module, "pg_restore", touching)
    before = databases(postgres)
    code, out, err = cli("restore", *common, "--bucket", bucket, "--service", "users")
    monkeypatch.undo()
    assert code == 1, out + err
    assert "was written to while it was read" in err, err
    assert "Traceback" not in err
    (read,) = seen
    assert read.parent == Path("/dev/fd"), read
    assert databases(postgres) == before, "the live database is untouched, no copy is left"
    assert int(postgres.superuser_psql("SELECT count(*) FROM orders", "users")) == damaged.orders
