"""Converging N services with the engine, next to ``psql -f`` and bare connections.

For N in 10, 50, 200:

* from empty: ``infra.postgres.apply`` on a fresh PostgreSQL 15, versus ``psql -f`` running
  exactly the statements ``plan`` produced for the same services on another fresh server (so
  neither tool pays or profits from running first);
* no change: a second ``apply`` (reads the catalog, executes nothing), versus the lower bound:
  one bare connection per service database plus one trivial catalog query on it, which is the
  least any tool must do to look.
* the no-op also proves each login's password (three per service, in the pool, as the engine
  does): a login may change its own password, and a non-superuser admin (as on Cloud SQL) cannot
  read verifiers, so the only proof is one authentication per login, which costs what a bare
  connection costs. ``test logins`` times those logins alone; ``floor`` = lower bound + test
  logins is the least a no-op that finds that drift must do, and ``no-op / floor`` is our
  overhead over it.

The three alternate in a palindrome (lower bound, logins, no-op, no-op, logins, lower bound) and
each keeps its fastest run, so none profits from its place.

A ``CHECKPOINT`` runs before each timed step. Prints the table and writes it into
benchmarks/README.md (section "converge").
Run: python -m benchmarks.bench_converge [--sizes 10 50 200]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.report import table, write_section
from infra import atomic_file, postgres
from infra.config import StackConfig, load_stack
from infra.config.model import ServiceSpec
from infra.credentials import Credentials
from infra.postgres.driver import connect, password_rejected
from infra.postgres.engine import POOL_SIZE
from tests.conftest import render_to
from tests.servers.postgres import PostgresServer, pg_binary

SIZES = (10, 50, 200)
HEADER = [
    "services",
    "statements",
    "ours empty",
    "psql -f",
    "ratio",
    "lower bound",
    "ours no-op",
    "no-op / lower bound",
    "test logins",
    "floor",
    "no-op / floor",
    "no-op / ours empty",
]


def stack_with(base: StackConfig, prefix: str, count: int) -> StackConfig:
    services = tuple(
        ServiceSpec(name=f"{prefix}{i:03d}", extensions=("pgcrypto",)) for i in range(count)
    )
    # Room for every service's connection limits: the config refuses a stack that lacks it.
    limits = sum(
        s.connection_limits.app + s.connection_limits.migrator + s.connection_limits.readonly
        for s in services
    )
    needed = limits + base.postgres.reserved_connections
    postgres_settings = replace(base.postgres, max_connections=max(needed, 25))
    return replace(base, services=services, postgres=postgres_settings)


def psql_script(server: PostgresServer, config: StackConfig, credentials: Credentials) -> str:
    """The statements plan() computes from empty, as a psql script with \\connect per database."""
    plan = postgres.plan(server.admin_url, config, credentials)
    lines = ["\\set ON_ERROR_STOP 1"]
    current = "postgres"
    for statement in plan.statements:
        target = statement.database or "postgres"
        if target != current:
            lines.append(f"\\connect {target}")
            current = target
        lines.append(statement.query.as_string() + ";")
    return "\n".join(lines) + "\n"


def timed(server: PostgresServer, step: Callable[[], object]) -> float:
    """Seconds ``step`` takes, after a CHECKPOINT so no step pays for the one before."""
    server.superuser_psql("CHECKPOINT")
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def run_psql(server: PostgresServer, script: Path, admin_user: str, password: str) -> None:
    env = {**os.environ, "PGPASSWORD": password}
    argv = [pg_binary("psql"), "-X", "-q", "-h", server.host, "-p", str(server.port)]
    argv += ["-U", admin_user, "-d", "postgres", "-f", str(script)]
    subprocess.run(argv, env=env, check=True, capture_output=True)


def lower_bound(server: PostgresServer, config: StackConfig) -> None:
    """One bare connection per service database and one trivial catalog query on it."""
    for spec in config.services:
        with connect(server.admin_url, dbname=spec.name, autocommit=True) as conn:
            conn.execute("SELECT count(*) FROM pg_catalog.pg_namespace").fetchone()


def test_logins(server: PostgresServer, config: StackConfig, credentials: Credentials) -> None:
    """The logins a no-op apply makes to find changed passwords, in a pool like the engine's."""
    tries = [
        (
            f"{spec.name}_{kind}",
            credentials.for_service(spec.name).postgres_password(kind),
            spec.name,
        )
        for spec in config.services
        for kind in ("migrator", "app", "readonly")
    ]
    with ThreadPoolExecutor(POOL_SIZE) as pool:
        list(pool.map(lambda t: password_rejected(server.admin_url, *t), tries))


