"""``make rebuild`` after a disaster, timed as a user runs it, next to its floor.

Run: .venv/bin/python -m benchmarks.bench_rebuild [--rows 1200000] [--rounds 2]

Needs what the end-to-end tests need: Docker (a dockerd is started if none answers, and stopped
after), the Debian-built images (``infra.images.build``) and the pinned engine (``make
engine``). The stack is the end-to-end suite's isolated one (``tests/e2e/stack.py``: its own
project directory, state, passphrase and ports), driven only through ``make`` targets.

Set-up: ``make up``; ``orders`` filled with ``--rows`` rows through its migration URL; Redis
keys and a durable queue declared; then the stack's own backup container takes and verifies its
scheduled backups (every minute in that stack), and the benchmark waits for them.

Each round, after the same disaster (every container and data volume removed behind Pulumi's
back, untimed), alternating which goes first:

  ours   ``make rebuild`` start to exit, and from its JSON report: ``up_s`` (refresh and
         ``pulumi up``) and each part's recovery time (RTO, from the command's start)
  floor  ``make up PULUMI_ARGS=--refresh`` onto the empty slate (a plain ``make up`` trusts the
         state and changes nothing: the refresh is what finds the servers gone), then
         ``pg_restore -j 2`` (as the migrator: no owners, privileges or comments) of a plain
         ``pg_dump -Fc`` of ``orders`` taken before the
         disaster: the least any rebuild must do (the servers back, the data back)

Between rounds the backup container is stopped and every backup it took after the set-up's is
deleted (untimed): a rebuild restores the newest verified backup from before it started, and
the floor's empty servers must not become that.

The table goes into benchmarks/README.md (section "rebuild").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika
import psycopg
import redis

from benchmarks.report import table, write_section
from infra.backup import pg
from infra.backup.storage import FileBucket
from infra.images.build import ensure_images
from tests.e2e.dockerd import ensure_docker
from tests.e2e.stack import PREFIX, SERVERS, E2eStack, docker, remove_leftovers

CONTAINERS = [f"{PREFIX}-{server}" for server in SERVERS] + [f"{PREFIX}-backup"]
SERVICE = "orders"
ROWS = 1_200_000
ROUNDS = 2


def say(line: str) -> None:
    """A progress line on the terminal; the commands' own output goes to the run's log."""
    print(line, file=sys.__stdout__, flush=True)


def disaster() -> None:
    """Every container and data volume of the stack gone, behind Pulumi's back."""
    for name in CONTAINERS:
        docker("rm", "-f", name, check=False)
    for server in SERVERS:
        docker("volume", "rm", "-f", f"{PREFIX}-{server}-data", check=False)


