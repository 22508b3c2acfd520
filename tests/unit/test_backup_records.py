"""Malformed or unproven backup records never crash a command or stop the other backups
(issue 20, class 2), and what the reader proves with and without a backup key (class 1)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.backup.catalog import entries, find, new_id, scan
from infra.backup.storage import FileBucket
from infra.cli import main
from tests.unit.backup_fakes import add_backup

NOW = datetime.now(UTC).replace(microsecond=0)
KEY = bytes(range(32))
STACK = """\
config:
  persistence:platform: docker
  persistence:services:
    - name: users
  persistence:backup:
    keep: {hourly: 1, daily: 0, weekly: 0, monthly: 0}
"""

# The examples, and more of the same class.
MALFORMED: dict[str, Any] = {
    "started_at": "garbage",
    "sha256": 12345,
    "size": "2766",
    "row_counts": None,
    "format": "tar",
    "finished_at": "2026-11-22T03:00:00",  # no time zone
    "encrypted": "no",
    "large_objects": True,
    "kind": "mysql",
    "sequences": {"public.s": "7"},
    "purpose": "anything",
    "object": "../../auth/20261122T030000.000000Z/dump.pgcustom",
}


def _rewrite(bucket: Path, backup_id: str, **changes: Any) -> None:
    path = bucket / "postgres" / "users" / backup_id / "manifest.json"
    document = json.loads(path.read_bytes())
    document.update(changes)
    path.unlink()
    path.write_text(json.dumps(document))


def _run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("field", MALFORMED)
def test_a_malformed_manifest_skips_that_backup_only_with_one_line(
    field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "bucket"
    bucket = FileBucket(root)
    good = add_backup(bucket, NOW - timedelta(hours=2), verified=True)
    bad = add_backup(bucket, NOW - timedelta(hours=1), verified=True)
    _rewrite(root, bad, **{field: MALFORMED[field]})
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(STACK)

    code, out, err = _run("list", "--bucket", f"file://{root}", "--json", capsys=capsys)
    assert code == 0, err
    assert [item["backup_id"] for item in json.loads(out)] == [good]
    (line,) = err.splitlines()
    assert f"postgres/users/{bad}/manifest.json" in line
    assert field in line or "format" in line, line

    code, out, err = _run(
        "prune", "--stack", str(stack), "--bucket", f"file://{root}", capsys=capsys
    )
    assert code == 0, err
    assert "Traceback" not in err
    assert f"postgres/users/{bad}/manifest.json" in err
    assert (root / "postgres" / "users" / bad).is_dir(), "never deleted: not proven ours"
    assert [e.manifest.backup_id for e in entries(bucket, key=None)] == [good]
    assert (
        find(bucket, "postgres", "users", verified_only=True, key=None).manifest.backup_id == good
    )


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"ok": "yes"}, "ok is"),
        ({"problems": None}, "problems is"),
        ({"backup_id": "20200101T000000.000000Z"}, "not its folder's"),
        ({"checked_at": "2020-01-01T00:00:00+00:00"}, "does not match its name"),
        ({"seconds": "0.1"}, "seconds is"),
    ],
)
def test_a_malformed_newest_record_leaves_the_backup_unverified(
    change: dict[str, Any], words: str, tmp_path: Path
) -> None:
    bucket = FileBucket(tmp_path)
    backup_id = add_backup(bucket, NOW - timedelta(hours=1), verified=False)
    (record,) = (tmp_path / "postgres" / "users" / backup_id).glob("verification-*.json")
    later = NOW - timedelta(minutes=1)
    document = {**json.loads(record.read_bytes()), "ok": True, "checked_at": later.isoformat()}
    document.update(change)
    (record.parent / f"verification-{new_id(later)}.json").write_text(json.dumps(document))
    (entry,), problems = scan(bucket, key=None)
    assert entry.state == "unverified"
    (line,) = problems
    assert words in line, line


def test_without_a_key_the_path_still_decides_what_a_backup_is(tmp_path: Path) -> None:
    """Copied under another service, another id, or nested deeper: refused from the path."""
    bucket = FileBucket(tmp_path)
    backup_id = add_backup(bucket, NOW - timedelta(hours=1))
    source = tmp_path / "postgres" / "users" / backup_id
    other = new_id(NOW - timedelta(minutes=30))
    for target in (
        tmp_path / "postgres" / "auth" / backup_id,
        tmp_path / "postgres" / "users" / other,
        tmp_path / "redis" / "users" / backup_id,
        tmp_path / "postgres" / "users" / backup_id / "nested",
    ):
        target.mkdir(parents=True)
        for item in source.iterdir():
            if item.is_file():
                (target / item.name).write_bytes(item.read_bytes())
    found, problems = scan(bucket, key=None)
    assert [e.folder for e in found] == [f"postgres/users/{backup_id}/"]
    assert len(problems) == 4, problems
    assert all(line.startswith("refused: file://") for line in problems)


def test_a_backup_dated_in_the_future_is_refused(tmp_path: Path) -> None:
    bucket = FileBucket(tmp_path)
    now = datetime.now(UTC)  # not the module's NOW: a slow suite must not age the test
    add_backup(bucket, now + timedelta(minutes=2))  # clock skew: tolerated
    add_backup(bucket, now + timedelta(minutes=30))
    finished_later = add_backup(bucket, now - timedelta(hours=1))
    _rewrite(tmp_path, finished_later, finished_at=(now + timedelta(days=30)).isoformat())
    found, problems = scan(bucket, key=None)
    assert len(found) == 1
    assert len(problems) == 2
    assert all("in the future" in line for line in problems)


def test_with_a_key_only_authentic_records_count(tmp_path: Path) -> None:
    bucket = FileBucket(tmp_path)
    signed = add_backup(bucket, NOW - timedelta(hours=2), verified=True, key=KEY)
    unsigned = add_backup(bucket, NOW - timedelta(hours=1), verified=True)
    other_key = add_backup(bucket, NOW - timedelta(minutes=30), verified=True, key=bytes(32))
    found, problems = scan(bucket, key=KEY)
    assert [(e.manifest.backup_id, e.state) for e in found] == [(signed, "verified")]
    assert len(problems) == 2, problems
    assert any(unsigned in line and "not encrypted" in line for line in problems)
    assert any(other_key in line and "written with backup key" in line for line in problems)
    # A reader without the key proves less, but still lists what is well formed.
    assert len(entries(bucket, key=None)) == 3


def test_with_a_key_a_changed_field_fails_authentication(tmp_path: Path) -> None:
    bucket = FileBucket(tmp_path)
    backup_id = add_backup(bucket, NOW - timedelta(hours=1), verified=True, key=KEY)
    _rewrite(tmp_path, backup_id, row_counts={"public.orders": 1})
    found, (line,) = scan(bucket, key=KEY)
    assert found == []
    assert "fails authentication" in line
    assert f"postgres/users/{backup_id}/manifest.json" in line


def test_with_a_key_a_forged_record_is_ignored(tmp_path: Path) -> None:
    bucket = FileBucket(tmp_path)
    backup_id = add_backup(bucket, NOW - timedelta(hours=1), verified=True, key=KEY)
    (record,) = (tmp_path / "postgres" / "users" / backup_id).glob("verification-*.json")
    document = json.loads(record.read_bytes())
    later = NOW - timedelta(minutes=1)
    document.update(ok=False, checked_at=later.isoformat())
    (record.parent / f"verification-{new_id(later)}.json").write_text(json.dumps(document))
    (entry,), (line,) = scan(bucket, key=KEY)
    assert entry.state == "unverified"  # the newest record proves nothing either way
    assert "fails authentication" in line
