"""Backups are evidence (issue 20, class 1): a bucket writer cannot forge or relabel them.

The attacker here can only create objects in the backup bucket: no key, no database login.
Every attack runs through the CLI against a real PostgreSQL 15, on file:// buckets and on the
GCS emulator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra.backup.catalog import new_id, parse_id, utc_now
from infra.backup.storage import Bucket, open_bucket, read_bytes
from infra.credentials import Credentials
from tests.integration.backup_helpers import cli, databases, fingerprint, login_url, seed
from tests.servers.gcs import GcsEmulator
from tests.servers.postgres import PostgresServer

KEY = "A" * 43 + "="
KEY_ENV = "PERSISTENCE_BACKUP_KEY"
AUTH_SQL = """
CREATE TABLE secrets (id int PRIMARY KEY, body text);
INSERT INTO secrets SELECT g, 'auth secret ' || g FROM generate_series(1, 50) g;
"""

Rewrite = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def seeded(
    postgres: PostgresServer, common: list[str], dev_rendered: tuple[Path, Credentials]
) -> list[str]:
    """``users`` (the victim, A) and ``auth`` (B, whose data must never land in A) hold data."""
    seed(postgres, dev_rendered[1], "auth", AUTH_SQL)
    return common


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
def unkeyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv("PERSISTENCE_BACKUP_KEY_FILE", raising=False)


def _list(bucket: str, service: str) -> dict[str, str]:
    code, out, err = cli("list", "--bucket", bucket, "--service", service, "--json")
    assert code == 0, err
    assert "Traceback" not in err
    return {item["backup_id"]: item["state"] for item in json.loads(out)}


def _backup(common: list[str], bucket: str, service: str, *, verify: bool = True) -> str:
    before = set(_list(bucket, service)) if _exists(bucket) else set()
    code, _, err = cli("backup", *common, "--bucket", bucket, "--service", service)
    assert code == 0, err
    (backup_id,) = set(_list(bucket, service)) - before
    if verify:
        code, _, err = cli(
            "verify", *common, "--bucket", bucket, "--service", service, "--backup", backup_id
        )
        assert code == 0, err
    return backup_id


def _exists(bucket: str) -> bool:
    return not bucket.startswith("file://") or Path(bucket[len("file://") :]).is_dir()


def _plant(bucket: Bucket, source: str, target: str, rewrite: Rewrite | None = None) -> None:
    """Copy every object of folder ``source`` to folder ``target``; ``rewrite`` edits manifests
    and verification records as JSON (what a bucket writer without the key can do)."""
    for name in bucket.names(source):
        leaf = name[len(source) :]
        data = read_bytes(bucket, name)
        if rewrite is not None and leaf.endswith(".json"):
            document = json.loads(data)
            rewrite(document)
            data = json.dumps(document).encode()
        bucket.write(target + leaf, [data])


def _relabel(kind: str, service: str, backup_id: str) -> Rewrite:
    def rewrite(document: dict[str, Any]) -> None:
        document["backup_id"] = backup_id
        if "kind" in document:
            document.update(
                kind=kind,
                service=service,
                database=service,
                started_at=parse_id(backup_id).isoformat(),
                finished_at=parse_id(backup_id).isoformat(),
            )

    return rewrite


def _restore(common: list[str], bucket: str, service: str, *at: str) -> tuple[int, str]:
    code, _, err = cli("restore", *common, "--bucket", bucket, "--service", service, *at)
    assert "Traceback" not in err
    return code, err


def _drop_old_copies(server: PostgresServer) -> None:
    for name in databases(server):
        if "__old_" in name or name.endswith("__safety"):
            server.superuser_psql(f'DROP DATABASE "{name}"')


def test_a_folder_copied_under_another_services_prefix_never_restores(
    postgres: PostgresServer, seeded: list[str], tmp_path: Path, unkeyed: None
) -> None:
    """B's folder copied unchanged under A's prefix: ``restore --service A`` used to replace
    B's live database with B's backup. Refused without a key, from the path alone."""
    bucket = f"file://{tmp_path / 'bucket'}"
    auth_id = _backup(seeded, bucket, "auth")
    _plant(open_bucket(bucket), f"postgres/auth/{auth_id}/", f"postgres/users/{auth_id}/")
    users = fingerprint(postgres, "users")
    postgres.superuser_psql("INSERT INTO secrets VALUES (999, 'written after the backup')", "auth")
    try:
        code, err = _restore(seeded, bucket, "users", "--at", auth_id)
        assert code == 1, err
        assert f"postgres/users/{auth_id}/manifest.json" in err, err
        assert "auth" in err, err
        assert fingerprint(postgres, "users") == users
        assert postgres.superuser_psql("SELECT count(*) FROM secrets", "auth") == "51"
        assert _list(bucket, "users") == {}
    finally:
        postgres.superuser_psql("DELETE FROM secrets WHERE id = 999", "auth")
        _drop_old_copies(postgres)


def test_a_relabelled_encrypted_backup_neither_verifies_nor_restores(
    postgres: PostgresServer, seeded: list[str], gcs: GcsEmulator, keyed: None
) -> None:
    """B's encrypted backup under A's prefix with a manifest rewritten to say A: A's verify
    used to say verified and A's restore put B's data into A."""
    bucket = "gs://backups/evidence-relabel"
    auth_id = _backup(seeded, bucket, "auth", verify=False)
    forged = new_id(utc_now() - timedelta(minutes=1))
    _plant(
        open_bucket(bucket),
        f"postgres/auth/{auth_id}/",
        f"postgres/users/{forged}/",
        _relabel("postgres", "users", forged),
    )
    users = fingerprint(postgres, "users")
    code, out, err = cli("verify", *seeded, "--bucket", bucket, "--service", "users")
    assert "Traceback" not in err
    assert "verified" not in out, out
    assert f"postgres/users/{forged}/manifest.json" in err, err
    assert "authenticat" in err, err
    assert _list(bucket, "users") == {}
    code, err = _restore(seeded, bucket, "users", "--at", forged)
    assert code == 1, err
    assert fingerprint(postgres, "users") == users
    assert "secrets" not in postgres.superuser_psql(
        "SELECT string_agg(tablename, ',') FROM pg_tables", "users"
    )


def test_a_plaintext_backup_is_refused_when_a_key_is_set(
    postgres: PostgresServer,
    seeded: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dev_rendered: tuple[Path, Credentials],
) -> None:
    """A plaintext dump with ``encrypted: false`` planted in an encrypted bucket (downgrade)."""
    bucket = f"file://{tmp_path / 'bucket'}"
    monkeypatch.delenv(KEY_ENV, raising=False)
    plain_id = _backup(seeded, bucket, "users")  # the attacker's own plaintext, verified
    with psycopg.connect(
        login_url(postgres, dev_rendered[1], "users", "app"), autocommit=True
    ) as conn:
        conn.execute("INSERT INTO accounts (email) VALUES ('after-the-plain-backup@example.com')")
    users = fingerprint(postgres, "users")
    monkeypatch.setenv(KEY_ENV, KEY)
    _, _, err = cli(
        "verify", *seeded, "--bucket", bucket, "--service", "users", "--backup", plain_id
    )
    assert "Traceback" not in err
    assert "not encrypted" in err, err
    assert _list(bucket, "users") == {}
    code, err = _restore(seeded, bucket, "users", "--at", plain_id)
    assert code == 1, err
    code, err = _restore(seeded, bucket, "users")
    assert code == 1, err
    assert fingerprint(postgres, "users") == users


def test_an_old_backup_replayed_under_a_newer_id_is_refused(
    postgres: PostgresServer,
    seeded: list[str],
    tmp_path: Path,
    keyed: None,
    dev_rendered: tuple[Path, Credentials],
) -> None:
    """Rollback: the old verified backup, manifest and record copied under a newer id."""
    bucket = f"file://{tmp_path / 'bucket'}"
    old_id = _backup(seeded, bucket, "users")
    with psycopg.connect(
        login_url(postgres, dev_rendered[1], "users", "app"), autocommit=True
    ) as conn:
        conn.execute("INSERT INTO accounts (email) VALUES ('newer@example.com')")
    new_id_ = _backup(seeded, bucket, "users")
    newer = fingerprint(postgres, "users")
    replay = new_id(utc_now())
    _plant(
        open_bucket(bucket),
        f"postgres/users/{old_id}/",
        f"postgres/users/{replay}/",
        _relabel("postgres", "users", replay),
    )
    assert _list(bucket, "users") == {old_id: "verified", new_id_: "verified"}
    try:
        code, err = _restore(seeded, bucket, "users")
        assert code == 0, err
        assert f"postgres/users/{replay}/manifest.json" in err, err
        assert fingerprint(postgres, "users") == newer
    finally:
        _drop_old_copies(postgres)


def _future_flood(bucket: Bucket, source: str, count: int) -> list[str]:
    """``count`` copies of one backup dated months ahead, each its own hour, day and month,
    with a verification record saying ok: what retention used to count first."""
    planted = []
    for n in range(count):
        moment = utc_now() + timedelta(days=31 * (n + 1), hours=n)
        forged = new_id(moment)
        _plant(bucket, source, f"postgres/users/{forged}/", _relabel("postgres", "users", forged))
        planted.append(forged)
    return planted


@pytest.mark.parametrize("key", [None, KEY], ids=["without-key", "with-key"])
def test_a_flood_of_planted_entries_cannot_push_real_backups_out(
    seeded: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    if key is None:
        monkeypatch.delenv(KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(KEY_ENV, key)
    root = tmp_path / "bucket"
    bucket = f"file://{root}"
    real = _backup(seeded, bucket, "users")
    planted = _future_flood(open_bucket(bucket), f"postgres/users/{real}/", 25)
    if key is not None:  # with a key, past-dated forgeries are refused too
        forged = new_id(utc_now() - timedelta(minutes=3))
        _plant(
            open_bucket(bucket),
            f"postgres/users/{real}/",
            f"postgres/users/{forged}/",
            _relabel("postgres", "users", forged),
        )
        planted.append(forged)
    # The stack keeps 24 hourly, 7 daily, 4 weekly, 3 monthly: the flood fills every generation.
    code, out, err = cli("prune", "--stack", "dev", "--bucket", bucket)
    assert code == 0, err
    assert "Traceback" not in err
    assert (root / "postgres" / "users" / real / "manifest.json").exists(), out
    assert _list(bucket, "users") == {real: "verified"}
    for forged in planted:
        assert forged in err, err
        assert (root / "postgres" / "users" / forged).is_dir(), "never deleted: not ours"


def test_a_junk_entry_naming_another_services_backup_cannot_fail_or_prune_it(
    seeded: list[str], tmp_path: Path, unkeyed: None
) -> None:
    """A junk folder whose manifest names auth's real backup (and a wrong checksum): verify
    used to write ok=false into auth's real folder, and prune then deleted it."""
    root = tmp_path / "bucket"
    bucket = f"file://{root}"
    auth_id = _backup(seeded, bucket, "auth")
    junk = new_id(utc_now() - timedelta(minutes=2))
    store = open_bucket(bucket)

    def wrong_checksum(document: dict[str, Any]) -> None:
        document["sha256"] = "0" * 64

    for name in ("manifest.json", "dump.pgcustom"):
        data = read_bytes(store, f"postgres/auth/{auth_id}/{name}")
        if name == "manifest.json":
            document = json.loads(data)
            wrong_checksum(document)
            data = json.dumps(document).encode()
        store.write(f"postgres/users/{junk}/{name}", [data])
    code, _, err = cli("verify", *seeded, "--bucket", bucket)
    assert "Traceback" not in err
    assert f"postgres/users/{junk}/manifest.json" in err, err
    assert not list((root / "postgres" / "auth" / auth_id).glob("verification-*"))[1:], (
        "a record was written into auth's real folder"
    )
    code, _, err = cli("prune", "--stack", "dev", "--bucket", bucket)
    assert code == 0, err
    assert _list(bucket, "auth") == {auth_id: "verified"}


