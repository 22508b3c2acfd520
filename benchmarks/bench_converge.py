"""Converging N services with the engine, next to ``psql -f`` running the same statements.

For N in 10, 50, 200 (a fresh PostgreSQL 15 per N, started by tests/servers/postgres.py):

* from empty: ``infra.postgres.apply`` (reads the catalog, computes, applies in transactions)
  versus ``psql -f`` running exactly the statements ``plan`` produced for another, equally
  empty set of services (same count, same shape);
* no change: a second ``apply`` (reads the catalog, executes nothing) versus that same psql
  file, which is what a tool without a catalog diff would have to run again.

Prints one row per N with both ratios (our time / psql time).
Run: python -m benchmarks.bench_converge [--sizes 10 50 200]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from infra import atomic_file, postgres
from infra.config import StackConfig, load_stack
from infra.config.model import ServiceSpec
from infra.credentials import Credentials
from infra.secrets_file import write as write_secrets
from tests.conftest import render_to
from tests.servers.postgres import PostgresServer, pg_binary

SIZES = (10, 50, 200)


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


def run_psql(server: PostgresServer, script: Path, admin_user: str, password: str) -> float:
    env = {**os.environ, "PGPASSWORD": password}
    argv = [
        pg_binary("psql"),
        "-X",
        "-q",
        "-h",
        server.host,
        "-p",
        str(server.port),
        "-U",
        admin_user,
        "-d",
        "postgres",
        "-f",
        str(script),
    ]
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def measure(count: int, base: StackConfig, base_credentials: Credentials) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="bench-converge-"))
    render_to(root / "out", base, base_credentials)
    server = PostgresServer(
        root / "out", base.postgres.admin_user, base_credentials.postgres_admin
    ).initialise()
    try:
        ours = stack_with(base, "ours_", count)
        theirs = stack_with(base, "psql_", count)
        credentials = base_credentials.completed_for(ours).completed_for(theirs)
        script = root / "converge.sql"
        # Holds SCRAM verifiers only (no plaintext), still private from its first byte.
        atomic_file.write_text(script, psql_script(server, theirs, credentials), 0o600)
        write_secrets(root / "secrets.json", credentials)

        started = time.perf_counter()
        first = postgres.apply(server.admin_url, ours, credentials)
        ours_empty = time.perf_counter() - started
        started = time.perf_counter()
        second = postgres.apply(server.admin_url, ours, credentials)
        ours_noop = time.perf_counter() - started
        assert second.executed == (), "a re-apply must execute nothing"
        psql_empty = run_psql(server, script, base.postgres.admin_user, credentials.postgres_admin)
        return {
            "statements": float(len(first.executed)),
            "ours_empty": ours_empty,
            "psql_empty": psql_empty,
            "ours_noop": ours_noop,
        }
    finally:
        server.cleanup()
        subprocess.run(["rm", "-rf", str(root)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    args = parser.parse_args()
    base = load_stack("dev")
    credentials = Credentials.generate().completed_for(base)
    print(
        f"{'services':>8} {'statements':>10} {'ours empty':>11} {'psql -f':>8} {'ratio':>6}"
        f" {'ours no-op':>11} {'ratio':>6}"
    )
    for count in args.sizes:
        row = measure(count, base, credentials)
        print(
            f"{count:>8} {int(row['statements']):>10} {row['ours_empty']:>10.2f}s"
            f" {row['psql_empty']:>7.2f}s {row['ours_empty'] / row['psql_empty']:>6.2f}"
            f" {row['ours_noop']:>10.2f}s {row['ours_noop'] / row['psql_empty']:>6.2f}",
            flush=True,
        )
    print("ratio = our time / psql -f time for the same statements (lower is better)")


if __name__ == "__main__":
    main()