def fill(stack: E2eStack, rows: int) -> None:
    """``rows`` rows in ``orders``, Redis keys and a durable queue, through the service's URLs."""
    env = stack.env_files()[SERVICE]
    with psycopg.connect(env["MIGRATION_DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE readings (id bigint PRIMARY KEY, at timestamptz, sensor text,"
            " payload text, value double precision)"
        )
        conn.execute(
            "INSERT INTO readings SELECT g, now() - g * interval '1 second',"
            " 'sensor-' || (g %% 5000), md5(random()::text) || repeat(md5(g::text), 7),"
            " random() FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute("ANALYZE readings")
    cache = redis.Redis.from_url(env["REDIS_URL"], retry=None, socket_timeout=10)
    for i in range(1000):
        cache.set(f"{SERVICE}:session:{i}", "x" * 100, ex=86400)
    with pika.BlockingConnection(pika.URLParameters(env["AMQP_URL"])) as connection:
        channel = connection.channel()
        channel.exchange_declare("bench.x", exchange_type="direct", durable=True)
        channel.queue_declare("bench.q", durable=True)
        channel.queue_bind("bench.q", "bench.x", routing_key="k")


def migrator_environment(stack: E2eStack) -> dict[str, str]:
    """libpq's variables for ``orders``' migrator: the password never on a command line."""
    url = stack.env_files()[SERVICE]["MIGRATION_DATABASE_URL"]
    return pg.libpq_environment(url, SERVICE)


def plain_dump(stack: E2eStack, dump: Path) -> None:
    """``pg_dump -Fc`` of ``orders`` as its migrator, before the disaster."""
    argv = [pg.binary("pg_dump"), "-Fc", "-f", str(dump)]
    subprocess.run(argv, env=migrator_environment(stack), check=True)


def plain_restore(stack: E2eStack, dump: Path) -> None:
    """``pg_restore -j 2`` of the dump into the fresh server's (empty) ``orders``, as its
    migrator, which owns the schema there."""
    argv = [pg.binary("pg_restore"), "-j", "2", "--no-owner", "--no-privileges", "--no-comments"]
    argv.append(str(dump))
    subprocess.run([*argv, "-d", SERVICE], env=migrator_environment(stack), check=True)


class Rounds:
    """The benchmark's state between rounds: the stack, the set-up's backups, the results."""

    def __init__(self, stack: E2eStack, dump: Path) -> None:
        self.stack = stack
        self.dump = dump
        self.bucket = FileBucket(stack.backups)
        docker("stop", f"{PREFIX}-backup", check=False)  # nothing half-written in the snapshot
        self.keep = set(self.bucket.names())
        self.ours: list[float] = []
        self.reports: list[dict[str, Any]] = []
        self.floor: list[float] = []
        self.floor_up: list[float] = []

    def rebuild(self) -> None:
        disaster()
        started = time.perf_counter()
        completed = self.stack.make("rebuild")
        self.ours.append(time.perf_counter() - started)
        report = json.loads(completed.stdout[completed.stdout.index("\n{") :])
        if not report["ok"]:
            raise RuntimeError(f"make rebuild reported a failure: {report}")
        self.reports.append(report)
        say(f"ours: make rebuild {self.ours[-1]:.1f} s (up {report['up_s']:.1f} s)")

    def floor_run(self) -> None:
        disaster()
        started = time.perf_counter()
        self.stack.make("up", "PULUMI_ARGS=--refresh")
        up = time.perf_counter() - started
        plain_restore(self.stack, self.dump)
        self.floor.append(time.perf_counter() - started)
        self.floor_up.append(up)
        say(f"floor: make up + pg_restore {self.floor[-1]:.1f} s (up {up:.1f} s)")

    def reset(self) -> None:
        """Only the set-up's backups stay in the bucket (the backup container stopped first)."""
        docker("stop", f"{PREFIX}-backup", check=False)
        for name in self.bucket.names():
            if name not in self.keep:
                self.bucket.delete(name)


def report(args: argparse.Namespace, rounds: Rounds, seconds: float) -> str:
    def runs(times: list[float]) -> str:
        return " / ".join(f"{t:.1f}" for t in times)

    def part(key: str) -> list[float]:
        return [float(r[key]["recovery_time_s"]) for r in rounds.reports]

    ups = [float(r["up_s"]) for r in rounds.reports]
    services = sorted(rounds.reports[0]["services"])
    rows = [
        ["whole command", runs(rounds.ours), runs(rounds.floor),
         f"{sum(rounds.ours) / sum(rounds.floor):.2f}"],
        ["refresh + `pulumi up` (`up_s`)", runs(ups), runs(rounds.floor_up),
         f"{sum(ups) / sum(rounds.floor_up):.2f}"],
    ]  # fmt: skip
    for name in services:
        rto = [float(r["services"][name]["recovery_time_s"]) for r in rounds.reports]
        floor = rounds.floor if name == SERVICE else rounds.floor_up
        rows.append(
            [f"RTO postgres/{name}", runs(rto), runs(floor), f"{sum(rto) / sum(floor):.2f}"]
        )
    rows.append(["RTO redis (every service)", runs(part("redis")), "", ""])
    rows.append(["RTO rabbitmq (definitions)", runs(part("rabbitmq")), "", ""])
    return (
        f"`orders` holds `--rows {args.rows}`; each side run {args.rounds} times in alternating "
        "order after the same disaster; RTO = seconds from the command's start until that part "
        "is back (its JSON report); floor = `make up PULUMI_ARGS=--refresh` onto the empty slate, "
        "plus "
        f"`pg_restore -j 2` of a plain dump for `{SERVICE}` (`make up` alone for a service with no "
        f"data); ratio = sum(ours) / sum(floor). Whole run: {seconds:.0f} s.\n\n"
        + table(["step", "ours (s)", "floor (s)", "ratio"], rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS, help="rows in orders")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="runs of each side")
    parser.add_argument(
        "--no-readme", action="store_true", help="print the table, leave the README alone"
    )
    args = parser.parse_args()
    began = time.monotonic()
    log = Path(tempfile.mkstemp(prefix="bench-rebuild-", suffix=".log")[1])
    say(f"the commands' output: {log}")
    with (
        log.open("w", encoding="utf-8") as output,
        redirect_stdout(output),  # the e2e harness echoes every command's output to stdout
        tempfile.TemporaryDirectory(prefix="bench-rebuild-") as root,
        ExitStack() as cleanup,  # exits first: `make down` needs the project in root
    ):
        engine = ensure_docker()
        cleanup.callback(engine.stop)  # stops only a dockerd started here
        ensure_images()
        remove_leftovers()
        stack = E2eStack(Path(root))
        cleanup.callback(remove_leftovers)
        cleanup.callback(stack.make, "down", check=False)
        stack.make("up")
        fill(stack, args.rows)
        since = datetime.now(UTC)
        stack.wait_for_verified_backups(
            since, {("postgres", SERVICE), ("redis", SERVICE), ("rabbitmq", "server")}
        )
        dump = Path(root) / f"{SERVICE}.dump"
        plain_dump(stack, dump)
        rounds = Rounds(stack, dump)
        for round_ in range(args.rounds):
            sides = [rounds.rebuild, rounds.floor_run]
            for side in sides if round_ % 2 == 0 else sides[::-1]:
                rounds.reset()
                side()
        rounds.reset()
        markdown = report(args, rounds, time.monotonic() - began)
    print(markdown)
    if not args.no_readme:
        write_section("rebuild", markdown)


if __name__ == "__main__":
    main()
