"""Read replicas on real servers: streamed from the rendered files, read through the pooler.

Two hot standbys of a test primary, seeded as the dev containers seed theirs (``pg_basebackup``
through their own slots as the replication login), behind the dev stack's own PgBouncer image
with the rendered pgbouncer.ini: READONLY_DATABASE_URL as ``render`` writes it reads from them,
spread over both, and never writes; the replication login replicates and reaches no database;
``python -m infra db lag`` reports each replica and fails when one lags or is gone.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
import yaml

from infra import naming
from infra.config.model import ConnectionLimits, ServiceSpec, StackConfig
from infra.credentials import Credentials
from infra.postgres import apply
from infra.render import postgres as pg_files
from infra.render.endpoints import Endpoints
from infra.render.services import service_env
from tests.e2e.dockerd import DockerEngine
from tests.integration.postgres_support import REPO, cli
from tests.servers.pgbouncer import PgbouncerServer
from tests.servers.postgres import PostgresServer
from tests.servers.replica import ReplicaServer, shared_port

SERVICE = "users"  # in the test server's pg_hba.conf (the dev stack's)
REPLICAS = 2


@pytest.fixture(scope="module")
def stack(dev_config: StackConfig) -> StackConfig:
    limits = ConnectionLimits(app=4, migrator=2, readonly=4)
    service = ServiceSpec(name=SERVICE, connection_limits=limits)
    postgres = replace(dev_config.postgres, replicas=REPLICAS)
    return replace(dev_config, services=(service,), postgres=postgres)


@pytest.fixture(scope="module")
def credentials(dev_rendered: tuple[Path, Credentials], stack: StackConfig) -> Credentials:
    return dev_rendered[1].completed_for(stack)


@pytest.fixture(scope="module")
def replicas(
    postgres: PostgresServer, stack: StackConfig, credentials: Credentials
) -> Iterator[list[ReplicaServer]]:
    apply(postgres.admin_url, stack, credentials)
    port = shared_port(REPLICAS)
    servers = [
        ReplicaServer(postgres, index, credentials.postgres_replication, port)
        for index in range(1, REPLICAS + 1)
    ]
    try:
        for server in servers:
            server.seed().start()
        yield servers
    finally:
        for server in servers:
            server.cleanup()


@pytest.fixture(scope="module")
def pooler(
    postgres: PostgresServer,
    replicas: list[ReplicaServer],
    stack: StackConfig,
    credentials: Credentials,
    tmp_path_factory: pytest.TempPathFactory,
    docker_engine: DockerEngine,
) -> Iterator[PgbouncerServer]:
    server = PgbouncerServer(
        postgres,
        tmp_path_factory.mktemp("pgbouncer-replicas") / "etc",
        replica_hosts=tuple(r.host for r in replicas),
        replica_port=replicas[0].port,
    )
    server.write(stack, credentials)
    server.start()
    yield server
    server.cleanup()


def env_urls(
    pooler: PgbouncerServer, stack: StackConfig, credentials: Credentials
) -> dict[str, str]:
    """The service's env file as ``render`` writes it, pointed at the test's servers."""
    endpoints = Endpoints(
        postgres_host=pooler.postgres.host,
        postgres_port=pooler.postgres.port,
        redis_host="127.0.0.1",
        redis_port=1,
        redis_tls=False,
        amqp_host="127.0.0.1",
        amqp_port=1,
        pooler_host="127.0.0.1",
        pooler_port=pooler.port,
        readonly_via_replicas=True,
    )
    text = service_env(stack.services[0], credentials.for_service(SERVICE), endpoints)
    pairs = (line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))
    return {pair[0]: pair[1] for pair in pairs if len(pair) == 2}


def wait_for_replay(replicas: list[ReplicaServer], primary: PostgresServer) -> None:
    """Until every replica has replayed everything the primary has written so far."""
    target = primary.superuser_psql("SELECT pg_current_wal_lsn()")
    for replica in replicas:
        query = f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"
        deadline = time.monotonic() + 10
        while replica.superuser_psql(query) != "t":
            assert time.monotonic() < deadline, f"{replica.name} did not replay up to {target}"
            time.sleep(0.05)


def test_a_write_is_read_back_from_the_replicas_within_a_second_and_reads_never_write(
    pooler: PgbouncerServer, replicas: list[ReplicaServer], stack: StackConfig,
    credentials: Credentials,
) -> None:  # fmt: skip
    urls = env_urls(pooler, stack, credentials)
    assert urls["READONLY_DATABASE_URL"].endswith(f"/{naming.replicas_alias(SERVICE)}")
    with psycopg.connect(urls["MIGRATION_DATABASE_URL"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS notes (id int PRIMARY KEY, body text)")
    wait_for_replay(replicas, pooler.postgres)  # the table itself, before its rows are timed
    with (
        psycopg.connect(urls["DATABASE_URL"], autocommit=True) as writer,
        psycopg.connect(urls["READONLY_DATABASE_URL"], autocommit=True) as reader,
    ):
        for i in range(20):
            writer.execute("INSERT INTO notes VALUES (%s, 'x')", (i,))
            written = time.monotonic()
            while reader.execute("SELECT 1 FROM notes WHERE id = %s", (i,)).fetchone() is None:
                assert time.monotonic() - written < 1.0, f"row {i} not on the replicas after 1 s"
                time.sleep(0.005)
        # The read-only URL is served by a standby, as the service's read-only login.
        row = reader.execute("SELECT pg_is_in_recovery(), current_user").fetchone()
        assert row == (True, f"{SERVICE}_readonly")
        # Writes through it are refused (the standby is read-only; so is the login).
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            reader.execute("INSERT INTO notes VALUES (1000, 'y')")


def test_reads_are_spread_over_every_replica(
    pooler: PgbouncerServer, replicas: list[ReplicaServer], stack: StackConfig,
    credentials: Credentials,
) -> None:  # fmt: skip
    """Four clients each holding a transaction need four server connections: PgBouncer opens
    them on the replicas in turn, and never on the primary."""
    url = env_urls(pooler, stack, credentials)["READONLY_DATABASE_URL"]
    clients = [psycopg.connect(url) for _ in range(4)]
    try:
        served = {
            str(conn.execute("SELECT current_setting('cluster_name')").fetchone()[0])  # type: ignore[index]
            for conn in clients
        }
    finally:
        for conn in clients:
            conn.close()
    assert served == {r.name for r in replicas}


def test_the_replication_login_replicates_and_reaches_no_database(
    postgres: PostgresServer, replicas: list[ReplicaServer], credentials: Credentials
) -> None:
    user, password = pg_files.REPLICATION_USER, credentials.postgres_replication
    for database in ("postgres", SERVICE, naming.TOOLING_DATABASE):
        with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):
            psycopg.connect(postgres.url(user, password, database), connect_timeout=5)
    # Its one use: a replication connection to the primary.
    with psycopg.connect(postgres.url(user, password), replication="true", autocommit=True) as conn:
        assert conn.execute("IDENTIFY_SYSTEM").fetchone() is not None
    # No service login can open one; nor can the admin.
    others = {
        f"{SERVICE}_readonly": credentials.for_service(SERVICE).readonly,
        "platform_admin": credentials.postgres_admin,
    }
    for login, secret in others.items():
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(postgres.url(login, secret), replication="true", connect_timeout=5)
    # The role itself holds nothing but LOGIN REPLICATION.
    attributes = postgres.superuser_psql(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolbypassrls, rolreplication,"
        " (SELECT count(*) FROM pg_auth_members WHERE member = r.oid) FROM pg_roles r"
        " WHERE rolname = 'platform_replication'"
    )
    assert attributes == "f|f|f|f|f|t|0"


def lag_stack(root: Path) -> Path:
    """The dev stack file with two replicas (its services stay as they are on the server)."""
    document = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())
    document["config"]["persistence:postgres"] = {"replicas": REPLICAS}
    path = root / "Pulumi.lag.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def db_lag(
    root: Path, postgres: PostgresServer, credentials: Credentials, *extra: str
) -> subprocess.CompletedProcess[str]:
    admin = f"postgresql://platform_admin@{postgres.host}:{postgres.port}/postgres"
    return cli(
        "db", "lag", "--stack", str(lag_stack(root)), "--admin-url", admin, *extra,
        env={"PERSISTENCE_ADMIN_PASSWORD": credentials.postgres_admin},
    )  # fmt: skip


def test_db_lag_reports_each_replica_and_fails_when_one_lags(
    postgres: PostgresServer, replicas: list[ReplicaServer], credentials: Credentials,
    tmp_path: Path,
) -> None:  # fmt: skip
    wait_for_replay(replicas, postgres)
    ok = db_lag(tmp_path, postgres, credentials)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    lines = {line.split()[0]: line.split() for line in ok.stdout.splitlines()[1:-1]}
    assert set(lines) == {"replica_1", "replica_2"}, ok.stdout
    assert all(row[1] == "streaming" and row[-1] == "ok" for row in lines.values()), ok.stdout
    assert credentials.postgres_admin not in ok.stdout + ok.stderr

    # Replica 1 stops replaying while the primary keeps writing: past a 2 s limit, it fails
    # (and only it: the other keeps replaying, well within 2 s even on a busy machine).
    replicas[0].superuser_psql("SELECT pg_wal_replay_pause()")
    try:
        writes = threading.Event()

        def write() -> None:
            while not writes.is_set():
                postgres.superuser_psql(
                    "CREATE TABLE IF NOT EXISTS t (x int); INSERT INTO t VALUES (1)"
                )
                time.sleep(0.1)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            time.sleep(5)
            behind = db_lag(tmp_path, postgres, credentials, "--max-lag-seconds", "2")
        finally:
            writes.set()
            writer.join()
    finally:
        replicas[0].superuser_psql("SELECT pg_wal_replay_resume()")
    assert behind.returncode == 1, behind.stdout + behind.stderr
    assert "FAIL: replica_1: replay" in behind.stdout, behind.stdout
    failures = [line for line in behind.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failures) == 1, behind.stdout


def test_db_lag_names_a_slot_left_by_a_removed_replica(
    postgres: PostgresServer, replicas: list[ReplicaServer], credentials: Credentials,
    tmp_path: Path,
) -> None:  # fmt: skip
    """postgres.replicas went from 3 to 2: replica 3's slot still holds WAL for nobody."""
    postgres.superuser_psql("SELECT pg_create_physical_replication_slot('replica_3', true)")
    try:
        wait_for_replay(replicas, postgres)
        orphan = db_lag(tmp_path, postgres, credentials)
        assert orphan.returncode == 1, orphan.stdout
        (failure,) = [line for line in orphan.stdout.splitlines() if line.startswith("FAIL")]
        assert failure.startswith("FAIL: replica_3: a slot of no declared replica"), failure
        assert "pg_drop_replication_slot('replica_3')" in failure
        assert "docker exec persistence-lag-postgres psql -U postgres" in failure
    finally:
        postgres.superuser_psql("SELECT pg_drop_replication_slot('replica_3')")
    assert db_lag(tmp_path, postgres, credentials).returncode == 0


