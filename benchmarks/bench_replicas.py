"""Read replicas: replay lag under a write load, and reads on the replicas against the primary.

A PostgreSQL 15 primary from the rendered dev files with two hot standbys seeded as the dev
containers seed theirs (``tests/servers/replica.py``), the dev stack's own PgBouncer image in
front with the rendered pgbouncer.ini (as ``tests/servers/pgbouncer.py`` runs it), one service
(``bench``) provisioned by the tool, ``pgbench -i`` through its migration login. Every client
logs in with SCRAM, its password in PGPASSWORD:

* **replay lag under a write load**: ``pgbench`` (TPC-B-like) through ``DATABASE_URL``'s road
  (the pooler, the app login) at ``--rate`` transactions per second, while the primary's
  ``pg_stat_replication`` is sampled every 100 ms; and a probe that writes one row through the
  pooler and times how long until the read-only road (the pooler's ``bench__replicas``, the
  read-only login) sees it, as a service reading its own write through READONLY_DATABASE_URL
  would.
* **synchronous commits** (``postgres.synchronous``): the same TPC-B-like pgbench, unthrottled,
  with the rendered ``replication.conf`` reloaded into the primary for each side: commits that
  wait for a replica's flush against commits that do not, in a palindrome, best of two each.
* **``db lag``, the command**: ``python -m infra db lag`` (a fresh process, start to exit, as
  ``make lag`` runs it) against ``psql -c`` of the same query as the admin, alternating, ten
  runs each; ratio of the summed times.
* **select-only reads** (``pgbench -S``, the read-only login through the pooler): on the
  replicas (``bench__replicas``, what READONLY_DATABASE_URL reaches with ``postgres.replicas:
  2``) against the primary alone (``bench``, what it reaches with none), alternating in a
  palindrome, best of two each. Every server of this benchmark shares one machine's cores, so
  the ratio says what spreading costs or gains here, not what replicas on their own machines
  (prod) gain.

Prints the table and writes it into benchmarks/README.md (section "replicas").
Run: python -m benchmarks.bench_replicas [--seconds 10] [--clients 8] [--rate 500]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg

from benchmarks import command
from benchmarks.bench_pooler import TPS
from benchmarks.report import table, write_section
from infra import naming
from infra.commands.lag import LAG_QUERY
from infra.config import StackConfig, load_stack
from infra.config.model import ConnectionLimits, ServiceSpec
from infra.credentials import Credentials
from infra.postgres import apply
from infra.postgres.driver import rows
from infra.render import postgres as pg_files
from tests.conftest import render_to
from tests.e2e.dockerd import ensure_docker
from tests.servers.pgbouncer import PgbouncerServer
from tests.servers.postgres import PostgresServer, pg_binary
from tests.servers.replica import ReplicaServer, shared_port

SERVICE = "bench"
REPLICAS = 2


@dataclass
class Servers:
    postgres: PostgresServer
    replicas: list[ReplicaServer]
    pooler: PgbouncerServer
    credentials: Credentials

    def url(self, kind: str, database: str) -> tuple[str, str]:
        """A password-less URL of login ``kind`` through the pooler, and its password."""
        user = naming.role_name(SERVICE, kind)
        password = self.credentials.for_service(SERVICE).postgres_password(kind)
        return f"postgresql://{user}@127.0.0.1:{self.pooler.port}/{database}", password

    def with_password(self, kind: str, database: str) -> str:
        url, password = self.url(kind, database)
        return url.replace("@", f":{password}@", 1)

    def cleanup(self) -> None:
        self.pooler.cleanup()
        for server in self.replicas:
            server.cleanup()
        self.postgres.cleanup()


def stack() -> StackConfig:
    dev = load_stack("dev")
    limits = ConnectionLimits(app=20, migrator=3, readonly=20)
    return replace(
        dev,
        services=(ServiceSpec(name=SERVICE, connection_limits=limits),),
        postgres=replace(dev.postgres, replicas=REPLICAS),
    )


def start(config: StackConfig, root: Path) -> Servers:
    credentials = Credentials.generate().completed_for(config)
    rendered = render_to(root / "out", config, credentials)
    postgres = PostgresServer(rendered, config.postgres.admin_user, credentials.postgres_admin)
    postgres.initialise()
    port = shared_port(REPLICAS)
    replicas = [
        ReplicaServer(postgres, index, credentials.postgres_replication, port)
        for index in range(1, REPLICAS + 1)
    ]
    pooler = PgbouncerServer(
        postgres,
        root / "pgbouncer",
        replica_hosts=tuple(r.host for r in replicas),
        replica_port=port,
    )
    servers = Servers(postgres, replicas, pooler, credentials)
    try:
        apply(postgres.admin_url, config, credentials)
        database = naming.database_name(SERVICE)
        user = naming.role_name(SERVICE, "migrator")
        password = credentials.for_service(SERVICE).migrator
        direct = f"postgresql://{user}@127.0.0.1:{postgres.port}/{database}"
        subprocess.run(
            [pg_binary("pgbench"), "-i", "-s", "10", "-q", direct],
            env={**os.environ, "PGPASSWORD": password}, capture_output=True, check=True,
        )  # fmt: skip
        for server in replicas:
            server.seed().start()
        pooler.write(config, credentials)
        pooler.start()
    except BaseException:
        servers.cleanup()
        raise
    return servers


def pgbench(servers: Servers, kind: str, database: str, args: list[str]) -> float:
    url, password = servers.url(kind, database)
    done = subprocess.run(
        [pg_binary("pgbench"), "-n", *args, url],
        env={**os.environ, "PGPASSWORD": password}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    found = TPS.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"pgbench {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return float(found.group(1))


@dataclass
class LagRun:
    write_tps: float
    lag_seconds: list[float]  # every sample of every replica
    lag_bytes: list[int]
    visible_after: list[float]  # write-then-read delays, seconds


def lag_under_writes(servers: Servers, seconds: int, rate: int) -> LagRun:
    """pgbench writes at ``rate`` tps; meanwhile the primary's view of each replica is sampled,
    and a probe times how long a row written through the pooler takes to be readable on the
    replicas."""
    database = naming.database_name(SERVICE)
    stop = threading.Event()
    lags: list[float] = []
    lag_bytes: list[int] = []
    visible: list[float] = []

    def sample() -> None:
        with psycopg.connect(servers.postgres.admin_url, autocommit=True) as conn:
            while not stop.is_set():
                for row in rows(conn, LAG_QUERY):
                    lags.append(float(row["replay_seconds"] or 0.0))
                    lag_bytes.append(int(row["replay_bytes"] or 0))
                time.sleep(0.1)

    def probe() -> None:
        writer_url = servers.with_password("app", database)
        reader_url = servers.with_password("readonly", naming.replicas_alias(SERVICE))
        with (
            psycopg.connect(writer_url, autocommit=True) as writer,
            psycopg.connect(reader_url, autocommit=True) as reader,
        ):
            beat = 0
            while not stop.is_set():
                beat += 1
                writer.execute(
                    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime, filler)"
                    " VALUES (-1, -1, %s, 0, now(), 'probe')",
                    (beat,),
                )
                written = time.monotonic()
                query = "SELECT 1 FROM pgbench_history WHERE tid = -1 AND aid = %s"
                while reader.execute(query, (beat,)).fetchone() is None:
                    time.sleep(0.001)
                visible.append(time.monotonic() - written)
                time.sleep(0.05)

    threads = [threading.Thread(target=sample), threading.Thread(target=probe)]
    for thread in threads:
        thread.start()
    try:
        tps = pgbench(
            servers, "app", database, ["-c", "4", "-j", "2", "-T", str(seconds), "-R", str(rate)]
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return LagRun(tps, lags, lag_bytes, visible)


def writes(servers: Servers, config: StackConfig, seconds: int) -> tuple[float, float]:
    """TPC-B-like through the pooler, asynchronous then synchronous (the rendered file, reloaded
    as the live configuration does), in a palindrome; the best of each."""
    synchronous = replace(config, postgres=replace(config.postgres, synchronous=True))
    conf = servers.postgres.conf / pg_files.REPLICATION_CONFIG_NAME
    args = ["-c", "4", "-j", "2", "-T", str(seconds)]
    runs: dict[bool, list[float]] = {False: [], True: []}
    try:
        for waits in (False, True, True, False):
            conf.write_text(pg_files.replication_conf(synchronous if waits else config))
            servers.postgres.superuser_psql("SELECT pg_reload_conf()")
            time.sleep(0.5)
            runs[waits].append(pgbench(servers, "app", naming.database_name(SERVICE), args))
    finally:
        conf.write_text(pg_files.replication_conf(config))
        servers.postgres.superuser_psql("SELECT pg_reload_conf()")
    return max(runs[False]), max(runs[True])


def reads(servers: Servers, clients: int, seconds: int) -> tuple[float, float]:
    """select-only through the pooler: the primary alone, then the replicas, in a palindrome;
    the best of each."""
    args = ["-S", "-c", str(clients), "-j", "2", "-T", str(seconds)]
    runs: dict[str, list[float]] = {"primary": [], "replicas": []}
    databases = {
        "primary": naming.database_name(SERVICE),
        "replicas": naming.replicas_alias(SERVICE),
    }
    for where in ("primary", "replicas", "replicas", "primary"):
        runs[where].append(pgbench(servers, "readonly", databases[where], args))
    return max(runs["primary"]), max(runs["replicas"])


def lag_command(servers: Servers, root: Path, runs: int = 10) -> tuple[float, float]:
    """``python -m infra db lag`` against ``psql -c`` of its query, alternating; summed times."""
    stack_file = command.write_stack_file(
        root / "Pulumi.bench.yaml",
        {"platform": "docker", "services": [{"name": SERVICE}], "postgres": {"replicas": REPLICAS}},
    )
    # The URL without its password; each side gets it from its environment, never argv.
    postgres = servers.postgres
    admin = f"postgresql://{postgres.admin_user}@{postgres.host}:{postgres.port}/postgres"
    password = postgres.admin_password
    env = command.clean_environment({"PERSISTENCE_ADMIN_PASSWORD": password})
    ours_argv = ["db", "lag", "--stack", str(stack_file), "--admin-url", admin]
    psql = [pg_binary("psql"), "-X", "-A", "-t", "-c", LAG_QUERY, admin]
    psql_env = {**os.environ, "PGPASSWORD": password}
    totals = {"ours": 0.0, "plain": 0.0}
    for round_ in range(2 * runs):
        who = "ours" if round_ % 2 == 0 else "plain"
        started = time.perf_counter()
        if who == "ours":
            command.run(ours_argv, env)
        else:
            subprocess.run(psql, env=psql_env, capture_output=True, check=True)
        totals[who] += time.perf_counter() - started
    return totals["ours"], totals["plain"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_replicas")
    parser.add_argument("--seconds", type=int, default=10, help="each pgbench run (default 10)")
    parser.add_argument("--clients", type=int, default=8, help="select-only clients (default 8)")
    parser.add_argument("--rate", type=int, default=500, help="write tps (default 500)")
    args = parser.parse_args()
    config = stack()
    with ensure_docker(), tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        servers = start(config, Path(tmp))
        try:
            lag = lag_under_writes(servers, args.seconds, args.rate)
            asynchronous, synchronous = writes(servers, config, args.seconds)
            primary, replicas = reads(servers, args.clients, args.seconds)
            ours, plain = lag_command(servers, Path(tmp))
        finally:
            servers.cleanup()
    rows = [
        ["writes through the pooler (tps, target)", f"{lag.write_tps:,.0f} ({args.rate})", ""],
        [
            "replay lag, seconds (median / p99 / max of 100 ms samples)",
            f"{statistics.median(lag.lag_seconds or [0]):.4f} / "
            f"{percentile(lag.lag_seconds, 0.99):.4f} / {max(lag.lag_seconds or [0]):.4f}",
            "",
        ],
        [
            "replay lag, bytes (median / max)",
            f"{statistics.median(lag.lag_bytes or [0]):,.0f} / {max(lag.lag_bytes or [0]):,}",
            "",
        ],
        [
            f"a write read back on the replicas, seconds (median / p99 / max of "
            f"{len(lag.visible_after)})",
            f"{statistics.median(lag.visible_after or [0]):.4f} / "
            f"{percentile(lag.visible_after, 0.99):.4f} / {max(lag.visible_after or [0]):.4f}",
            "≤ 1 s",
        ],
        [
            "`db lag`, start to exit (s, 10 runs): ours / `psql -c` of its query",
            f"{ours / 10:.3f} / {plain / 10:.3f}",
            f"{ours / plain:.2f}x",
        ],
        [
            "TPC-B-like writes, 4 clients (tps): asynchronous / synchronous",
            f"{asynchronous:,.0f} / {synchronous:,.0f}",
            f"{synchronous / asynchronous:.2f}x",
        ],
        [
            f"select-only, {args.clients} clients (tps): primary alone / {REPLICAS} replicas",
            f"{primary:,.0f} / {replicas:,.0f}",
            f"{replicas / primary:.2f}x",
        ],
    ]
    markdown = (
        f"One machine ({os.cpu_count()} cores) runs the primary, {REPLICAS} replicas, PgBouncer "
        f"and pgbench: pgbench {args.seconds} s per run, scale 10, SCRAM logins, every client "
        "through the pooler. Writes and select-only: best of two each, palindrome order; ratios = "
        "synchronous / asynchronous, and on the replicas / on the primary alone.\n\n"
        + table(["measure", "value", "ratio or goal"], rows)
    )
    print(markdown)
    write_section("replicas", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