def test_a_forged_failed_record_cannot_condemn_a_verified_backup(
    seeded: list[str], tmp_path: Path, keyed: None
) -> None:
    """New attack: a newer verification record saying ok=false planted in the real folder made
    the backup "failed", and prune deleted it. With a key, the record fails authentication."""
    root = tmp_path / "bucket"
    bucket = f"file://{root}"
    backup_id = _backup(seeded, bucket, "users")
    store = open_bucket(bucket)
    (record,) = store.names(f"postgres/users/{backup_id}/verification-")
    document = json.loads(read_bytes(store, record))
    later = utc_now() + timedelta(seconds=1)
    document.update(ok=False, problems=["forged"], checked_at=later.isoformat())
    store.write(
        f"postgres/users/{backup_id}/verification-{new_id(later)}.json",
        [json.dumps(document).encode()],
    )
    code, out, err = cli("prune", "--stack", "dev", "--bucket", bucket)
    assert code == 0, err
    assert "authenticat" in err, err
    assert (root / "postgres" / "users" / backup_id / "manifest.json").exists(), out
    assert _list(bucket, "users") == {backup_id: "unverified"}


def test_an_encrypted_object_moved_beside_another_manifest_fails_to_decrypt(
    seeded: list[str], tmp_path: Path, keyed: None
) -> None:
    """New attack: an authentic encrypted object copied into another folder (another backup id
    here) beside a manifest that would accept its checksum: the chunks' associated data is the
    object's full name, so it does not open there even with the right key."""
    root = tmp_path / "bucket"
    bucket = f"file://{root}"
    first = _backup(seeded, bucket, "users", verify=False)
    store = open_bucket(bucket)
    moved = f"postgres/users/{new_id(utc_now() - timedelta(minutes=1))}/"
    store.write(
        moved + "dump.pgcustom", [read_bytes(store, f"postgres/users/{first}/dump.pgcustom")]
    )
    from infra.backup import crypto

    key = crypto.key_from_env()
    assert key is not None
    with pytest.raises(Exception, match="authentication"):
        b"".join(crypto.decrypt(store.read(moved + "dump.pgcustom"), key, moved + "dump.pgcustom"))


