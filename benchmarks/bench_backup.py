"""Backup and restore of a >= 1 GB database, next to the plain tools on the same data.

Run: .venv/bin/python -m benchmarks.bench_backup [--gib 1.0]

Starts its own PostgreSQL 15 from the rendered dev stack, converges the roles, fills the
``events`` database, then times in one run:
  ours  ``backup``  (snapshot + row counts + pg_dump -Fc streamed, hashed, stored, manifest)
  plain ``pg_dump -Fc | sha256sum``
  ours  ``verify``  (checksum, pg_restore -j 2 into a scratch db, row counts, drop)
  ours  ``restore`` (checksum, safety backup, pg_restore -j 2 as owner, verify, swap, converge)
  plain ``pg_restore -j 2`` into an empty database
and prints each time and the ratios ours/plain.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from infra import secrets_file
from infra.backup import pg
from infra.backup import restore as restore_module
from infra.backup import verify as verify_module
from infra.backup.catalog import entries
from infra.backup.dump import Target, backup_postgres
from infra.backup.restore import restore
from infra.backup.storage import FileBucket
from infra.backup.verify import verify
from infra.config import load_stack
from infra.postgres import apply
from tests.conftest import render_to
from tests.integration.backup_helpers import login_url, seed
from tests.servers.postgres import PostgresServer

SERVICE = "events"
ROW_BYTES = 330  # approximate on-disk size of one generated row


PHASES: dict[str, float] = {}


def phase(module: object, name: str) -> None:
    """Wrap ``module.name`` so its time is added to PHASES (a breakdown of our commands)."""
    original = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return original(*args, **kwargs)
        finally:
            PHASES[name] = PHASES.get(name, 0.0) + time.monotonic() - started

    setattr(module, name, wrapper)


def breakdown() -> None:
    print("    " + ", ".join(f"{k} {v:.1f} s" for k, v in PHASES.items()), flush=True)
    PHASES.clear()


def timed(label: str, action: object) -> float:
    started = time.monotonic()
    assert callable(action)
    action()
    seconds = time.monotonic() - started
    print(f"{label:<44} {seconds:8.1f} s", flush=True)
    return seconds


def shell(command: str, env: dict[str, str]) -> None:
    subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], env=env, check=True, stdout=subprocess.DEVNULL
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.05, help="dataset size in GiB")
    args = parser.parse_args()
    config = load_stack("dev")
    work = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    credentials = secrets_file.load_or_create(work / "dev.secrets.json", config)
    rendered = render_to(work / "rendered", config, credentials)
    server = PostgresServer(
        rendered,
        config.postgres.admin_user,
        credentials.postgres_admin,
        settings={"max_wal_size": "4GB", "checkpoint_timeout": "30min"},
    )
    server.initialise()
    try:
        apply(server.admin_url, config, credentials)
        rows = int(args.gib * 1024**3 / ROW_BYTES)
        started = time.monotonic()
        seed(
            server,
            credentials,
            SERVICE,
            "CREATE TABLE readings (id bigint PRIMARY KEY, at timestamptz, sensor text,"
            " payload text, value double precision);"
            "CREATE TABLE sites (id serial PRIMARY KEY, name text);"
            "INSERT INTO sites (name) SELECT 'site ' || g FROM generate_series(1, 1000) g;",
        )
        with psycopg.connect(
            login_url(server, credentials, SERVICE, "migrator"), autocommit=True
        ) as conn:
            conn.execute(
                "INSERT INTO readings SELECT g, now() - g * interval '1 second',"
                " 'sensor-' || (g %% 5000), md5(random()::text) || repeat(md5(g::text), 7),"
                " random() FROM generate_series(1, %s) g",
                (rows,),
            )
        size = int(server.superuser_psql("SELECT pg_database_size('events')"))
        print(
            f"dataset: {size / 1024**3:.2f} GiB in {SERVICE} ({rows} rows), "
            f"generated in {time.monotonic() - started:.0f} s",
            flush=True,
        )
        assert size >= 1024**3, "dataset under 1 GiB: raise --gib"

        bucket = FileBucket(work / "bucket")
        target = Target(bucket, None)
        admin = server.admin_url
        env = pg.libpq_environment(admin, SERVICE)
        dump_file = work / "plain.dump"

        ours_backup = timed(
            "ours: backup (pg_dump -Fc, hash, store)",
            lambda: backup_postgres(target, admin, SERVICE, "custom"),
        )
        plain_backup = timed(
            "plain: pg_dump -Fc | sha256sum",
            lambda: shell(f"{pg.binary('pg_dump')} -Fc | sha256sum", env),
        )
        shell(f"{pg.binary('pg_dump')} -Fc > {dump_file}", env)
        (entry,) = entries(bucket, "postgres", SERVICE)
        print(f"backup object: {entry.manifest.size / 1024**2:.0f} MiB", flush=True)

        for module in (verify_module, restore_module):
            for name in ("fetch", "pg_restore", "check_restored"):
                phase(module, name)
        phase(restore_module, "backup_postgres")
        phase(restore_module, "converge")
        phase(pg, "drop_database")
        ours_verify = timed(
            "ours: verify (checksum, pg_restore -j 2, counts, drop)",
            lambda: verify(bucket, entry, admin),
        )
        breakdown()
        pg.create_database(admin, "plain_restore")
        plain_env = pg.libpq_environment(admin, "plain_restore")
        plain_restore = timed(
            "plain: pg_restore -j 2",
            lambda: shell(
                f"{pg.binary('pg_restore')} -j 2 --no-owner --no-privileges "
                f"-d plain_restore {dump_file}",
                plain_env,
            ),
        )
        timed(
            "plain: DROP DATABASE after it (not in the ratio)",
            lambda: pg.drop_database(admin, "plain_restore"),
        )
        (entry,) = [e for e in entries(bucket, "postgres", SERVICE) if e.state == "verified"]
        PHASES.clear()
        ours_restore = timed(
            "ours: restore (safety backup, restore, verify, swap)",
            lambda: restore(target, entry, admin, config, credentials, keep_replaced=False),
        )
        breakdown()
        print("ratios (ours / plain, lower is better):")
        print(f"  backup  vs pg_dump | sha256sum : {ours_backup / plain_backup:.2f}")
        print(f"  verify  vs pg_restore -j 2     : {ours_verify / plain_restore:.2f}")
        print(
            f"  restore vs pg_restore -j 2     : {ours_restore / plain_restore:.2f}"
            " (includes a full safety backup and the verification)"
        )
    finally:
        server.cleanup()
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
