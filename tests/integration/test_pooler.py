"""PgBouncer in front of real PostgreSQL, from the rendered files: what the env files promise.

Every service's DATABASE_URL and READONLY_DATABASE_URL go through the pooler (transaction
mode); each service authenticates as its own login, end to end, with no password in any file
the pooler reads. These tests run the dev stack's own pooler image against a test server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
import sqlalchemy
from psycopg_pool import ConnectionPool

from infra import naming
from infra.config.model import ConnectionLimits, ServiceSpec, StackConfig
from infra.credentials import Credentials
from infra.hashes import scram_sha256_verifier
from infra.postgres import apply
from infra.render import pgbouncer as pooler_files
from tests.conftest import render_to
from tests.e2e.dockerd import DockerEngine
from tests.integration.pooler_support import peak_backends_while
from tests.integration.postgres_support import cli
from tests.servers.pgbouncer import PgbouncerServer
from tests.servers.postgres import PostgresServer

JDBC_CLIENT = Path(__file__).resolve().parents[1] / "clients" / "jdbc"
SERVICES = ("users", "events")  # in the test server's pg_hba.conf (the dev stack's)


def with_services(config: StackConfig, *names: str, app: int = 4) -> StackConfig:
    limits = ConnectionLimits(app=app, migrator=2, readonly=2)
    return replace(
        config, services=tuple(ServiceSpec(name=n, connection_limits=limits) for n in names)
    )


@pytest.fixture(scope="module")
def stack(dev_config: StackConfig) -> StackConfig:
    return with_services(dev_config, *SERVICES)


@pytest.fixture(scope="module")
def credentials(dev_rendered: tuple[Path, Credentials], stack: StackConfig) -> Credentials:
    return dev_rendered[1].completed_for(stack)


@pytest.fixture(scope="module")
def pooler(
    postgres: PostgresServer,
    stack: StackConfig,
    credentials: Credentials,
    tmp_path_factory: pytest.TempPathFactory,
    docker_engine: DockerEngine,
) -> Iterator[PgbouncerServer]:
    apply(postgres.admin_url, stack, credentials)
    server = PgbouncerServer(postgres, tmp_path_factory.mktemp("pgbouncer") / "etc")
    server.write(stack, credentials)
    server.start()
    yield server
    server.cleanup()


def login(pooler: PgbouncerServer, credentials: Credentials, service: str, kind: str = "app",
          database: str | None = None) -> str:  # fmt: skip
    password = credentials.for_service(service).postgres_password(kind)
    return pooler.url(
        naming.role_name(service, kind), password, database or naming.database_name(service)
    )


def refusal(url: str) -> str:
    """The error of a login and one query through ``url`` (PgBouncer may accept a client before
    it logs in to the server: the query is what needs a server connection)."""
    with (
        pytest.raises(psycopg.Error) as refused,
        psycopg.connect(url, connect_timeout=10) as conn,
    ):
        conn.execute("SELECT 1")
    return str(refused.value)


def eventually_current_user(url: str, timeout: float = 10) -> str:
    """The server-side login of a query through ``url``, retried while PgBouncer catches up (a
    reload is read asynchronously; a failed server login is retried after server_login_retry)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                row = conn.execute("SELECT current_user").fetchone()
                return str(row[0]) if row else ""
        except psycopg.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_service_works_through_the_pooler_with_prepared_statements(
    pooler: PgbouncerServer, credentials: Credentials
) -> None:
    """psycopg prepares a statement after 5 runs (its default): in transaction mode each
    transaction may get another server connection, which PgBouncer 1.21+ handles."""
    migrator = credentials.for_service("users").migrator
    direct = f"postgresql://users_migrator:{migrator}@127.0.0.1:{pooler.postgres.port}/users"
    with psycopg.connect(direct) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, name text)")
    with psycopg.connect(login(pooler, credentials, "users")) as conn:
        for i in range(20):
            with conn.transaction():
                conn.execute("INSERT INTO items VALUES (%s, %s) ON CONFLICT DO NOTHING", (i, "x"))
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (20,)
        # The server logged in as the service's own app login, not a shared pooler login.
        assert conn.execute("SELECT current_user").fetchone() == ("users_app",)
    with psycopg.connect(login(pooler, credentials, "users", "readonly")) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (20,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO items VALUES (100, 'y')")


def test_a_service_reaches_only_its_own_database_through_the_pooler(
    pooler: PgbouncerServer, credentials: Credentials
) -> None:
    # Another service's database: PgBouncer has a pool for it, the server's hba refuses.
    other = refusal(login(pooler, credentials, "users", database="events"))
    # PgBouncer reaches the server through its socket (as in the dev stack), where the events
    # database's CONNECT privilege refuses users' login (as on Cloud SQL).
    assert 'permission denied for database "events"' in other
    # A database the pooler has no pool for (no "*" fallback).
    assert "no such database" in refusal(login(pooler, credentials, "users", database="postgres"))
    # A wrong password.
    wrong = pooler.url("users_app", "not-the-password", "users")
    assert "authentication failed" in refusal(wrong)
    # The migrator is not pooled at all: migrations go straight to the server.
    assert "authentication failed" in refusal(login(pooler, credentials, "users", "migrator"))


def test_the_console_takes_the_pooler_admin_only(
    pooler: PgbouncerServer, credentials: Credentials
) -> None:
    for service in SERVICES:
        url = login(pooler, credentials, service, database=pooler_files.CONSOLE_DATABASE)
        assert "not allowed" in refusal(url), service
    console = pooler.url(
        pooler_files.CONSOLE_USER, credentials.pooler_admin, pooler_files.CONSOLE_DATABASE
    )
    with psycopg.connect(console, autocommit=True, prepare_threshold=None) as conn:
        databases = {row[0] for row in conn.execute("SHOW DATABASES").fetchall()}
    assert set(SERVICES) <= databases


def test_the_auth_file_holds_verifiers_not_passwords(
    pooler: PgbouncerServer, credentials: Credentials
) -> None:
    text = (pooler.root / "userlist.txt").read_text()
    assert (pooler.root / "userlist.txt").stat().st_mode & 0o077 == 0
    for service in SERVICES:
        for password in credentials.for_service(service).postgres_passwords().values():
            assert password not in text
    assert credentials.pooler_admin not in text
    # The console's (a password like the admins': PostgreSQL's 4096 iterations), then every
    # pooled login's (generated, 256 random bits: 1024, see hashes.SERVICE_LOGIN_ITERATIONS).
    assert text.count("SCRAM-SHA-256$4096:") == 1
    assert text.count("SCRAM-SHA-256$1024:") == 2 * len(SERVICES)


def test_a_login_never_holds_more_server_connections_than_its_limit(
    pooler: PgbouncerServer, postgres: PostgresServer, credentials: Credentials
) -> None:
    """20 clients of one service run transactions at once: none fails, and the server never
    sees more of its app login's connections than ``connection_limits.app`` (4)."""
    errors: list[BaseException] = []

    def client() -> None:
        try:
            with psycopg.connect(login(pooler, credentials, "events")) as conn:
                for _ in range(10):
                    with conn.transaction():
                        conn.execute("SELECT pg_sleep(0.02)")
        except BaseException as error:
            errors.append(error)

    clients = [threading.Thread(target=client) for _ in range(20)]
    peak = peak_backends_while(postgres.admin_url, clients, "events_app")
    assert not errors, errors[:3]
    assert 1 <= peak <= 4, peak


def test_a_reload_for_a_new_service_keeps_other_clients_connected(
    pooler: PgbouncerServer, postgres: PostgresServer, stack: StackConfig, credentials: Credentials
) -> None:
    """Adding a service reloads the pooler (SIGHUP), never restarts it: an open client stays."""
    with psycopg.connect(login(pooler, credentials, "users")) as conn:
        conn.execute("SELECT 1")
        bigger = with_services(stack, *SERVICES, "audit")
        more = credentials.completed_for(bigger)
        apply(postgres.admin_url, bigger, more)
        pooler.write(bigger, more)
        pooler.reload()
        # The new service is reachable through the pooler as soon as the reload is read.
        assert eventually_current_user(login(pooler, more, "audit")) == "audit_app"
        assert conn.execute("SELECT current_user").fetchone() == ("users_app",)
    pooler.write(stack, credentials)
    pooler.reload()


def test_a_rotated_password_takes_effect_through_the_pooler_in_one_apply(
    pooler: PgbouncerServer, postgres: PostgresServer, stack: StackConfig, credentials: Credentials
) -> None:
    old = login(pooler, credentials, "events")
    psycopg.connect(old).close()
    rotated = credentials.rotated("events")
    apply(postgres.admin_url, stack, rotated)
    pooler.write(stack, rotated)
    pooler.reload()
    assert eventually_current_user(login(pooler, rotated, "events")) == "events_app"
    assert "authentication failed" in refusal(old)
    apply(postgres.admin_url, stack, credentials)
    pooler.write(stack, credentials)
    pooler.reload()


def test_a_login_set_before_the_pooler_existed_is_brought_in_line_by_apply(
    pooler: PgbouncerServer, postgres: PostgresServer, stack: StackConfig, credentials: Credentials
) -> None:
    """A stack provisioned before the pooler has verifiers with random salts: the password
    works, but PgBouncer cannot log in with the client's keys. The next apply sets it again."""
    password = credentials.for_service("users").readonly
    postgres.superuser_psql(
        f"ALTER ROLE users_readonly PASSWORD '{scram_sha256_verifier(password)}';"
        "COMMENT ON ROLE users_readonly IS 'managed-by=persistence password-version=1'"
    )
    url = login(pooler, credentials, "users", "readonly")
    # PgBouncer keeps a pooled server connection: drop them so the next login is a new one.
    with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
        sessions = "FROM pg_stat_activity WHERE usename = 'users_readonly'"
        admin.execute(f"SELECT pg_terminate_backend(pid) {sessions}")
        while admin.execute(f"SELECT count(*) {sessions}").fetchone() != (0,):
            time.sleep(0.05)
    assert "password authentication failed" in refusal(url)
    apply(postgres.admin_url, stack, credentials)
    assert eventually_current_user(url) == "users_readonly"


def test_one_service_saturating_its_pool_does_not_slow_another(
    pooler: PgbouncerServer, credentials: Credentials
) -> None:
    """Every server connection of users' app login sleeps; events' queries stay fast."""
    sleepers = []
    for _ in range(8):  # twice its pool (4): four run, four wait in the pooler
        conn = psycopg.connect(login(pooler, credentials, "users"), autocommit=True)
        sleepers.append((conn, threading.Thread(target=conn.execute, args=("SELECT pg_sleep(3)",))))
    for _, thread in sleepers:
        thread.start()
    time.sleep(0.5)
    with psycopg.connect(login(pooler, credentials, "events")) as conn:
        started = time.monotonic()
        for _ in range(20):
            conn.execute("SELECT 1")
        took = time.monotonic() - started
    for conn, thread in sleepers:
        thread.join()
        conn.close()
    assert took < 1.0, f"20 queries of another service took {took:.2f}s"


def test_db_pools_shows_a_service_waiting_for_its_pool(
    pooler: PgbouncerServer, credentials: Credentials
) -> None:
    """``python -m infra db pools`` as a user runs it: six clients of events' app login (its
    pool is 4) all in pg_sleep, so four hold server connections and two wait."""
    sleepers = []
    for _ in range(6):
        conn = psycopg.connect(login(pooler, credentials, "events"), autocommit=True)
        sleepers.append((conn, threading.Thread(target=conn.execute, args=("SELECT pg_sleep(4)",))))
    for _, thread in sleepers:
        thread.start()
    time.sleep(1.5)
    console = pooler.url(
        pooler_files.CONSOLE_USER, credentials.pooler_admin, pooler_files.CONSOLE_DATABASE
    )
    result = cli("db", "pools", "--stack", "dev", env={"POOLER_CONSOLE_URL": console})
    for conn, thread in sleepers:
        thread.join()
        conn.close()
    assert result.returncode == 0, result.stderr
    assert credentials.pooler_admin not in result.stdout + result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[1:]}
    clients, servers, waiting, longest = rows["events"]
    assert (int(clients), int(servers), int(waiting)) == (6, 4, 2), result.stdout
    assert float(longest) >= 1.0, result.stdout
    assert rows["auth"][:3] == ["0", "0", "0"], "a service with no pool shows nothing"


