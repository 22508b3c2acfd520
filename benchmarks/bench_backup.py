"""Backup, verify and restore of a large database, next to the plain tools doing the same work.

Run: .venv/bin/python -m benchmarks.bench_backup [--gib 1.05]

Starts its own PostgreSQL 15 from the rendered dev stack, converges the roles, fills the
``events`` database (``--gib``, default a little over 1 GiB), then compares in one run:

  ours  ``backup``  (snapshot + row counts + pg_dump -Fc streamed, hashed, stored, manifest)
        against ``pg_dump -Fc | sha256sum``
  ours  ``verify``  (checksum, pg_restore -j 2 into a scratch db as the tool login, row counts,
        drop) against ``pg_restore -j 2`` of the same dump into an empty database, and again
        against the plain tools doing verify's steps (``sha256sum``, that ``pg_restore``,
        ``count(*)`` of each table with ``psql``, the drop): the first ratio is the price of
        verifying at all, the second our tooling's own overhead
  ours  ``restore`` (checksum, pg_restore -j 2 into a copy, row counts, swap, converge: the
        service is back) against the same ``pg_restore -j 2``

and reports, apart, the step that follows a restore off its critical path: the dump,
verification and drop of the database it replaced.

Honest by construction: the bulk load is followed by VACUUM ANALYZE and a CHECKPOINT (no
pg_restore runs right after it); every timed step starts after a CHECKPOINT; each pair runs
twice, once ours first and once the plain tool first, and the ratio is of the summed times.
The table goes into benchmarks/README.md (``benchmarks.report``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from benchmarks.report import table, write_section
from infra import secrets_file
from infra.backup import pg
from infra.backup import restore as restore_module
from infra.backup import verify as verify_module
from infra.backup.catalog import Entry, entries
from infra.backup.dump import Target, backup_postgres
from infra.backup.restore import restore
from infra.backup.safety import secure_replaced
from infra.backup.storage import FileBucket
from infra.backup.verify import verify
from infra.config import load_stack
from infra.postgres import apply
from tests.conftest import render_to
from tests.integration.backup_helpers import login_url, seed
from tests.servers.postgres import PostgresServer

SERVICE = "events"
ROW_BYTES = 330  # approximate on-disk size of one generated row
ROUNDS = 2  # each pair: once ours first, once the plain tool first (--rounds: more of them)

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


class Bench:
    """One server and the timing discipline: a CHECKPOINT before each timed step."""

    def __init__(self, server: PostgresServer, rounds: int) -> None:
        self.server = server
        self.rounds = rounds

    def timed(self, label: str, action: Callable[[], object]) -> float:
        self.server.superuser_psql("CHECKPOINT")
        PHASES.clear()
        started = time.monotonic()
        action()
        seconds = time.monotonic() - started
        parts = ", ".join(f"{k} {v:.1f}" for k, v in PHASES.items())
        print(f"{label:<40} {seconds:7.1f} s  {parts}", flush=True)
        return seconds

    def pair(
        self,
        ours: tuple[str, Callable[[], object]],
        plain: tuple[str, Callable[[], object]],
        between: Callable[[], object] = lambda: None,
    ) -> tuple[list[float], list[float]]:
        """Both, ``rounds`` times, alternating which goes first; ``between`` cleans up untimed."""
        times: dict[str, list[float]] = {"ours": [], "plain": []}
        for round_ in range(self.rounds):
            order = [("ours", ours), ("plain", plain)]
            for who, (label, action) in order if round_ % 2 == 0 else order[::-1]:
                times[who].append(self.timed(label, action))
                between()
        return times["ours"], times["plain"]


def shell(command: str, env: dict[str, str]) -> None:
    subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], env=env, check=True, stdout=subprocess.DEVNULL
    )


def fill(server: PostgresServer, credentials: Any, gib: float) -> None:
    """The dataset, then VACUUM ANALYZE and a CHECKPOINT: nothing timed follows a bulk load."""
    rows = int(gib * 1024**3 / ROW_BYTES)
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
    server.superuser_psql("VACUUM ANALYZE", SERVICE)
    server.superuser_psql("CHECKPOINT")
    size = int(server.superuser_psql(f"SELECT pg_database_size('{SERVICE}')"))
    print(
        f"dataset: {size / 1024**3:.2f} GiB in {SERVICE} ({rows} rows), "
        f"generated in {time.monotonic() - started:.0f} s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.05, help="dataset size in GiB")
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help="runs of each pair (even: alternating order)"
    )
    parser.add_argument(
        "--no-readme", action="store_true", help="print the table, leave the README alone"
    )
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
    began = time.monotonic()
    try:
        apply(server.admin_url, config, credentials)
        fill(server, credentials, args.gib)
        bench = Bench(server, args.rounds)
        target = Target(FileBucket(work / "bucket"), None)
        admin = server.admin_url
        dump_file = work / "plain.dump"
        pg_dump = pg.binary("pg_dump")

        backup_times = bench.pair(
            ("ours: backup", lambda: backup_postgres(target, admin, SERVICE, "custom")),
            (
                "plain: pg_dump -Fc | sha256sum",
                lambda: shell(f"{pg_dump} -Fc | sha256sum", pg.libpq_environment(admin, SERVICE)),
            ),
        )
        shell(f"{pg_dump} -Fc > {dump_file}", pg.libpq_environment(admin, SERVICE))
        entry = entries(target.bucket, "postgres", SERVICE, key=None)[-1]
        print(f"backup object: {entry.manifest.size / 1024**2:.0f} MiB", flush=True)

        for name in ("pg_restore", "check_restored"):
            phase(verify_module, name)
        for module in (verify_module, restore_module):
            phase(module, "fetch")
        phase(restore_module, "converge")
        phase(restore_module, "_swap")
        phase(pg, "drop_database")

        def plain_restore() -> None:
            pg.create_database(admin, "plain_restore", SERVICE)
            shell(
                f"{pg.binary('pg_restore')} -j 2 --no-owner --no-privileges "
                f"-d plain_restore {dump_file}",
                pg.libpq_environment(admin, "plain_restore"),
            )

        def drop_plain() -> None:
            pg.drop_database(admin, "plain_restore", SERVICE)

        plain = ("plain: pg_restore -j 2", plain_restore)
        verify_times = bench.pair(
            ("ours: verify", lambda: verify(target.bucket, entry, admin, None)), plain, drop_plain
        )
        tables = sorted(entry.manifest.row_counts)

        def plain_verify() -> None:
            """verify's steps with the plain tools: checksum, restore, count, drop."""
            shell(f"sha256sum {dump_file} > /dev/null", dict(os.environ))
            plain_restore()
            argv = [pg.binary("psql"), "-X", "-q", "-d", "plain_restore"]
            for table in tables:
                count = sql.SQL("SELECT count(*) FROM {}").format(
                    sql.Identifier(*table.split(".", 1))
                )
                argv += ["-c", count.as_string(None)]
            env = pg.libpq_environment(admin, "plain_restore")
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
            drop_plain()

        same_steps = bench.pair(
            ("ours: verify", lambda: verify(target.bucket, entry, admin, None)),
            ("plain: verify's steps", plain_verify),
        )
        secure_times: list[float] = []

        def after_restore() -> None:
            drop_plain()
            if pg.database_names(admin, f"{SERVICE}__old_"):
                secure_times.append(
                    bench.timed(
                        "ours: secure the replaced db (off path)",
                        lambda: secure_replaced(target, admin, SERVICE, "custom"),
                    )
                )

        restore_times = bench.pair(
            (
                "ours: restore",
                lambda: restore(target, verified(target), admin, config, credentials),
            ),
            plain,
            after_restore,
        )
        report(
            args,
            {"backup": backup_times, "verify": verify_times, "verify_steps": same_steps},
            restore_times,
            secure_times,
            time.monotonic() - began,
        )
    finally:
        server.cleanup()
        subprocess.run(["rm", "-rf", str(work)], check=False)


