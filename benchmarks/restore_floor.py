"""The least a Python tool does to restore a database and prove it: the floor under ``restore``.

Run by ``bench_backup`` as ``python -m benchmarks.restore_floor PG_RESTORE DUMP DATABASE``, with
libpq's ``PG*`` variables naming the server and the admin, and timed from start to exit:

  import psycopg; ``CREATE DATABASE`` a copy; ``pg_restore -j 2`` into it; count every table's
  rows; rename the copy into place as ``DATABASE``.

Nothing else: no manifest, no checksum, no lock, no least-privilege login, no check for a
restore left half done, no convergence of roles and privileges. So what this costs beyond
``createdb`` + ``pg_restore -j 2`` is the price of Python and of the proof (the count), and what
``restore`` costs beyond this is the price of everything it does to be safe.
"""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
from psycopg import sql

from infra.postgres.sqlfiles import blocks  # the very queries restore counts with; psycopg only


def connect(database: str) -> psycopg.Connection:
    return psycopg.connect(dbname=database, autocommit=True)


def restore(pg_restore: str, dump: str, database: str) -> dict[str, int]:
    """Restore ``dump`` as ``database`` (which must not exist); its tables' row counts.
    (``pg_restore`` is the binary's path: ``infra.backup.pg.binary`` would cost its imports.)"""
    copy = f"{database}__floor"
    with connect("postgres") as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(copy)))
    subprocess.run(
        [pg_restore, "-j", "2", "--no-owner", "--no-privileges", "-d", copy, dump],
        env={**os.environ, "PGDATABASE": copy},
        check=True,
    )
    with connect(copy) as conn:
        queries = blocks("backup.sql")
        count_rows = sql.SQL(queries["count_rows"])
        counts = {}
        for schema, table in conn.execute(sql.SQL(queries["tables"])).fetchall():
            row = conn.execute(count_rows.format(table=sql.Identifier(schema, table))).fetchone()
            counts[f"{schema}.{table}"] = int(row[0]) if row else 0
    with connect("postgres") as conn:
        rename = sql.SQL("ALTER DATABASE {} RENAME TO {}")
        conn.execute(rename.format(sql.Identifier(copy), sql.Identifier(database)))
    return counts


def main() -> None:
    pg_restore, dump, database = sys.argv[1:4]
    counts = restore(pg_restore, dump, database)
    print(f"restored {database}: {sum(counts.values())} rows in {len(counts)} tables", flush=True)


if __name__ == "__main__":
    main()
