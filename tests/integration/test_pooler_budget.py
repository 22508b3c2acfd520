"""The server's budget holds however many clients connect: issue 24's proof, with real servers.

30 services with ``connection_limits: {app: 2, migrator: 1, readonly: 2}`` on a PostgreSQL with
``max_connections: 200``; 20 clients per service (600, three times ``max_connections``) run
transactions through their ``DATABASE_URL`` (the pooler) for 30 seconds. None fails, and the
server never holds more than 200 connections.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import psycopg
import pytest

from infra import naming
from infra.config.model import ConnectionLimits, ServiceSpec, StackConfig
from infra.credentials import Credentials
from infra.postgres import apply
from tests.conftest import render_to
from tests.integration.pooler_support import peak_backends_while
from tests.servers.pgbouncer import PgbouncerServer
from tests.servers.postgres import PostgresServer

SERVICES = [f"svc{i:02d}" for i in range(30)]
CLIENTS_PER_SERVICE = 20
RUN_S = 30.0
MAX_CONNECTIONS = 200


@pytest.fixture(scope="module")
def stack(dev_config: StackConfig) -> StackConfig:
    limits = ConnectionLimits(app=2, migrator=1, readonly=2)
    return replace(
        dev_config,
        services=tuple(ServiceSpec(name=name, connection_limits=limits) for name in SERVICES),
        postgres=replace(dev_config.postgres, max_connections=MAX_CONNECTIONS),
    )


@pytest.fixture(scope="module")
def servers(
    stack: StackConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PostgresServer, PgbouncerServer, Credentials]]:
    root = tmp_path_factory.mktemp("budget")
    credentials = Credentials.generate().completed_for(stack)
    rendered = render_to(root / "out", stack, credentials)
    postgres = PostgresServer(
        rendered, stack.postgres.admin_user, credentials.postgres_admin
    ).initialise()
    pooler = PgbouncerServer(postgres.port, root / "pgbouncer")
    try:
        apply(postgres.admin_url, stack, credentials)
        pooler.write(stack, credentials)
        pooler.start()
        yield postgres, pooler, credentials
    finally:
        pooler.cleanup()
        postgres.cleanup()


def test_600_clients_on_a_200_connection_server_run_for_30s_without_an_error(
    servers: tuple[PostgresServer, PgbouncerServer, Credentials],
    record_property: Callable[[str, object], None],
) -> None:
    postgres, pooler, credentials = servers
    with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
        assert admin.execute("SHOW max_connections").fetchone() == (str(MAX_CONNECTIONS),)
    errors: list[str] = []
    transactions = [0] * (len(SERVICES) * CLIENTS_PER_SERVICE)
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
        for i, service in enumerate(SERVICES)
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
    assert peak <= len(SERVICES) * 2 + 10, peak
