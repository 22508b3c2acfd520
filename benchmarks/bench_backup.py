"""``backup``, ``verify``, ``restore`` and ``dr-drill`` timed as a user runs them, next to the
plain PostgreSQL tools doing the same work.

Run: .venv/bin/python -m benchmarks.bench_backup [--gib 0.4] [--rounds 2]

Starts its own PostgreSQL 15 from the rendered dev stack (``Pulumi.dev.yaml``: five services),
converges it with ``python -m infra db apply``, fills the ``events`` database (``--gib``,
default 0.4 GiB, about 1.3 M rows; the other services hold no tables), then compares, each command
being ``python -m infra ...`` in a fresh process, start to exit, with the dev stack's backup key
(sealed backups, as ``make`` sets up):

  ``backup`` (every service)     against ``pg_dump -Fc | tee FILE | sha256sum`` per database
  ``verify`` (every service)     against ``createdb``, ``pg_restore -j 2``, ``dropdb`` per dump
  ``restore --service events``   against ``createdb`` and ``pg_restore -j 2`` of the same dump:
                                 twice, "service back" (the moment the command prints that it
                                 restored the service) and "done" (the command's exit); and
                                 against the floor under it (``benchmarks.restore_floor``: the
                                 least a Python tool does to restore and count the rows), the
                                 three in rotating order
  ``dr-drill`` (every service,   against ``createdb`` and ``pg_restore -j 2`` of every dump on
  onto a fresh server)           another fresh server; the drill's own recovery time per
                                 service (RTO) is reported from its JSON

and, apart, the ``backup --service events`` that follows a restore: it first secures the
database the restore replaced (dump, verify, drop) and then backs up, which is the price the
restore no longer makes its user wait for.

Honest by construction: the bulk load is followed by VACUUM ANALYZE and a CHECKPOINT, and so
is each restore of ours that stays (the plain tool's copy is dropped), so no later step is timed
beside the autovacuum a fresh table draws; every timed step starts after a CHECKPOINT; each
pair runs ``--rounds`` times, alternating which goes first; the ratio is of the summed times.
The table goes into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from benchmarks import command
from benchmarks.report import table, write_section
from infra import atomic_file, naming, secrets_file
from infra.backup import pg
from infra.config import StackConfig, load_stack
from infra.credentials import Credentials
from tests.conftest import render_to
from tests.integration.backup_helpers import login_url, seed
from tests.servers.postgres import PostgresServer

SERVICE = "events"
ROW_BYTES = 330  # approximate on-disk size of one generated row
ROUNDS = 2  # each pair: once ours first, once the plain tool first (--rounds: more of them)
SERVER_SETTINGS = {"max_wal_size": "4GB", "checkpoint_timeout": "30min"}


def shell(command_line: str, env: dict[str, str]) -> None:
    subprocess.run(
        ["bash", "-o", "pipefail", "-c", command_line],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


@dataclass
class Bench:
    """The dev stack on one server, its files, and the timing discipline."""

    work: Path
    config: StackConfig
    credentials: Credentials
    server: PostgresServer
    rounds: int

    @property
    def secrets(self) -> Path:
        return self.work / "dev.secrets.json"

    @property
    def bucket(self) -> str:
        return f"file://{self.work / 'bucket'}"

    def admin_url(self, server: PostgresServer | None = None) -> str:
        """The admin's URL without its password (the command reads it from the secrets file)."""
        port = (server or self.server).port
        return f"postgresql://{self.config.postgres.admin_user}@127.0.0.1:{port}/postgres"

    def env(self) -> dict[str, str]:
        return command.clean_environment(
            {"PERSISTENCE_BACKUP_KEY_FILE": str(self.work / "backup-key")}
        )

    def ours(self, *args: str, server: PostgresServer | None = None) -> command.Run:
        """``python -m infra ARGS --stack dev`` against the bench's server and bucket."""
        argv = [*args, "--stack", "dev", "--secrets", str(self.secrets)]
        argv += ["--bucket", self.bucket, "--admin-url", self.admin_url(server)]
        return command.run(argv, self.env())

    def plain_env(self, database: str, server: PostgresServer | None = None) -> dict[str, str]:
        return pg.libpq_environment((server or self.server).admin_url, database)

    def timed(self, label: str, action: Callable[[], object]) -> float:
        self.server.superuser_psql("CHECKPOINT")
        started = time.perf_counter()
        action()
        seconds = time.perf_counter() - started
        print(f"{label:<44} {seconds:7.1f} s", flush=True)
        return seconds

    def pair(
        self,
        ours: tuple[str, Callable[[], object]],
        plain: tuple[str, Callable[[], object]],
        between: Callable[[str], object] = lambda who: None,
    ) -> tuple[list[float], list[float]]:
        """Both, ``rounds`` times, alternating which goes first; ``between(who)`` cleans up
        after each, untimed."""
        times = self.rotate({"ours": ours, "plain": plain}, between)
        return times["ours"], times["plain"]

    def rotate(
        self,
        contenders: dict[str, tuple[str, Callable[[], object]]],
        between: Callable[[str], object] = lambda who: None,
    ) -> dict[str, list[float]]:
        """Each contender ``rounds`` times in ``rotation``'s order; ``between(who)`` after each,
        untimed."""
        times: dict[str, list[float]] = {who: [] for who in contenders}
        for round_ in range(self.rounds):
            for who in rotation(list(contenders), round_):
                label, action = contenders[who]
                times[who].append(self.timed(label, action))
                between(who)
        return times


