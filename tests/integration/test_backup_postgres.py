"""backup -> verify -> restore against a real PostgreSQL 15 (file:// and the GCS emulator)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from infra.backup import catalog
from infra.backup.restore import old_database_name
from infra.backup.storage import FileBucket, open_bucket
from infra.config import StackConfig
from infra.credentials import Credentials
from infra.postgres import apply
from infra.postgres.driver import session
from tests.integration.backup_helpers import (
    assert_role_model,
    cli,
    cli_options,
    databases,
    fingerprint,
    login_url,
    seed,
)
from tests.servers.gcs import GcsEmulator
from tests.servers.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(
    postgres: PostgresServer, dev_rendered: tuple[Path, Credentials], dev_config: StackConfig
) -> tuple[PostgresServer, Credentials, list[str]]:
    """Every dev service converged, ``users`` seeded; the CLI's common arguments."""
    rendered, credentials = dev_rendered
    apply(postgres.admin_url, dev_config, credentials)
    seed(postgres, credentials, "users")
    common = cli_options(postgres, rendered, dev_config.postgres.admin_user)
    return postgres, credentials, common


def _states(bucket_url: str, service: str) -> dict[str, str]:
    code, out, _ = cli("list", "--bucket", bucket_url, "--service", service, "--json")
    assert code == 0
    return {item["backup_id"]: item["state"] for item in json.loads(out)}


def _only_backup(bucket_url: str, service: str) -> str:
    states = _states(bucket_url, service)
    assert len(states) == 1, states
    return next(iter(states))