def test_db_pools_with_a_wrong_console_password_is_one_clean_line(
    pooler: PgbouncerServer,
) -> None:
    console = pooler.url(pooler_files.CONSOLE_USER, "wrong-password", "pgbouncer")
    result = cli("db", "pools", "--stack", "dev", env={"POOLER_CONSOLE_URL": console})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "wrong-password" not in lines[0]
    assert "PgBouncer console" in lines[0], lines
    assert "authentication failed" in lines[0], lines


# The clients a service uses, with the URLs as the env file gives them. Each test uses its own
# service of the two, and its own table.


def env_urls(pooler: PgbouncerServer, credentials: Credentials, service: str) -> dict[str, str]:
    """The service's env-file URLs, pointed at the test's pooler and server."""
    migrator = credentials.for_service(service).migrator
    return {
        "DATABASE_URL": login(pooler, credentials, service, "app"),
        "READONLY_DATABASE_URL": login(pooler, credentials, service, "readonly"),
        "MIGRATION_DATABASE_URL": (
            f"postgresql://{naming.role_name(service, 'migrator')}:{migrator}"
            f"@127.0.0.1:{pooler.postgres.port}/{naming.database_name(service)}"
        ),
    }


def test_psycopg_pool_works_through_the_pooler(
    pooler: PgbouncerServer, credentials: Credentials
) -> None:
    urls = env_urls(pooler, credentials, "users")
    with psycopg.connect(urls["MIGRATION_DATABASE_URL"]) as conn:
        conn.execute("CREATE TABLE pool_hits (worker int, n int)")
    errors: list[BaseException] = []
    with ConnectionPool(urls["DATABASE_URL"], min_size=2, max_size=8, open=True) as pool:

        def work(worker: int) -> None:
            try:
                for n in range(10):
                    with pool.connection() as conn:
                        conn.execute("INSERT INTO pool_hits VALUES (%s, %s)", (worker, n))
            except BaseException as error:  # the worker's failure, reported below
                errors.append(error)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors, errors[:3]
    with psycopg.connect(urls["READONLY_DATABASE_URL"]) as conn:
        assert conn.execute("SELECT count(*) FROM pool_hits").fetchone() == (160,)