def rotation(names: list[str], round_: int) -> list[str]:
    """Round ``round_``'s order: from its place in ``names`` on, wrapping round, so over
    ``len(names)`` rounds each name takes every place once (two names alternate)."""
    start = round_ % len(names)
    return names[start:] + names[:start]


def fill(bench: Bench, gib: float) -> None:
    """The dataset, then VACUUM ANALYZE and a CHECKPOINT: nothing timed follows a bulk load."""
    server, credentials = bench.server, bench.credentials
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


def start(work: Path, rounds: int) -> Bench:
    config = load_stack("dev")
    credentials = secrets_file.load_or_create(work / "dev.secrets.json", config)
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    atomic_file.write_text(work / "backup-key", key + "\n", 0o600)
    rendered = render_to(work / "rendered", config, credentials)
    server = PostgresServer(
        rendered, config.postgres.admin_user, credentials.postgres_admin, settings=SERVER_SETTINGS
    ).initialise()
    bench = Bench(work, config, credentials, server, rounds)
    argv = ["db", "apply", "--stack", "dev", "--secrets", str(bench.secrets)]
    command.run([*argv, "--admin-url", bench.admin_url()], bench.env())
    return bench


def plain_restore(
    bench: Bench, dump: Path, database: str, server: PostgresServer | None = None
) -> None:
    """``createdb`` and ``pg_restore -j 2`` of ``dump`` into it, as the admin."""
    env = bench.plain_env("postgres", server)
    subprocess.run([pg.binary("createdb"), database], env=env, check=True)
    shell(
        f"{pg.binary('pg_restore')} -j 2 --no-owner --no-privileges -d {database} {dump}",
        bench.plain_env(database, server),
    )


def dropdb(bench: Bench, database: str, server: PostgresServer | None = None) -> None:
    env = bench.plain_env("postgres", server)
    subprocess.run([pg.binary("dropdb"), "--if-exists", database], env=env, check=True)


@dataclass
class Results:
    pairs: dict[str, tuple[list[float], list[float]]]
    restore_back: list[float]
    restore_floor: list[float]
    secure_next_backup: list[float]
    drill_rto: dict[str, list[float]]
    seconds: float


