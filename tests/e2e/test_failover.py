"""PostgreSQL failover as a user runs it: a stack with one replica loses its primary (container
and volume) under a steady write load through DATABASE_URL; ``make failover``; then ``make up``.

Measured: RTO (from the kill until a write through DATABASE_URL succeeds again) and RPO (the
acknowledged writes missing afterwards). Goals (issue 25): RTO <= 15 s; asynchronous, nothing
acknowledged more than 1 s before the kill lost; with ``synchronous: true``, nothing lost.

The second failover runs the other way (back to ``postgres``) with ``synchronous`` switched on,
so both the bootstrap server and a promoted replica are fenced and re-seeded once.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import yaml

from infra.platforms.docker.containers import POSTGRES_START
from tests.e2e.stack import PREFIX, STACK, E2eStack, docker

# A write every WRITE_INTERVAL_S at most: a steady load the proof can count exactly.
WRITE_INTERVAL_S = 0.005


def _connect(url: str, timeout: int = 3) -> psycopg.Connection[Any]:
    return psycopg.connect(url, connect_timeout=timeout, autocommit=True)


@dataclass
class Writer:
    """Inserts ids 1, 2, ... through DATABASE_URL, one per transaction, and records each id
    whose commit was acknowledged, with when. A failed write is retried as a new id on a new
    connection (its own outcome unknown: never counted as acknowledged)."""

    url: str
    acked: dict[int, float] = field(default_factory=dict)
    started: dict[int, float] = field(default_factory=dict)
    failures: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        next_id, conn = 1, None
        while not self.stop.is_set():
            try:
                self.started[next_id] = time.monotonic()
                if conn is None:
                    conn = _connect(self.url, timeout=2)
                conn.execute("INSERT INTO failover_probe (id) VALUES (%s)", (next_id,))
                self.acked[next_id] = time.monotonic()
            except psycopg.Error:
                self.failures += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
            next_id += 1
            time.sleep(WRITE_INTERVAL_S)
        if conn is not None:
            conn.close()

    def first_ack_after(self, moment: float, deadline_s: float = 60) -> float:
        """When the first write begun after ``moment`` was acknowledged (waits for it). A
        write caught by the kill may wait in the pooler and succeed once the pooler reaches
        the new primary: the write after it starts then, and counts."""
        limit = time.monotonic() + deadline_s
        while time.monotonic() < limit:
            acked = list(self.acked.items())
            after = [at for i, at in acked if self.started[i] > moment]
            if after:
                return min(after)
            time.sleep(0.05)
        raise AssertionError(f"no write succeeded within {deadline_s} s of the kill")


def _under_load(stack: E2eStack, victim: str, synchronous: bool) -> tuple[float, list[float]]:
    """Kill ``victim`` (container and volume) under load, run `make failover`; RTO and, for
    each acknowledged write missing afterwards, how long before the kill it was acknowledged."""
    env = stack.env_files()["orders"]
    writer = Writer(env["DATABASE_URL"])
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    time.sleep(3)
    assert len(writer.acked) > 100, f"the load is not running ({writer.failures} failures)"
    docker("rm", "-f", f"{PREFIX}-{victim}")
    killed = time.monotonic()  # the server is gone for sure once `docker rm -f` returns
    docker("volume", "rm", f"{PREFIX}-{victim}-data")
    stack.make("failover", timeout=180)
    recovered = writer.first_ack_after(killed)
    time.sleep(2)
    writer.stop.set()
    thread.join(10)
    with _connect(env["MIGRATION_DATABASE_URL"]) as conn:
        present = {row[0] for row in conn.execute("SELECT id FROM failover_probe")}
    missing = sorted(set(writer.acked) - present)
    rto = recovered - killed
    ages = [killed - writer.acked[i] for i in missing]
    mode = "synchronous" if synchronous else "asynchronous"
    print(
        f"failover ({mode}) of {victim}: RTO {rto:.2f} s; {len(writer.acked)} writes "
        f"acknowledged, {len(missing)} missing (acknowledged up to "
        f"{max(ages, default=0):.3f} s before the kill); {writer.failures} failed attempts"
    )
    return rto, ages


def _converges(stack: E2eStack, promoted: str, fenced: str) -> None:
    """`make preview` replaces nothing but the fenced member and the router; `make up`
    re-seeds the fenced member; then nothing is left to change and every replica streams."""
    planned = stack.planned()
    containers = {u: op for u, op in planned.items() if "container:Container" in u}
    ops = {urn.rsplit("::", 1)[1]: op for urn, op in containers.items()}
    assert ops.get(promoted, "same") == "same", f"the promoted database would change: {ops}"
    assert ops.get(fenced) == "create", ops
    stack.make("up")
    stack.preview_expecting_no_changes()
    stack.make("drift")  # and the real world agrees with the state (labels of re-made volumes)
    lag = stack.make("lag")
    assert "1 replica(s), all streaming" in lag.stdout, lag.stdout


def _edit_stack_file(stack: E2eStack, **postgres: Any) -> None:
    path = stack.project / f"Pulumi.{STACK}.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["persistence:postgres"].update(postgres)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def test_failover_under_load_then_make_up_converges(stack: E2eStack) -> None:
    stack.up()
    orders = stack.env_files()["orders"]
    with _connect(orders["MIGRATION_DATABASE_URL"]) as conn:
        conn.execute("CREATE TABLE failover_probe (id bigint PRIMARY KEY)")

    # 1. Asynchronous: the bootstrap server is lost; replica 1 becomes the primary.
    rto, ages = _under_load(stack, "postgres", synchronous=False)
    assert rto <= 15, f"RTO {rto:.2f} s"
    assert max(ages, default=0) <= 1, f"acknowledged writes lost from {max(ages):.3f} s before"
    record = (stack.project / f"Pulumi.{STACK}.yaml").read_text()
    assert "primary: postgres-replica-1" in record, record
    failed_over = datetime.now(UTC)
    _converges(stack, promoted="postgres-replica-1", fenced="postgres")
    # Backups follow the primary: the backup container reaches it through the router.
    stack.wait_for_verified_backups(failed_over, {("postgres", "orders"), ("postgres", "billing")})

    # The old primary's name now streams from the new one, and reads through the replicas'
    # alias see a write made through DATABASE_URL.
    with _connect(orders["DATABASE_URL"]) as conn:
        conn.execute("INSERT INTO failover_probe (id) VALUES (-1)")
    deadline = time.monotonic() + 10
    while True:
        with _connect(orders["READONLY_DATABASE_URL"]) as conn:
            if conn.execute("SELECT 1 FROM failover_probe WHERE id = -1").fetchone():
                break
        assert time.monotonic() < deadline, "the re-seeded replica does not serve reads"
        time.sleep(0.2)

    # 2. Synchronous: replica 1, now the primary, is lost; `postgres` takes over again.
    _edit_stack_file(stack, synchronous=True)  # as a user edits it
    stack.make("up")
    with _connect(orders["MIGRATION_DATABASE_URL"]) as conn:
        conn.execute("TRUNCATE failover_probe")
    rto, ages = _under_load(stack, "postgres-replica-1", synchronous=True)
    assert rto <= 15, f"RTO {rto:.2f} s"
    assert ages == [], f"{len(ages)} acknowledged commits lost with synchronous replication"
    _converges(stack, promoted="postgres", fenced="postgres-replica-1")


def _primaries(stack: E2eStack) -> list[str]:
    """The members that run as a primary (not in recovery)."""
    found = []
    for member in ("postgres", "postgres-replica-1"):
        answer = docker(
            "exec", "-u", "postgres", f"{PREFIX}-{member}",
            "psql", "-XAtc", "SELECT pg_is_in_recovery()", check=False,
        )  # fmt: skip
        if answer.strip() == "f":
            found.append(member)
    return found


def test_a_switchover_fences_the_old_primary_and_keeps_its_data(stack: E2eStack) -> None:
    """After the failovers above `postgres` is the primary again. `make failover` refuses while
    it answers; `FORCE=1` is a planned switchover: it stops it cleanly (nothing acknowledged
    lost), and its volume, still there, keeps its data set aside and the FENCED mark, on which
    the bootstrap server refuses to start (it would initdb an empty second primary)."""
    assert _primaries(stack) == ["postgres"]
    refused = stack.make("failover", check=False)
    assert refused.returncode != 0
    assert "answers: nothing to fail over" in refused.stderr, refused.stderr

    env = stack.env_files()["orders"]
    writer = Writer(env["DATABASE_URL"])
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    time.sleep(2)
    stack.make("failover", "FORCE=1", timeout=180)
    time.sleep(2)
    writer.stop.set()
    thread.join(10)
    with _connect(env["MIGRATION_DATABASE_URL"]) as conn:
        present = {row[0] for row in conn.execute("SELECT id FROM failover_probe")}
    assert set(writer.acked) <= present, "a clean switchover loses nothing acknowledged"
    assert _primaries(stack) == ["postgres-replica-1"], "one primary, never two"
    assert docker("ps", "-aq", "--filter", f"name=^{PREFIX}-postgres$") == ""

    volume = f"{PREFIX}-postgres-data:/var/lib/postgresql/data"
    image = docker("inspect", "--format", "{{.Config.Image}}", f"{PREFIX}-postgres-replica-1")
    listing = docker(
        "run", "--rm", "-v", volume, "--entrypoint", "ls", image, "/var/lib/postgresql/data"
    ).split()
    assert "FENCED" in listing, listing
    assert "pgdata" not in listing, listing
    assert any(name.startswith("pgdata.fenced-") for name in listing), listing
    restarted = subprocess.run(
        ["docker", "run", "--rm", "-v", volume, "-e", "PGDATA=/var/lib/postgresql/data/pgdata",
         "--entrypoint", "sh", image, "-c", POSTGRES_START],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert restarted.returncode == 1, restarted
    assert "fenced by db promote" in restarted.stderr, restarted.stderr

    _converges(stack, promoted="postgres-replica-1", fenced="postgres")


def test_after_a_failover_make_rebuild_still_brings_everything_back(stack: E2eStack) -> None:
    """Every server lost after failovers (the record names postgres-replica-1): `make rebuild`
    removes the record, postgres bootstraps the cluster again and the backups fill it."""
    with _connect(stack.env_files()["orders"]["MIGRATION_DATABASE_URL"]) as conn:
        (rows,) = conn.execute("SELECT count(*) FROM failover_probe").fetchone() or (0,)
    assert rows > 0
    written = datetime.now(UTC)
    stack.wait_for_verified_backups(written, {("postgres", "orders"), ("postgres", "billing")})

    names = docker("container", "ls", "-aq", "--filter", f"label=persistence.stack={PREFIX}")
    for name in names.split():
        docker("rm", "-f", name)
    for name in docker("volume", "ls", "-q", "--filter", f"name={PREFIX}-").split():
        docker("volume", "rm", name)

    completed = stack.make("rebuild")
    assert "postgres.primary: postgres-replica-1 removed" in completed.stdout, completed.stdout
    report = json.loads(completed.stdout[completed.stdout.index("\n{") :])
    assert report["ok"], report
    assert "primary:" not in (stack.project / f"Pulumi.{STACK}.yaml").read_text()
    assert _primaries(stack) == ["postgres"]
    with _connect(stack.env_files()["orders"]["MIGRATION_DATABASE_URL"]) as conn:
        assert conn.execute("SELECT count(*) FROM failover_probe").fetchone() == (rows,)
    stack.preview_expecting_no_changes()
