"""pgbench through the dev pooler against pgbench straight to PostgreSQL, in one run.

A PostgreSQL 15 from the rendered dev files and the dev stack's own PgBouncer image (with the
rendered pgbouncer.ini and auth file, reaching the server through its Unix socket as in the dev
stack, as ``tests/servers/pgbouncer.py`` runs it), one service
(``bench``) provisioned by the tool, ``pgbench -i`` through its migration login. Every pgbench
logs in as the service's app login with SCRAM, both ways (its password in PGPASSWORD, never on
the command line):

* **connection per transaction** (``pgbench -C -S``): what a script, a serverless function or a
  burst of workers does. Direct, every transaction pays a backend start and a SCRAM exchange
  with PostgreSQL; pooled, a SCRAM exchange with PgBouncer on an open server connection.
* **persistent connections, select-only** (``pgbench -S``): the pooler's cost per query.
* **many clients**: 200 clients against a server with ``max_connections: 60``; direct, the
  server refuses most of them; pooled, they share the service's pool (its ``connection_limits``
  sized to fit) and none fails.

Direct and pooled alternate in a palindrome (direct, pooled, pooled, direct) and each keeps its
best run, so neither profits from its place. Prints the ratios (pooled / direct transactions per
second) and writes them into benchmarks/README.md (section "pooler").
Run: python -m benchmarks.bench_pooler [--seconds 10] [--clients 8]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.report import table, write_section
from infra import naming
from infra.config import StackConfig, load_stack
from infra.config.model import ConnectionLimits, ServiceSpec
from infra.credentials import Credentials
from infra.postgres import apply
from tests.conftest import render_to
from tests.e2e.dockerd import ensure_docker
from tests.servers.pgbouncer import PgbouncerServer
from tests.servers.postgres import PostgresServer, pg_binary

SERVICE = "bench"
TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)
FAILED = re.compile(r"number of failed transactions: (\d+)")


@dataclass(frozen=True)
class Result:
    tps: float
    ok: bool
    failed: str  # what went wrong, "" when nothing did


@dataclass
class Servers:
    postgres: PostgresServer
    pooler: PgbouncerServer
    credentials: Credentials

    def url(self, *, pooled: bool, kind: str = "app") -> tuple[str, str]:
        """A password-less URL of ``kind`` and its password (for PGPASSWORD)."""
        port = self.pooler.port if pooled else self.postgres.port
        user = naming.role_name(SERVICE, kind)
        password = self.credentials.for_service(SERVICE).postgres_password(kind)
        return f"postgresql://{user}@127.0.0.1:{port}/{naming.database_name(SERVICE)}", password

    def cleanup(self) -> None:
        self.pooler.cleanup()
        self.postgres.cleanup()


def stack(limits: ConnectionLimits, max_connections: int) -> StackConfig:
    dev = load_stack("dev")
    return replace(
        dev,
        services=(ServiceSpec(name=SERVICE, connection_limits=limits),),
        postgres=replace(dev.postgres, max_connections=max_connections, reserved_connections=5),
    )


def start(config: StackConfig, root: Path) -> Servers:
    credentials = Credentials.generate().completed_for(config)
    rendered = render_to(root / "out", config, credentials)
    postgres = PostgresServer(rendered, config.postgres.admin_user, credentials.postgres_admin)
    postgres.initialise()
    pooler = PgbouncerServer(postgres, root / "pgbouncer")
    servers = Servers(postgres, pooler, credentials)
    try:
        apply(postgres.admin_url, config, credentials)
        pooler.write(config, credentials)
        pooler.start()
        url, password = servers.url(pooled=False, kind="migrator")
        initialised = subprocess.run(
            [pg_binary("pgbench"), "-i", "-s", "10", "-q", url],
            env={**os.environ, "PGPASSWORD": password}, capture_output=True, text=True,
            check=False,
        )  # fmt: skip
        if initialised.returncode != 0:
            raise RuntimeError(f"pgbench -i failed: {initialised.stderr.strip()[-500:]}")
    except BaseException:
        servers.cleanup()
        raise
    return servers


def pgbench(
    servers: Servers, *, pooled: bool, clients: int, seconds: int, args: list[str]
) -> Result:
    url, password = servers.url(pooled=pooled)
    threads = min(clients, 2)
    done = subprocess.run(
        [pg_binary("pgbench"), "-n", "-c", str(clients), "-j", str(threads), "-T", str(seconds),
         *args, url],
        env={**os.environ, "PGPASSWORD": password}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    found = TPS.search(done.stdout)
    failed = FAILED.search(done.stdout)
    problem = ""
    if done.returncode != 0 or found is None:
        lines = [line for line in done.stderr.splitlines() if "error" in line or "FATAL" in line]
        problem = (lines[0] if lines else done.stderr.strip()[-200:]) or "no tps reported"
        problem = "refused: " + problem.rsplit("FATAL:", 1)[-1].strip()
    elif failed is not None and int(failed.group(1)):
        problem = f"{failed.group(1)} failed transactions"
    return Result(float(found.group(1)) if found else 0.0, not problem, problem)


def best_of_palindrome(
    servers: Servers, clients: int, seconds: int, args: list[str]
) -> tuple[Result, Result]:
    """direct, pooled, pooled, direct: the best of each."""
    runs: dict[bool, list[Result]] = {False: [], True: []}
    for pooled in (False, True, True, False):
        runs[pooled].append(
            pgbench(servers, pooled=pooled, clients=clients, seconds=seconds, args=args)
        )
    return (
        max(runs[False], key=lambda r: r.tps),
        max(runs[True], key=lambda r: r.tps),
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_pooler")
    parser.add_argument("--seconds", type=int, default=10, help="each pgbench run (default 10)")
    parser.add_argument(
        "--clients", type=int, nargs="+", default=[8, 16], help="pgbench clients (default 8 16)"
    )
    args = parser.parse_args()
    rows: list[list[str]] = []
    with ensure_docker(), tempfile.TemporaryDirectory(prefix="bench-pooler-") as tmp:
        root = Path(tmp)
        # The app login's limit leaves the direct runs room beside the server connections the
        # pooled runs leave idle in the pool (both count against the role's limit).
        most = max(args.clients)
        limits = ConnectionLimits(app=2 * most, migrator=3, readonly=5)
        servers = start(stack(limits, 300), root / "a")
        try:
            for clients in args.clients:
                for label, extra in (
                    ("connection per transaction (`-C -S`)", ["-C", "-S"]),
                    ("persistent connections, select-only (`-S`)", ["-S"]),
                ):
                    direct, pooled = best_of_palindrome(servers, clients, args.seconds, extra)
                    rows.append(row(label, clients, direct, pooled))
        finally:
            servers.cleanup()
        # 200 clients, max_connections 60: the service's pools (40 + 5) and the migrator's 3
        # plus the 5 reserved fit; the clients do not, and need not.
        servers = start(stack(ConnectionLimits(app=40, migrator=3, readonly=5), 60), root / "b")
        try:
            direct, pooled = best_of_palindrome(servers, 200, args.seconds, ["-S"])
            rows.append(row("200 clients, `max_connections: 60` (`-S`)", 200, direct, pooled))
        finally:
            servers.cleanup()
    header = ["workload", "clients", "direct tps", "pooled tps", "pooled / direct"]
    markdown = (
        f"pgbench {args.seconds} s per run, best of two each (palindrome order), SCRAM logins "
        "both ways, scale 10.\n\n" + table(header, rows)
    )
    print(markdown)
    write_section("pooler", markdown)
    return 0


def row(label: str, clients: int, direct: Result, pooled: Result) -> list[str]:
    def cell(result: Result) -> str:
        return f"{result.tps:,.0f}" if result.ok else f"{result.tps:,.0f} ({result.failed})"

    ratio = f"{pooled.tps / direct.tps:.2f}x" if direct.ok and direct.tps else "direct refused"
    return [label, str(clients), cell(direct), cell(pooled), ratio]


if __name__ == "__main__":
    raise SystemExit(main())