def test_a_malformed_record_never_stops_verify_or_restore_for_the_rest(
    postgres: PostgresServer, seeded: list[str], tmp_path: Path, unkeyed: None
) -> None:
    """Issue 20, class 2 on a real server: ``row_counts: null`` in one manifest used to crash
    verify (a traceback) before the other services' backups were verified."""
    root = tmp_path / "bucket"
    bucket = f"file://{root}"
    good = _backup(seeded, bucket, "users")
    bad = _backup(seeded, bucket, "users", verify=False)
    auth_id = _backup(seeded, bucket, "auth", verify=False)
    manifest = root / "postgres" / "users" / bad / "manifest.json"
    document = {**json.loads(manifest.read_bytes()), "row_counts": None}
    manifest.unlink()
    manifest.write_text(json.dumps(document))
    code, _, err = cli("verify", *seeded, "--bucket", bucket)
    assert code == 0, err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if bad in line]
    assert "row_counts is null" in line, line
    assert _list(bucket, "auth") == {auth_id: "verified"}
    try:
        code, err = _restore(seeded, bucket, "users")
        assert code == 0, err
        assert bad in err
    finally:
        _drop_old_copies(postgres)
    states = _list(bucket, "users")  # with the safety backup of what the restore replaced
    assert states[good] == "verified"
    assert bad not in states