def assert_isolation(server: PostgresServer, credentials: Credentials) -> None:
    """The roles issue's checks, through real logins, after a restore."""
    app = login_url(server, credentials, "users", "app")
    with psycopg.connect(app, autocommit=True) as conn:
        conn.execute("INSERT INTO accounts (email) VALUES ('after-restore@example.com')")
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (500,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE sneaky (id int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DROP TABLE orders")
    readonly = login_url(server, credentials, "users", "readonly")
    with psycopg.connect(readonly, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM documents").fetchone() == (3,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM accounts")
    migrator = login_url(server, credentials, "users", "migrator")
    with psycopg.connect(migrator, autocommit=True) as conn:
        conn.execute("CREATE TABLE after_restore (id int)")
        conn.execute("DROP TABLE after_restore")
    for other in ("auth", "events"):
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(
                login_url(server, credentials, other, "app", "users"), connect_timeout=5
            ).close()
    owners = server.superuser_psql(
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'", "users"
    )
    assert owners == "users_owner"
    lo_owners = server.superuser_psql(
        "SELECT DISTINCT lomowner::regrole FROM pg_largeobject_metadata", "users"
    )
    assert lo_owners == "users_owner"


def test_round_trip_restores_equal_data_and_the_role_model(
    stack: tuple[PostgresServer, Credentials, list[str]], tmp_path: Path, dev_config: StackConfig
) -> None:
    server, credentials, common = stack
    bucket = f"file://{tmp_path / 'bucket'}"
    original = fingerprint(server, "users")

    code, out, err = cli("backup", *common, "--bucket", bucket, "--service", "users")
    assert code == 0, err
    backup_id = _only_backup(bucket, "users")
    assert _states(bucket, "users") == {backup_id: "unverified"}
    manifest = json.loads(
        (tmp_path / "bucket" / "postgres" / "users" / backup_id / "manifest.json").read_text()
    )
    assert manifest["row_counts"] == {
        "public.accounts": 200,
        "public.documents": 3,
        "public.orders": 500,
    }
    assert manifest["large_objects"] == 3
    assert manifest["server_version"].startswith("15.")

    code, out, err = cli("verify", *common, "--bucket", bucket)
    assert code == 0, err + out
    assert _states(bucket, "users") == {backup_id: "verified"}
    assert not any(name.endswith("__verify") for name in databases(server))

    # Damage the live data, then restore: the data must equal the original again.
    with psycopg.connect(login_url(server, credentials, "users", "app"), autocommit=True) as c:
        c.execute("DELETE FROM orders WHERE id > 100")
        c.execute("UPDATE accounts SET email = 'x' || id")
    assert fingerprint(server, "users") != original

    damaged = fingerprint(server, "users")
    code, out, err = cli(
        "restore", *common, "--bucket", bucket, "--service", "users", "--secure-replaced"
    )
    assert code == 0, err
    assert fingerprint(server, "users") == original
    assert "users__restore" not in databases(server)
    # The replaced database was dumped as a safety backup, verified, and only then dropped.
    states = _states(bucket, "users")
    (safety,) = set(states) - {backup_id}
    assert states[safety] == "verified", states
    assert [n for n in databases(server) if n.startswith(("users__old_", "users__safety"))] == []
    assert_isolation(server, credentials)
    assert_role_model(server, "users", server.admin_url, dev_config, credentials)
    # ... and that backup holds exactly what the restore replaced.
    assert cli("restore", *common, "--bucket", bucket, "--service", "users", "--at", safety)[0] == 0
    assert fingerprint(server, "users") == damaged
    assert cli("restore", *common, "--bucket", bucket, "--service", "users")[0] == 0
    assert fingerprint(server, "users") == original
    # Those two restores kept what they replaced for the next backup: not this module's.
    for name in databases(server):
        if name.startswith("users__old_"):
            server.superuser_psql(f'DROP DATABASE "{name}"')


def test_round_trip_through_gcs_with_encryption(
    stack: tuple[PostgresServer, Credentials, list[str]],
    gcs: GcsEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, _, common = stack
    monkeypatch.setenv("PERSISTENCE_BACKUP_KEY", "A" * 43 + "=")
    bucket = "gs://backups/encrypted"
    original = fingerprint(server, "users")
    assert cli("backup", *common, "--bucket", bucket, "--service", "users")[0] == 0
    backup_id = _only_backup(bucket, "users")
    stored = b"".join(open_bucket(bucket).read(f"postgres/users/{backup_id}/dump.pgcustom"))
    assert stored.startswith(b"PPBACKUP-AESGCM-2")
    assert b"accounts" not in stored  # table names would show in a plaintext custom dump

    monkeypatch.delenv("PERSISTENCE_BACKUP_KEY")
    code, _, err = cli("verify", *common, "--bucket", bucket)
    assert code == 2, err
    assert "is encrypted: set PERSISTENCE_BACKUP_KEY" in err
    assert _states(bucket, "users") == {backup_id: "unverified"}  # not the backup's fault
    monkeypatch.setenv("PERSISTENCE_BACKUP_KEY", "B" * 43 + "=")
    code, out, err = cli("verify", *common, "--bucket", bucket)
    assert code == 0, err  # another key's backup is refused (one line), never verified
    assert f"users/{backup_id}/manifest.json: written with backup key" in err, err
    assert "verified" not in out

    monkeypatch.setenv("PERSISTENCE_BACKUP_KEY", "A" * 43 + "=")
    code, _, err = cli("verify", *common, "--bucket", bucket, "--backup", backup_id)
    assert code == 0, err
    assert _states(bucket, "users") == {backup_id: "verified"}
    code, _, err = cli(
        "restore", *common, "--bucket", bucket, "--service", "users", "--at", backup_id
    )
    assert code == 0, err
    assert fingerprint(server, "users") == original
    for name in databases(server):
        if name.startswith("users__old_"):
            server.superuser_psql(f'DROP DATABASE "{name}"')


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_flipped_byte_fails_verify_and_restore_refuses_it(
    stack: tuple[PostgresServer, Credentials, list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    encrypted: bool,
) -> None:
    """An encrypted object is hashed and decrypted side by side: the checksum, not the
    decryption, is what refuses it, and nothing is restored or left behind."""
    server, _, common = stack
    if encrypted:
        monkeypatch.setenv("PERSISTENCE_BACKUP_KEY", "A" * 43 + "=")
    root = tmp_path / "bucket"
    bucket = f"file://{root}"
    before = fingerprint(server, "users")
    assert cli("backup", *common, "--bucket", bucket, "--service", "users")[0] == 0
    backup_id = _only_backup(bucket, "users")
    dump = root / "postgres" / "users" / backup_id / "dump.pgcustom"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0x01
    dump.write_bytes(bytes(data))

    # restore checks the checksum before touching anything, verified or not
    code, _, err = cli(
        "restore", *common, "--bucket", bucket, "--service", "users", "--at", backup_id
    )
    assert code == 1, err
    assert "fails its checksum" in err, err
    code, _, err = cli("verify", *common, "--bucket", bucket)
    assert code == 1, err
    assert "fails its checksum" in err
    assert _states(bucket, "users") == {backup_id: "failed"}
    code, _, err = cli("restore", *common, "--bucket", bucket, "--service", "users")
    assert code == 1, err
    assert "no backup of postgres/users" in err
    assert not [name for name in databases(server) if name.startswith("users__")]
    assert fingerprint(server, "users") == before
    assert not [n for n in databases(server) if n.startswith("users__")]


def test_restore_that_fails_leaves_the_original_intact(
    stack: tuple[PostgresServer, Credentials, list[str]], tmp_path: Path
) -> None:
    """A restored copy that does not match its manifest is dropped; the live db is untouched."""
    server, _, common = stack
    root = tmp_path / "bucket"
    bucket = f"file://{root}"
    assert cli("backup", *common, "--bucket", bucket, "--service", "users")[0] == 0
    good = _only_backup(bucket, "users")
    # A second backup whose manifest disagrees with its (intact) dump.
    bad = catalog.new_id(catalog.utc_now())
    source, target = root / "postgres" / "users" / good, root / "postgres" / "users" / bad
    target.mkdir()
    (target / "dump.pgcustom").write_bytes((source / "dump.pgcustom").read_bytes())
    manifest = json.loads((source / "manifest.json").read_text())
    manifest.update(
        backup_id=bad,
        started_at=catalog.parse_id(bad).isoformat(),
        finished_at=catalog.parse_id(bad).isoformat(),
        row_counts={**manifest["row_counts"], "public.orders": 499},
    )
    (target / "manifest.json").write_text(json.dumps(manifest))
    with psycopg.connect(server.admin_url.replace("/postgres", "/users")) as conn:
        conn.execute("SET ROLE users_owner")
        conn.execute("INSERT INTO accounts (email) VALUES ('written-after-backup@example.com')")
    before = fingerprint(server, "users")
    live_oid = server.superuser_psql("SELECT oid FROM pg_database WHERE datname = 'users'")

    code, _, err = cli("restore", *common, "--bucket", bucket, "--service", "users", "--at", bad)
    assert code == 1, err
    assert "does not match its manifest" in err, err
    assert "untouched" in err
    assert fingerprint(server, "users") == before
    assert server.superuser_psql("SELECT oid FROM pg_database WHERE datname = 'users'") == live_oid
    assert not [n for n in databases(server) if n.startswith("users__")]


def test_restore_ends_client_sessions_on_the_live_database(
    stack: tuple[PostgresServer, Credentials, list[str]], tmp_path: Path
) -> None:
    """A service still connected to its database does not block the swap: its session ends."""
    server, credentials, common = stack
    bucket = f"file://{tmp_path / 'bucket'}"
    assert cli("backup", *common, "--bucket", bucket, "--service", "users")[0] == 0
    # Verified first: restore without --at takes only a verified backup. A fix of this test's
    # setup (it restored an unverified backup), not a weakening: it asserts what it did before.
    assert cli("verify", *common, "--bucket", bucket, "--service", "users")[0] == 0
    with psycopg.connect(login_url(server, credentials, "users", "app"), autocommit=True) as app:
        code, _, err = cli("restore", *common, "--bucket", bucket, "--service", "users")
        assert code == 0, err
        with pytest.raises(psycopg.OperationalError):
            app.execute("SELECT 1")
    assert not [n for n in databases(server) if n.startswith("users__restore")]


def test_a_session_the_admin_may_not_end_fails_the_restore_cleanly(
    stack: tuple[PostgresServer, Credentials, list[str]], tmp_path: Path
) -> None:
    """A non-superuser admin cannot end a superuser's session (as on Cloud SQL): the restore
    stops with a clear error, the live database stays as it was, and no copy is left behind."""
    server, _, common = stack
    bucket = f"file://{tmp_path / 'bucket'}"
    assert cli("backup", *common, "--bucket", bucket, "--service", "users")[0] == 0
    # Verified first: restore without --at takes only a verified backup. A fix of this test's
    # setup (it restored an unverified backup), not a weakening: it asserts what it did before.
    assert cli("verify", *common, "--bucket", bucket, "--service", "users")[0] == 0
    before = fingerprint(server, "users")
    databases_before = set(databases(server))
    live_oid = server.superuser_psql("SELECT oid FROM pg_database WHERE datname = 'users'")
    holder = server.superuser_session("users", "SELECT pg_sleep(60)")
    try:
        code, _, err = cli("restore", *common, "--bucket", bucket, "--service", "users")
    finally:
        holder.terminate()
        holder.wait(timeout=10)
    assert code == 1, err
    assert "being accessed by other users" in err, err
    assert "Traceback" not in err
    assert fingerprint(server, "users") == before
    assert server.superuser_psql("SELECT oid FROM pg_database WHERE datname = 'users'") == live_oid
    assert (
        server.superuser_psql("SELECT datallowconn FROM pg_database WHERE datname = 'users'") == "t"
    ), "the live database accepts connections again"
    assert set(databases(server)) == databases_before, "no copy or renamed database left"


def test_restores_in_the_same_second_keep_distinct_old_databases(
    stack: tuple[PostgresServer, Credentials, list[str]],
) -> None:
    """The kept original gets the first free ``__old_<second>`` name, never a clash."""
    server, _, _ = stack
    now = catalog.utc_now().replace(microsecond=0)
    taken = [f"users__old_{now + timedelta(seconds=s):%Y%m%d%H%M%S}" for s in range(4)]
    for name in taken:
        server.superuser_psql(f'CREATE DATABASE "{name}"')
    try:
        with session(server.admin_url, autocommit=True) as conn:
            chosen = old_database_name(conn, "users")
        assert chosen not in taken
        assert re.fullmatch(r"users__old_\d{14}", chosen), chosen
        assert chosen > taken[0], "names stay in time order"
    finally:
        for name in taken:
            server.superuser_psql(f'DROP DATABASE "{name}"')


def test_backup_killed_midway_leaves_nothing_restorable(
    stack: tuple[PostgresServer, Credentials, list[str]], tmp_path: Path
) -> None:
    server, credentials, common = stack
    seed(
        server,
        credentials,
        "events",
        "CREATE TABLE blobs (id int, body bytea);"  # ~20 MB that does not compress
        "INSERT INTO blobs SELECT g, (SELECT decode(string_agg(md5(random()::text || i), ''),"
        " 'hex') FROM generate_series(1, 32 + g % 2) i) FROM generate_series(1, 40000) g;",
    )
    root = tmp_path / "bucket"
    scratch = tmp_path / "tmp"  # the backups' TMPDIR: where their plaintext scratch lives
    scratch.mkdir()
    argv = [sys.executable, "-m", "infra", "backup", *common, "--bucket", f"file://{root}"]
    argv += ["--service", "events"]
    env = {**os.environ, "CI": "1", "TMPDIR": str(scratch)}
    process = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    partial: list[Path] = []
    while time.monotonic() < deadline and process.poll() is None:
        partial = [p for p in root.rglob(".dump.pgcustom.partial-*") if p.stat().st_size > 0]
        if partial:
            break
        time.sleep(0.005)
    assert partial, "the backup finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not list(root.rglob("manifest.json"))
    assert _states(f"file://{root}", "events") == {}
    code, out, _ = cli("list", "--bucket", f"file://{root}")
    assert code == 0
    assert "no complete backups" in out
    assert FileBucket(root).names() == []  # only the hidden partial file, never an object
    left = list(scratch.iterdir())
    assert [p.name for p in left if f"-{process.pid}-" in p.name], "the killed run's scratch"

    again = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert list(scratch.iterdir()) == [], "the next backup sweeps what the killed one left"
    assert len(_states(f"file://{root}", "events")) == 1


def test_failing_upload_writes_no_manifest(
    stack: tuple[PostgresServer, Credentials, list[str]], tmp_path: Path
) -> None:
    from infra.backup.dump import Target, backup_postgres
    from infra.errors import BackupError

    server, _, _ = stack

    class BrokenBucket(FileBucket):
        def write(self, name: str, chunks: object) -> int:
            if name.endswith("dump.pgcustom"):
                raise BackupError("network went away")
            return super().write(name, chunks)  # type: ignore[arg-type]

    bucket = BrokenBucket(tmp_path / "bucket")
    with pytest.raises(BackupError, match="network went away"):
        backup_postgres(Target(bucket, None), server.admin_url, "users", "custom")
    assert catalog.entries(bucket, key=None) == []
    assert not list((tmp_path / "bucket").rglob("manifest.json"))


def test_prune_keeps_exactly_the_configured_generations(
    stack: tuple[PostgresServer, Credentials, list[str]], tmp_path: Path
) -> None:
    """72 hourly backups (copies of a real one) pruned with the dev stack's keep settings."""
    import shutil
    from datetime import UTC, datetime, timedelta

    _, _, common = stack
    real = tmp_path / "real"
    assert cli("backup", *common, "--bucket", f"file://{real}", "--service", "users")[0] == 0
    assert cli("verify", *common, "--bucket", f"file://{real}")[0] == 0
    (source,) = (real / "postgres" / "users").iterdir()
    verification = next(source.glob("verification-*.json"))
    root = tmp_path / "bucket"
    base = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)  # a Friday
    ids = []
    for hours in range(72):
        moment = base - timedelta(hours=hours)
        backup_id = catalog.new_id(moment)
        ids.append(backup_id)
        folder = root / "postgres" / "users" / backup_id
        folder.mkdir(parents=True)
        shutil.copy(source / "dump.pgcustom", folder)
        manifest = json.loads((source / "manifest.json").read_text())
        manifest.update(
            backup_id=backup_id,
            started_at=moment.isoformat(),
            finished_at=(moment + timedelta(minutes=1)).isoformat(),
        )
        (folder / "manifest.json").write_text(json.dumps(manifest))
        if hours == 60:  # the only verified one: old, but the newest verified
            record = json.loads(verification.read_text())
            checked = moment + timedelta(minutes=2)
            record.update(backup_id=backup_id, checked_at=checked.isoformat())
            name = f"verification-{catalog.new_id(checked)}.json"
            (folder / name).write_text(json.dumps(record))
    stale = root / "postgres" / "users" / catalog.new_id(base - timedelta(days=5))
    stale.mkdir()
    (stale / "dump.pgcustom").write_bytes(b"interrupted")
    running = root / "postgres" / "users" / catalog.new_id(catalog.utc_now())
    running.mkdir()
    (running / "dump.pgcustom").write_bytes(b"still being written")

    code, out, err = cli("prune", "--stack", "dev", "--bucket", f"file://{root}")
    assert code == 0, err
    # dev keeps hourly 24, daily 7, weekly 4, monthly 3: the 24 newest hours, the newest of
    # the 19th and the 18th (the 20th's is already kept), one ISO week, one month; plus the
    # newest verified backup.
    expected = {ids[h] for h in range(24)} | {ids[24], ids[48], ids[60]}
    remaining = {p.name for p in (root / "postgres" / "users").iterdir()}
    assert remaining == expected | {running.name}
    assert set(_states(f"file://{root}", "users")) == expected
    assert "kept 27, deleted 46, refused 0" in out


def test_backup_loop_backs_up_at_once_then_follows_the_schedule(
    stack: tuple[PostgresServer, Credentials, list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the dev backup container does it: the first run (backup, verify, prune) as soon as
    the loop starts, so right after `make up` there is a verified backup to restore; the
    next one on the schedule (the wait itself is skipped)."""
    _, _, common = stack
    bucket = f"file://{tmp_path / 'bucket'}"
    status = tmp_path / "status.json"  # never the container's default path on this machine
    services = ("auth", "authorization", "users", "audit", "events")

    waits: list[float] = []
    seen_before_wait: list[dict[str, str]] = []

    def sleep(seconds: float) -> None:
        seen_before_wait.append(
            {e.manifest.service: e.state for e in catalog.entries(open_bucket(bucket), key=None)}
        )
        waits.append(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    argv = ["--bucket", bucket, "--status-file", str(status)]
    code, out, err = cli("backup-loop", *common, *argv, "--runs", "1")
    assert code == 0, err
    assert "error" not in err
    assert waits == []  # the first run does not wait for the schedule
    assert "first backup now" in out
    assert "prune: skipped on the loop's first run" in out  # a rebuild may be restoring
    states = {e.manifest.service: e.state for e in catalog.entries(open_bucket(bucket), key=None)}
    assert states == dict.fromkeys(services, "verified")
    assert json.loads(status.read_text())["failed"] == []

    code, out, err = cli("backup-loop", *common, *argv, "--runs", "2")
    assert code == 0, err
    assert len(waits) == 1  # then the schedule
    assert 0 <= waits[0] <= 3600  # dev schedule: hourly
    # the wait came after the first run had verified its backups
    assert seen_before_wait[0] == dict.fromkeys(services, "verified")
    taken = re.findall(r"^postgres/users \S+ .* sha256 ", out, re.MULTILINE)
    assert len(taken) == 2, out  # two runs (prune keeps one an hour)
    assert "next backup at" in out
    assert re.search(r"^kept \d+, deleted \d+", out, re.MULTILINE), out  # then it prunes


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "encrypted"])
def test_directory_format_round_trip(
    stack: tuple[PostgresServer, Credentials, list[str]], tmp_path: Path, sealed: bool
) -> None:
    """backup.format: directory (parallel pg_dump, shipped as one tar) verifies like custom,
    read in place from a file:// bucket whether it is sealed or not."""
    import base64

    from infra.backup.dump import Target, backup_postgres
    from infra.backup.verify import verify

    server, _, _ = stack
    key = base64.urlsafe_b64decode("A" * 43 + "=") if sealed else None
    bucket = FileBucket(tmp_path / "bucket")
    manifest = backup_postgres(Target(bucket, key), server.admin_url, "users", "directory")
    assert manifest.format == "directory"
    assert manifest.object == "dump.pgdir.tar"
    assert manifest.encrypted == sealed
    (entry,) = catalog.entries(bucket, key=key)
    result = verify(bucket, entry, server.admin_url, key)
    assert result.ok, result.problems
    assert catalog.entries(bucket, key=key)[0].state == "verified"


def test_gcs_bucket_never_overwrites_and_an_interrupted_upload_leaves_no_object(
    gcs: GcsEmulator,
) -> None:
    from infra.errors import BackupError

    bucket = open_bucket("gs://backups/semantics")
    assert bucket.write("postgres/x/1/dump", [b"a" * 3_000_000, b"b"]) == 3_000_001
    with pytest.raises(BackupError, match="never overwrite"):
        bucket.write("postgres/x/1/dump", [b"other"])
    assert b"".join(bucket.read("postgres/x/1/dump")) == b"a" * 3_000_000 + b"b"

    def interrupted() -> Iterator[bytes]:
        yield b"c" * 3_000_000
        raise BackupError("pg_dump failed: connection lost")

    with pytest.raises(BackupError, match="connection lost"):
        bucket.write("postgres/x/2/dump", interrupted())
    assert bucket.names("postgres/") == ["postgres/x/1/dump"]
    bucket.delete("postgres/x/1/dump")
    assert bucket.names() == []


def test_a_gcs_bucket_that_does_not_exist_is_one_line(gcs: GcsEmulator) -> None:
    for argv in (
        ("list", "--bucket", "gs://no-such-bucket"),
        ("prune", "--stack", "dev", "--bucket", "gs://no-such-bucket/prefix"),
    ):
        code, _, err = cli(*argv)
        assert code == 2, err
        assert "Traceback" not in err
        assert err.strip().splitlines() == [f"error: --bucket {argv[-1]}: no such bucket"], err
