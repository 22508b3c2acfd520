"""``python -m infra db apply`` at 10 to 1,000 services, timed as a user runs it, next to
``psql -f`` and the floor.

For each size N (a stack file of N services, each with ``pgcrypto``, written to disk and read
by the command through ``--stack PATH``):

* **from empty**: the command on a fresh PostgreSQL 15 against ``psql -f`` running exactly the
  statements ``plan`` produced for the same services on another fresh server (neither profits
  from running first);
* **no change**: the command again (it reads the catalog, proves each login's password, executes
  nothing) against the **floor**: the lower bound (one bare connection and one trivial catalog
  query per service database, the least any tool must do to look) plus the password-proof
  logins alone (three per service, in a pool of the engine's size: a login may change its own
  password and a non-superuser admin, as on Cloud SQL, cannot read verifiers, so one
  authentication per login is the only proof). ``no-op / floor`` is the headline.
  ``in-process`` is the same converge as a library call, which shows what the command adds
  (interpreter, imports, finding interrupted restores, exit);
* **peak memory** of the command (its own ``wait4`` rusage), and milliseconds per service, to
  read the scaling off the table.

The no-op steps alternate in a palindrome (bound, logins, command, in-process, in-process,
command, logins, bound) and each keeps its fastest run, so none profits from its place. A
``CHECKPOINT`` runs before each timed step. Also measured: the command's start-up
(``python -m infra --help`` against ``python -c pass``, best of 7, alternating).

Prints the table and writes it into benchmarks/README.md (section "converge").
Run: python -m benchmarks.bench_converge [--sizes 10 50 200 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from benchmarks import command
from benchmarks.report import table, write_section
from infra import atomic_file, postgres, secrets_file
from infra.config import StackConfig, load_stack
from infra.credentials import Credentials
from infra.postgres import registry
from infra.postgres.driver import connect, password_rejected
from infra.postgres.engine import POOL_SIZE
from tests.conftest import render_to
from tests.servers.postgres import PostgresServer, pg_binary

SIZES = (10, 50, 200, 1000)
# Small limits so that 1,000 services fit a server of ordinary size (5 connections each).
LIMITS = {"app": 2, "migrator": 1, "readonly": 2}
RESERVED = 25
HEADER = [
    "services",
    "statements",
    "apply from empty",
    "psql -f",
    "ratio",
    "no-op",
    "floor",
    "no-op / floor",
    "in-process no-op",
    "no-op ms / service",
    "empty ms / service",
    "peak RSS (MB)",
]


def write_stack(directory: Path, count: int) -> Path:
    """``Pulumi.bench<N>.yaml``: N services with pgcrypto and room for their limits."""
    services = [
        {"name": f"svc_{i:04d}", "extensions": ["pgcrypto"], "connection_limits": LIMITS}
        for i in range(count)
    ]
    max_connections = count * sum(LIMITS.values()) + RESERVED
    settings = {
        "platform": "docker",
        "services": services,
        "postgres": {"max_connections": max_connections, "reserved_connections": RESERVED},
    }
    return command.write_stack_file(directory / f"Pulumi.bench{count}.yaml", settings)


def psql_script(
    server: PostgresServer, config: StackConfig, credentials: Credentials
) -> tuple[str, int]:
    """The statements plan() computes from empty, as a psql script with \\connect per
    database, and how many there are. The tooling database the registry rows go to is created
    first, untimed (the command creates its own: psql gets that for free)."""
    registry.ensure(server.admin_url)
    plan = postgres.plan(server.admin_url, config, credentials)
    lines = ["\\set ON_ERROR_STOP 1"]
    current = "postgres"
    for statement in plan.statements:
        target = statement.database or "postgres"
        if target != current:
            lines.append(f"\\connect {target}")
            current = target
        lines.append(statement.query.as_string() + ";")
    return "\n".join(lines) + "\n", len(plan.statements)


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
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"psql -f {script} exited {done.returncode}: {done.stderr[-1500:]}")


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
class Stack:
    """One size: its stack file, secrets file, config and a fresh server per tool."""

    stack_file: Path
    secrets: Path
    config: StackConfig
    credentials: Credentials
    ours: PostgresServer
    theirs: PostgresServer

    @classmethod
    def start(cls, root: Path, count: int) -> Stack:
        stack_file = write_stack(root, count)
        config = load_stack(str(stack_file))
        secrets = root / f"bench{count}.secrets.json"
        credentials = secrets_file.load_or_create(secrets, config)
        rendered = render_to(root / f"out{count}", config, credentials)
        admin, password = config.postgres.admin_user, credentials.postgres_admin
        return cls(
            stack_file,
            secrets,
            config,
            credentials,
            PostgresServer(rendered, admin, password).initialise(),
            PostgresServer(rendered, admin, password).initialise(),
        )

    def apply_command(self) -> command.Run:
        """``python -m infra db apply`` as the README has a user run it."""
        admin_url = (
            f"postgresql://{self.config.postgres.admin_user}@127.0.0.1:{self.ours.port}/postgres"
        )
        argv = ["db", "apply", "--stack", str(self.stack_file), "--secrets", str(self.secrets)]
        return command.run([*argv, "--admin-url", admin_url])

    def cleanup(self) -> None:
        self.ours.cleanup()
        self.theirs.cleanup()


def measure(root: Path, count: int) -> dict[str, float]:
    stack = Stack.start(root, count)
    try:
        ours, theirs, config = stack.ours, stack.theirs, stack.config
        script = root / f"converge{count}.sql"
        # Holds SCRAM verifiers only (no plaintext), still private from its first byte.
        text, statements = psql_script(theirs, config, stack.credentials)
        atomic_file.write_text(script, text, 0o600)
        admin = config.postgres.admin_user
        psql_empty = timed(
            theirs, lambda: run_psql(theirs, script, admin, stack.credentials.postgres_admin)
        )
        runs: list[command.Run] = []
        ours_empty = timed(ours, lambda: runs.append(stack.apply_command()))
        plan = postgres.plan(ours.admin_url, config, stack.credentials)
        assert not plan.statements, "the first apply must converge everything"

        def in_process() -> None:
            report = postgres.apply(ours.admin_url, config, stack.credentials)
            assert report.executed == (), "a re-apply must execute nothing"

        steps: dict[str, Callable[[], object]] = {
            "bound": lambda: lower_bound(ours, config),
            "logins": lambda: test_logins(ours, config, stack.credentials),
            "command": lambda: runs.append(stack.apply_command()),
            "in_process": in_process,
        }
        times: dict[str, list[float]] = {step: [] for step in steps}
        order = ("bound", "logins", "command", "in_process")
        for step in order + order[::-1]:  # a palindrome: no order bias
            times[step].append(timed(ours, steps[step]))
        return {
            "statements": float(statements),
            "ours_empty": ours_empty,
            "psql_empty": psql_empty,
            "noop": command.best(times["command"]),
            "floor": command.best(times["bound"]) + command.best(times["logins"]),
            "in_process": command.best(times["in_process"]),
            "peak_rss_mb": max(r.peak_rss_mb for r in runs),
        }
    finally:
        stack.cleanup()


def row(count: int, m: dict[str, float]) -> list[str]:
    return [
        str(count),
        str(int(m["statements"])),
        f"{m['ours_empty']:.2f}s",
        f"{m['psql_empty']:.2f}s",
        f"{m['ours_empty'] / m['psql_empty']:.2f}",
        f"{m['noop']:.2f}s",
        f"{m['floor']:.2f}s",
        f"{m['noop'] / m['floor']:.2f}",
        f"{m['in_process']:.2f}s",
        f"{1000 * m['noop'] / count:.1f}",
        f"{1000 * m['ours_empty'] / count:.1f}",
        f"{m['peak_rss_mb']:.0f}",
    ]


def start_up(rounds: int = 7) -> tuple[float, float]:
    """Best ``python -m infra --help`` and best ``python -c pass``, alternating."""
    ours: list[float] = []
    bare: list[float] = []
    for _ in range(rounds):
        ours.append(command.run(["--help"]).seconds)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - started)
    return command.best(ours), command.best(bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument(
        "--no-readme", action="store_true", help="print the table, leave the README alone"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-converge-"))
    try:
        ours_start, bare_start = start_up()
        print(
            f"start-up: python -m infra --help {ours_start:.3f}s, python -c pass {bare_start:.3f}s"
        )
        rows = []
        for count in args.sizes:
            rows.append(row(count, measure(root, count)))
            print(" | ".join(rows[-1]), flush=True)
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)
    markdown = (
        f"Start-up: `python -m infra --help` {ours_start:.2f}s "
        f"(`python -c pass` {bare_start:.2f}s), best of 7.\n\n"
        + table(HEADER, rows)
        + "\n\nEvery time is the command `python -m infra db apply --stack FILE` in a fresh "
        "process, start to exit, except the floor and the in-process column. ratio = apply "
        "from empty / psql -f of the same statements, each on a fresh server; floor = one bare "
        "connection and one trivial catalog query per service database, plus the no-op's "
        "password-proof logins alone (one authentication per login, in the engine's pool): "
        "the least a no-op that finds a password changed by its login can do; in-process = "
        "the same no-op as a library call (`infra.postgres.apply`); peak RSS = the command's "
        "own, from `wait4`."
    )
    print(markdown)
    if not args.no_readme:
        write_section("converge", markdown)


if __name__ == "__main__":
    main()