def run(bench: Bench) -> Results:
    services = [spec.name for spec in bench.config.services]
    dumps = bench.work / "plain"
    dumps.mkdir()
    pg_dump = pg.binary("pg_dump")

    def plain_backup() -> None:
        for name in services:
            target = dumps / f"{name}.dump"
            shell(f"{pg_dump} -Fc | tee {target} | sha256sum", bench.plain_env(name))

    backup = bench.pair(
        ("ours: backup", lambda: bench.ours("backup")), ("plain: pg_dump", plain_backup)
    )

    def plain_verify() -> None:
        for name in services:
            plain_restore(bench, dumps / f"{name}.dump", "plain_verify")
            dropdb(bench, "plain_verify")

    # `verify` takes every unverified backup: leave exactly one per service before each run.
    bench.ours("verify")
    bench.ours("backup")

    def next_unverified(who: str) -> None:
        if who == "ours":
            bench.ours("backup")

    verify = bench.pair(
        ("ours: verify", lambda: bench.ours("verify")),
        ("plain: restore, drop", plain_verify),
        next_unverified,
    )

    back: list[float] = []
    secure: list[float] = []

    def ours_restore() -> None:
        run = bench.ours("restore", "--service", SERVICE)
        back.append(run.first_line_with(f"restored {SERVICE} from"))

    def after_restore(who: str) -> None:
        if who != "ours":
            dropdb(bench, f"{who}_restore")
            return
        # Ours stays: it is the service's database now. Its fresh 0.4 GiB table draws an
        # autovacuum worker about a minute later, which (throttled) would run for many seconds
        # beside whichever step is timed then, ours or the plain tool's: that maintenance runs
        # here instead, untimed, as after the bulk load.
        bench.server.superuser_psql("VACUUM ANALYZE", SERVICE)
        if pg.database_names(bench.server.admin_url, naming.database_name(SERVICE) + "__old_"):
            secure.append(
                bench.timed(
                    "ours: the next backup (secures the replaced db)",
                    lambda: bench.ours("backup", "--service", SERVICE),
                )
            )

    def floor_restore() -> None:
        argv = [pg.binary("pg_restore"), str(dumps / f"{SERVICE}.dump"), "floor_restore"]
        subprocess.run(
            [sys.executable, "-m", "benchmarks.restore_floor", *argv],
            cwd=command.REPO,
            env=bench.plain_env("postgres"),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    restores = bench.rotate(
        {
            "ours": ("ours: restore", ours_restore),
            "plain": (
                "plain: pg_restore -j 2",
                lambda: plain_restore(bench, dumps / f"{SERVICE}.dump", "plain_restore"),
            ),
            "floor": ("floor: python, psycopg, pg_restore -j 2", floor_restore),
        },
        after_restore,
    )

    rto: dict[str, list[float]] = {}
    scratch: list[PostgresServer] = []

    def fresh() -> PostgresServer:
        rendered = bench.work / "rendered"
        admin, password = bench.config.postgres.admin_user, bench.credentials.postgres_admin
        server = PostgresServer(rendered, admin, password, settings=SERVER_SETTINGS).initialise()
        scratch.append(server)
        return server

    def ours_drill() -> None:
        run = bench.ours("dr-drill", server=scratch[-1])
        report = json.loads(run.stdout[run.stdout.index("{") :])
        for name, item in report["services"].items():
            rto.setdefault(name, []).append(float(item["recovery_time_s"]))

    def plain_drill() -> None:
        for name in services:
            plain_restore(bench, dumps / f"{name}.dump", name, server=scratch[-1])

    def next_server(who: str) -> None:
        scratch.pop().cleanup()
        fresh()

    fresh()
    try:
        drill = bench.pair(
            ("ours: dr-drill", ours_drill), ("plain: restore every dump", plain_drill), next_server
        )
    finally:
        for server in scratch:
            server.cleanup()
    pairs = {
        "backup": backup,
        "verify": verify,
        "restore": (restores["ours"], restores["plain"]),
        "drill": drill,
    }
    return Results(pairs, back, restores["floor"], secure, rto, 0.0)


def report(args: argparse.Namespace, results: Results) -> str:
    """The table, with the ratios of summed times."""

    def runs(times: list[float]) -> str:
        return " / ".join(f"{t:.1f}" for t in times)

    def ratio(ours: list[float], plain: list[float]) -> str:
        return f"{sum(ours) / sum(plain):.2f}"

    pairs = results.pairs
    restore_ours, restore_plain = pairs["restore"]
    rows = [
        ["`backup`, every service", runs(pairs["backup"][0]), runs(pairs["backup"][1]),
         "`pg_dump -Fc \\| tee FILE \\| sha256sum` per database", ratio(*pairs["backup"])],
        ["`verify`, every service", runs(pairs["verify"][0]), runs(pairs["verify"][1]),
         "`createdb`, `pg_restore -j 2`, `dropdb` per dump", ratio(*pairs["verify"])],
        [f"`restore --service {SERVICE}`: service back", runs(results.restore_back),
         runs(restore_plain), "`createdb`, `pg_restore -j 2`",
         ratio(results.restore_back, restore_plain)],
        [f"`restore --service {SERVICE}`: command done", runs(restore_ours), runs(restore_plain),
         "`createdb`, `pg_restore -j 2`", ratio(restore_ours, restore_plain)],
        ["restore floor: Python, psycopg, `CREATE DATABASE`, `pg_restore -j 2`, count, rename",
         runs(results.restore_floor), runs(restore_plain), "`createdb`, `pg_restore -j 2`",
         ratio(results.restore_floor, restore_plain)],
        [f"`restore --service {SERVICE}`: service back, against the floor",
         runs(results.restore_back), runs(results.restore_floor), "the restore floor",
         ratio(results.restore_back, results.restore_floor)],
        ["`dr-drill` onto a fresh server, every service", runs(pairs["drill"][0]),
         runs(pairs["drill"][1]), "`createdb`, `pg_restore -j 2` per dump",
         ratio(*pairs["drill"])],
        [f"after a restore: the next `backup --service {SERVICE}` (secures the replaced db)",
         runs(results.secure_next_backup), "", "", ""],
    ]  # fmt: skip
    rto = ", ".join(f"{name} {runs(times)}" for name, times in sorted(results.drill_rto.items()))
    return (
        f"Dataset: `--gib {args.gib}` in `{SERVICE}`, the dev stack's five services; each pair run "
        f"{args.rounds} times in alternating order (the restore's three in rotating order), a "
        "CHECKPOINT before each step; every `ours` is "
        "the command `python -m infra ...`, start to exit (sealed backups); ratio = sum(ours) / "
        f"sum(plain). Whole run: {results.seconds:.0f} s.\n\n"
        + table(["step", "ours (s)", "plain (s)", "plain tool", "ratio"], rows)
        + "\n\n`dr-drill` recovery time (RTO) per service, seconds from the command's start: "
        + f"{rto}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--gib", type=float, default=0.4, help="dataset size in GiB (0.4: about 1.3 M rows)"
    )
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help="runs of each pair (even: alternating order)"
    )
    parser.add_argument(
        "--no-readme", action="store_true", help="print the table, leave the README alone"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    os.chmod(work, 0o700)
    began = time.monotonic()
    bench = start(work, args.rounds)
    try:
        fill(bench, args.gib)
        results = run(bench)
        results.seconds = time.monotonic() - began
    finally:
        bench.server.cleanup()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    markdown = report(args, results)
    print(markdown)
    if not args.no_readme:
        write_section("backup", markdown)


if __name__ == "__main__":
    main()