def walreceivers(replicas: list[ReplicaServer]) -> list[int]:
    """The replicas' WAL receiver processes (their titles carry the replica's cluster_name)."""
    found = subprocess.run(["pgrep", "-f", "walreceiver"], capture_output=True, text=True)
    pids = [int(pid) for pid in found.stdout.split()]
    names = {r.name for r in replicas}
    return [
        pid
        for pid in pids
        if any(f"{name}: walreceiver" in Path(f"/proc/{pid}/cmdline").read_text() for name in names)
    ]


def test_synchronous_commits_wait_for_a_replica_and_are_on_it_once_acknowledged(
    postgres: PostgresServer, replicas: list[ReplicaServer], stack: StackConfig,
    credentials: Credentials, tmp_path: Path,
) -> None:  # fmt: skip
    """postgres.synchronous: the rendered replication.conf, reloaded into the running primary
    (no restart): while no replica receives WAL, a commit is not acknowledged; once one is, the
    row is on a replica's disk."""
    synchronous = replace(stack, postgres=replace(stack.postgres, synchronous=True))
    conf = postgres.conf / pg_files.REPLICATION_CONFIG_NAME
    backend = postgres.superuser_psql("SELECT pg_postmaster_start_time()")
    app = credentials.for_service(SERVICE).app
    url = postgres.url(f"{SERVICE}_app", app, SERVICE)
    migrator = postgres.url(
        f"{SERVICE}_migrator", credentials.for_service(SERVICE).migrator, SERVICE
    )
    with psycopg.connect(migrator, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS acks (id int PRIMARY KEY)")
    conf.write_text(pg_files.replication_conf(synchronous))
    paused: list[int] = []
    try:
        postgres.superuser_psql("SELECT pg_reload_conf()")
        expected = "ANY 1 (replica_1, replica_2)"
        deadline = time.monotonic() + 5
        while postgres.superuser_psql("SHOW synchronous_standby_names") != expected:
            assert time.monotonic() < deadline, "the reload did not take the setting"
            time.sleep(0.05)
        lag = db_lag(tmp_path, postgres, credentials)
        assert lag.stdout.count(" quorum ") == REPLICAS, lag.stdout
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO acks VALUES (1)")  # both replicas answer: acknowledged

        paused = walreceivers(replicas)
        assert len(paused) == REPLICAS, paused
        for pid in paused:
            os.kill(pid, signal.SIGSTOP)
        done = threading.Event()

        def commit() -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("INSERT INTO acks VALUES (2)")
            done.set()

        writer = threading.Thread(target=commit)
        writer.start()
        assert not done.wait(3), "a commit was acknowledged while no replica received it"
        for pid in paused:
            os.kill(pid, signal.SIGCONT)
        paused = []
        assert done.wait(10), "the commit was not acknowledged once the replicas were back"
        writer.join()
    finally:
        for pid in paused:
            os.kill(pid, signal.SIGCONT)
        conf.write_text(pg_files.replication_conf(stack))
        postgres.superuser_psql("SELECT pg_reload_conf()")
    assert postgres.superuser_psql("SELECT pg_postmaster_start_time()") == backend, "restarted"
    wait_for_replay(replicas, postgres)
    rows = {r.name: r.superuser_psql("SELECT count(*) FROM acks", SERVICE) for r in replicas}
    assert set(rows.values()) == {"2"}, rows


def test_killing_a_replica_fails_no_write_and_reads_go_on_from_the_other(
    postgres: PostgresServer, pooler: PgbouncerServer, replicas: list[ReplicaServer],
    stack: StackConfig, credentials: Credentials, tmp_path: Path,
) -> None:  # fmt: skip
    """Runs last in the module: replica 1 is gone for good."""
    urls = env_urls(pooler, stack, credentials)
    with psycopg.connect(urls["MIGRATION_DATABASE_URL"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS beats (id serial PRIMARY KEY)")
    failed_writes: list[str] = []
    stop = threading.Event()

    def write() -> None:
        with psycopg.connect(urls["DATABASE_URL"], autocommit=True) as conn:
            while not stop.is_set():
                try:
                    conn.execute("INSERT INTO beats DEFAULT VALUES")
                except psycopg.Error as error:
                    failed_writes.append(str(error))
                time.sleep(0.002)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.5)
        replicas[0].kill()
        # New read clients, one after the other: once PgBouncer has given up on the dead one,
        # every read is served, by the replica that is left.
        served: list[str] = []
        deadline = time.monotonic() + 20
        while len(served) < 20:
            assert time.monotonic() < deadline, f"reads did not recover: {served}"
            try:
                with psycopg.connect(urls["READONLY_DATABASE_URL"], connect_timeout=10) as conn:
                    row = conn.execute("SELECT current_setting('cluster_name')").fetchone()
                    served.append(str(row[0]) if row else "")
            except psycopg.Error:
                served.clear()  # only an unbroken run of 20 counts
    finally:
        stop.set()
        writer.join()
    assert failed_writes == []
    assert set(served) == {replicas[1].name}
    gone = db_lag(tmp_path, postgres, credentials)
    assert gone.returncode == 1
    assert "FAIL: 1 of 2 declared replica(s) streaming" in gone.stdout, gone.stdout
    assert re.search(r"^replica_1 +not streaming .* FAIL$", gone.stdout, re.M), gone.stdout