def test_sqlalchemy_and_alembic_work_with_the_urls_as_given(
    pooler: PgbouncerServer, credentials: Credentials, tmp_path: Path
) -> None:
    """``alembic upgrade head`` (the command, as a team runs it) through
    MIGRATION_DATABASE_URL; then SQLAlchemy through DATABASE_URL and READONLY_DATABASE_URL."""
    urls = env_urls(pooler, credentials, "events")
    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(ALEMBIC_ENV)
    (scripts / "script.py.mako").write_text("")
    (scripts / "versions" / "0001_notes.py").write_text(ALEMBIC_REVISION)
    (tmp_path / "alembic.ini").write_text(f"[alembic]\nscript_location = {scripts}\n")
    environment = {**os.environ, "MIGRATION_DATABASE_URL": urls["MIGRATION_DATABASE_URL"]}
    upgraded = subprocess.run(
        [str(Path(sys.executable).with_name("alembic")), "upgrade", "head"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr
    app = sqlalchemy.create_engine(sqlalchemy_url(urls["DATABASE_URL"]))
    notes = sqlalchemy.table("notes", sqlalchemy.column("id"), sqlalchemy.column("body"))
    with app.begin() as conn:
        for i in range(12):  # past psycopg's prepare threshold, one transaction each below
            conn.execute(sqlalchemy.insert(notes).values(body=f"note {i}"))
    for i in range(12):
        with app.begin() as conn:
            found = conn.execute(
                sqlalchemy.select(notes.c.id).where(notes.c.body == f"note {i}")
            ).all()
            assert len(found) == 1
    app.dispose()
    readonly = sqlalchemy.create_engine(sqlalchemy_url(urls["READONLY_DATABASE_URL"]))
    with readonly.connect() as conn:
        assert conn.execute(sqlalchemy.text("SELECT count(*) FROM notes")).scalar() == 12
        with pytest.raises(sqlalchemy.exc.ProgrammingError, match="permission denied"):
            conn.execute(sqlalchemy.text("DELETE FROM notes"))
    readonly.dispose()


def sqlalchemy_url(url: str) -> str:
    """An env file's libpq URL as SQLAlchemy takes it for psycopg 3: only the scheme changes."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


ALEMBIC_ENV = """
import os

import sqlalchemy
from alembic import context

url = os.environ["MIGRATION_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
engine = sqlalchemy.create_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""
ALEMBIC_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table(
        "notes",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
    )
"""


def test_flyway_and_jdbc_work_with_the_urls_as_given(
    pooler: PgbouncerServer, credentials: Credentials
) -> None:
    """A Java service: Flyway through MIGRATION_DATABASE_URL, then the JDBC driver with its
    default server-side prepared statements through DATABASE_URL (tests/clients/jdbc)."""
    built = subprocess.run(
        ["mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(JDBC_CLIENT / "pom.xml"), "package"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    classpath = f"{JDBC_CLIENT / 'target' / 'classes'}:{JDBC_CLIENT / 'target' / 'lib' / '*'}"
    urls = env_urls(pooler, credentials, "users")
    ran = subprocess.run(
        ["java", "-cp", classpath, "local.persistence.Client", str(JDBC_CLIENT / "migrations")],
        env={**os.environ, **urls}, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert ran.stdout.strip().splitlines()[-1] == "ok 20"
    for password in urls.values():
        assert password.split("@")[0] not in ran.stdout + ran.stderr


def test_prepared_statements_follow_a_client_to_another_server_connection(
    pooler: PgbouncerServer, credentials: Credentials
) -> None:
    """A client's prepared statement (psycopg prepares from the fifth run) keeps working when
    its next transaction gets another server connection: another client holds the one it had,
    so each of its transactions runs on a different backend."""
    url = login(pooler, credentials, "users")
    with psycopg.connect(url) as mover, psycopg.connect(url) as holder:
        backends = set()
        for i in range(12):
            # The holder takes the connection the mover released last and gives its own back
            # first, so the two swap server connections every round.
            holder.execute("SELECT 1")
            (pid,) = mover.execute("SELECT pg_backend_pid()").fetchone() or (0,)
            backends.add(pid)
            assert mover.execute("SELECT %s::int * 2", (i,)).fetchone() == (i * 2,)
            holder.commit()
            mover.commit()
        assert len(backends) > 1, "the mover never changed server connection"
        assert mover.prepare_threshold is not None
        assert mover.prepare_threshold < 12, "psycopg prepared the statement"


# The server's budget holds however many clients connect: issue 24's proof, with real servers.
# 30 services with ``connection_limits: {app: 2, migrator: 1, readonly: 2}`` on a PostgreSQL with
# ``max_connections: 200``; 20 clients per service (600, three times ``max_connections``) run
# transactions through their ``DATABASE_URL`` (the pooler) for 30 seconds. None fails, and the
# server never holds more than 200 connections.

BUDGET_SERVICES = [f"svc{i:02d}" for i in range(30)]
CLIENTS_PER_SERVICE = 20
RUN_S = 30.0
MAX_CONNECTIONS = 200


@pytest.fixture(scope="module")
def budget_stack(dev_config: StackConfig) -> StackConfig:
    limits = ConnectionLimits(app=2, migrator=1, readonly=2)
    return replace(
        dev_config,
        services=tuple(
            ServiceSpec(name=name, connection_limits=limits) for name in BUDGET_SERVICES
        ),
        postgres=replace(dev_config.postgres, max_connections=MAX_CONNECTIONS),
    )


@pytest.fixture(scope="module")
def budget_servers(
    budget_stack: StackConfig,
    tmp_path_factory: pytest.TempPathFactory,
    docker_engine: DockerEngine,
) -> Iterator[tuple[PostgresServer, PgbouncerServer, Credentials]]:
    root = tmp_path_factory.mktemp("budget")
    credentials = Credentials.generate().completed_for(budget_stack)
    rendered = render_to(root / "out", budget_stack, credentials)
    postgres = PostgresServer(
        rendered, budget_stack.postgres.admin_user, credentials.postgres_admin
    ).initialise()
    pooler = PgbouncerServer(postgres, root / "pgbouncer")
    try:
        apply(postgres.admin_url, budget_stack, credentials)
        pooler.write(budget_stack, credentials)
        pooler.start()
        yield postgres, pooler, credentials
    finally:
        pooler.cleanup()
        postgres.cleanup()


def test_600_clients_on_a_200_connection_server_run_for_30s_without_an_error(
    budget_servers: tuple[PostgresServer, PgbouncerServer, Credentials],
    record_property: Callable[[str, object], None],
) -> None:
    postgres, pooler, credentials = budget_servers
    with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
        assert admin.execute("SHOW max_connections").fetchone() == (str(MAX_CONNECTIONS),)
    errors: list[str] = []
    transactions = [0] * (len(BUDGET_SERVICES) * CLIENTS_PER_SERVICE)
    deadline = time.monotonic() + RUN_S

    def client(index: int, service: str) -> None:
        password = credentials.for_service(service).app
        url = pooler.url(naming.role_name(service, "app"), password, service)
        try:
            with psycopg.connect(url, connect_timeout=30) as conn:
                while time.monotonic() < deadline:
                    with conn.transaction():
                        conn.execute("SELECT pg_sleep(0.005)")
                    transactions[index] += 1
        except psycopg.Error as error:
            errors.append(f"{service}: {error}")

    clients = [
        threading.Thread(target=client, args=(i * CLIENTS_PER_SERVICE + j, service))
        for i, service in enumerate(BUDGET_SERVICES)
        for j in range(CLIENTS_PER_SERVICE)
    ]
    # Backends of every kind (the watcher's own included).
    peak = peak_backends_while(postgres.admin_url, clients)
    record_property("measured:transactions", sum(transactions))
    record_property("measured:peak server connections", peak)
    assert not errors, f"{len(errors)} errors, e.g. {errors[:3]}"
    assert all(transactions), "every client got transactions through"
    # Never past max_connections, and within the services' app pools (2 each) plus the few
    # the tooling holds.
    assert peak <= MAX_CONNECTIONS, peak
    assert peak <= len(BUDGET_SERVICES) * 2 + 10, peak