@dataclass
class Servers:
    """A fresh server per tool, from the same rendered files."""

    ours: PostgresServer
    theirs: PostgresServer
    root: Path

    @classmethod
    def start(cls, base: StackConfig, credentials: Credentials) -> Servers:
        root = Path(tempfile.mkdtemp(prefix="bench-converge-"))
        render_to(root / "out", base, credentials)
        admin, password = base.postgres.admin_user, credentials.postgres_admin
        return cls(
            PostgresServer(root / "out", admin, password).initialise(),
            PostgresServer(root / "out", admin, password).initialise(),
            root,
        )

    def cleanup(self) -> None:
        self.ours.cleanup()
        self.theirs.cleanup()
        subprocess.run(["rm", "-rf", str(self.root)], check=False)


def measure(count: int, base: StackConfig, base_credentials: Credentials) -> dict[str, float]:
    config = stack_with(base, "svc_", count)
    credentials = base_credentials.completed_for(config)
    servers = Servers.start(config, credentials)
    try:
        ours, theirs = servers.ours, servers.theirs
        script = servers.root / "converge.sql"
        # Holds SCRAM verifiers only (no plaintext), still private from its first byte.
        atomic_file.write_text(script, psql_script(theirs, config, credentials), 0o600)
        admin = base.postgres.admin_user
        psql_empty = timed(
            theirs, lambda: run_psql(theirs, script, admin, credentials.postgres_admin)
        )
        first: list[postgres.ApplyReport] = []
        ours_empty = timed(
            ours, lambda: first.append(postgres.apply(ours.admin_url, config, credentials))
        )
        noops: list[postgres.ApplyReport] = []

        def noop_apply() -> None:
            noops.append(postgres.apply(ours.admin_url, config, credentials))

        steps = {
            "bound": lambda: lower_bound(ours, config),
            "logins": lambda: test_logins(ours, config, credentials),
            "noop": noop_apply,
        }
        times: dict[str, list[float]] = {step: [] for step in steps}
        for step in ("bound", "logins", "noop", "noop", "logins", "bound"):  # no order bias
            times[step].append(timed(ours, steps[step]))
        assert all(report.executed == () for report in noops), "a re-apply must execute nothing"
        return {
            "statements": float(len(first[0].executed)),
            "ours_empty": ours_empty,
            "psql_empty": psql_empty,
            "lower_bound": min(times["bound"]),
            "ours_noop": min(times["noop"]),
            "test_logins": min(times["logins"]),
        }
    finally:
        servers.cleanup()


def row(count: int, m: dict[str, float]) -> list[str]:
    floor = m["lower_bound"] + m["test_logins"]
    return [
        str(count),
        str(int(m["statements"])),
        f"{m['ours_empty']:.2f}s",
        f"{m['psql_empty']:.2f}s",
        f"{m['ours_empty'] / m['psql_empty']:.2f}",
        f"{m['lower_bound']:.2f}s",
        f"{m['ours_noop']:.2f}s",
        f"{m['ours_noop'] / m['lower_bound']:.2f}",
        f"{m['test_logins']:.2f}s",
        f"{floor:.2f}s",
        f"{m['ours_noop'] / floor:.2f}",
        f"{m['ours_noop'] / m['ours_empty']:.2f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    args = parser.parse_args()
    base = load_stack("dev")
    credentials = Credentials.generate().completed_for(base)
    rows = []
    for count in args.sizes:
        rows.append(row(count, measure(count, base, credentials)))
        print(" | ".join(rows[-1]), flush=True)
    markdown = table(HEADER, rows) + (
        "\n\nratio = ours empty / psql -f of the same statements, each on a fresh server; "
        "lower bound = one bare connection and one trivial catalog query per service "
        "database; test logins = the no-op's password-drift logins alone (one authentication per "
        "login, in the engine's pool); floor = lower bound + test logins, the least a no-op "
        "that finds a password changed by its login can do."
    )
    print(markdown)
    write_section("converge", markdown)


if __name__ == "__main__":
    main()