def verified(target: Target) -> Entry:
    """The newest verified backup that is not a safety one (what ``restore`` would pick)."""
    return next(
        e
        for e in entries(target.bucket, "postgres", SERVICE, key=None)
        if e.state == "verified" and not e.is_safety
    )


def report(
    args: argparse.Namespace,
    pairs: dict[str, tuple[list[float], list[float]]],
    restore_: tuple[list[float], list[float]],
    secure: list[float],
    seconds: float,
) -> None:
    """Print the ratios and write the table into benchmarks/README.md."""

    def runs(times: list[float]) -> str:
        return " / ".join(f"{t:.1f}" for t in times)

    rows = []
    for label, plain_tool, (ours, plain) in (
        ("backup", "`pg_dump -Fc \\| sha256sum`", pairs["backup"]),
        ("verify", "`pg_restore -j 2` into an empty db", pairs["verify"]),
        (
            "verify, against the same steps",
            "`sha256sum`, `pg_restore -j 2` into an empty db, `count(*)` per table, `dropdb`",
            pairs["verify_steps"],
        ),
        ("restore (until the service is back)", "`pg_restore -j 2` into an empty db", restore_),
    ):
        ratio = sum(ours) / sum(plain)
        rows.append([label, runs(ours), runs(plain), plain_tool, f"{ratio:.2f}"])
        print(f"  {label:<38} ours/plain {ratio:.2f}", flush=True)
    rows.append(
        [
            "after a restore, off its critical path: dump, verify, drop the replaced db",
            runs(secure),
            "",
            "",
            "",
        ]
    )
    markdown = (
        f"Dataset: `--gib {args.gib}`; each pair run {args.rounds} times in alternating order, "
        "a CHECKPOINT before each step; ratio = sum(ours) / sum(plain). "
        f"Whole run: {seconds:.0f} s.\n\n"
        + table(["step", "ours (s)", "plain (s)", "plain tool", "ratio"], rows)
    )
    print(markdown)
    if not args.no_readme:
        write_section("backup", markdown)


if __name__ == "__main__":
    main()
