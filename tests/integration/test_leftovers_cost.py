"""Looking for what restores left behind costs the same for 1 service as for 200 (issue 22).

``db apply``, ``backup`` and ``restore`` first look for restores killed half way, and ``backup``
for replaced copies still waiting for a safety dump. That look used to take a restore lock and
read the catalog and the registry per service: several connections each, seconds at 200
services before any work began. Now it is one catalog query and one registry query, and only a
service where something was found pays for its own recovery. The server's own connection log
(``log_connections``) counts what a run really opened, so a return to per-service connections
fails here whatever the code looks like.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from infra import naming
from infra.backup import leftovers
from infra.commands.db import recover_restores
from infra.config import StackConfig
from infra.config.model import ServiceSpec
from infra.credentials import Credentials
from infra.postgres import apply
from tests.servers.postgres import PostgresServer

COUNT = 12


@pytest.fixture(scope="module")
def postgres(
    dev_rendered: tuple[Path, Credentials], dev_config: StackConfig
) -> Iterator[PostgresServer]:
    """The module's own server, every connection logged."""
    rendered, credentials = dev_rendered
    server = PostgresServer(
        rendered,
        dev_config.postgres.admin_user,
        credentials.postgres_admin,
        settings={"log_connections": "on"},
    ).initialise()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def many(
    postgres: PostgresServer, dev_config: StackConfig, dev_rendered: tuple[Path, Credentials]
) -> tuple[StackConfig, Credentials]:
    """COUNT converged services (their names are this module's own)."""
    services = tuple(ServiceSpec(name=f"cost_{i:02d}") for i in range(COUNT))
    settings = replace(dev_config.postgres, max_connections=1000)
    config = replace(dev_config, services=services, postgres=settings)
    credentials = dev_rendered[1].completed_for(config)
    apply(postgres.admin_url, config, credentials)
    return config, credentials


class Connections:
    """The connections the server logged from here on, by database."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.start = len(server.log_text())

    def opened(self) -> list[str]:
        text = self.server.log_text()[self.start :]
        return re.findall(r"connection authorized: user=\S+ database=(\S+)", text)


def _datallowconn(server: PostgresServer, database: str) -> str:
    query = f"SELECT datallowconn FROM pg_database WHERE datname = '{database}'"  # noqa: S608 - our own names
    return server.superuser_psql(query)


def test_finding_no_interrupted_restore_costs_two_connections_for_any_number_of_services(
    postgres: PostgresServer, many: tuple[StackConfig, Credentials]
) -> None:
    config, _ = many
    seen = Connections(postgres)
    assert recover_restores(postgres.admin_url, config) == []
    opened = seen.opened()
    # One catalog query on postgres, one registry query on the tooling database: never per
    # service (the per-service look cost at least four connections each).
    assert sorted(opened) == ["persistence_tooling", "postgres"], opened


def test_only_the_service_with_a_killed_restore_takes_its_lock_and_is_recovered(
    postgres: PostgresServer, many: tuple[StackConfig, Credentials]
) -> None:
    config, _ = many
    victim = config.services[5].name
    # A restore killed while the live database was closed for the swap.
    postgres.superuser_psql(f'ALTER DATABASE "{victim}" WITH ALLOW_CONNECTIONS false')
    # Names that look like ours but are not: a stranger's copy, owned by the admin.
    stranger = naming.database_name(config.services[7].name) + naming.RESTORE_SUFFIX
    postgres.superuser_psql(f'CREATE DATABASE "{stranger}"')
    try:
        seen = Connections(postgres)
        assert recover_restores(postgres.admin_url, config) == []
        opened = seen.opened()
        assert _datallowconn(postgres, victim) == "t", "the victim accepts connections again"
        assert _datallowconn(postgres, stranger) == "t", "a stranger's database is left alone"
        # The look (2), then the victim's own recovery (its lock and its catalog reads): a
        # handful, not a handful per service.
        assert len(opened) <= 10, opened
    finally:
        postgres.superuser_psql(f'DROP DATABASE IF EXISTS "{stranger}"')
        postgres.superuser_psql(f'ALTER DATABASE "{victim}" WITH ALLOW_CONNECTIONS true')


def test_replaced_copies_waiting_for_a_safety_dump_are_found_in_one_look(
    postgres: PostgresServer, many: tuple[StackConfig, Credentials]
) -> None:
    config, _ = many
    names = [spec.name for spec in config.services]
    service, other = names[2], names[3]
    ours = naming.old_copy(service, datetime(2026, 1, 2, 3, 4, 5))
    theirs = naming.database_name(other) + naming.SAFETY_SUFFIX
    postgres.superuser_psql(f'CREATE DATABASE "{ours}" OWNER "{naming.owner_role(service)}"')
    postgres.superuser_psql(f'CREATE DATABASE "{theirs}"')  # the admin's: not the tool's
    try:
        seen = Connections(postgres)
        found = leftovers.find(postgres.admin_url, names)
        assert sorted(seen.opened()) == ["persistence_tooling", "postgres"]
        assert found.unsecured == {service}
        assert found.interrupted == set()
    finally:
        postgres.superuser_psql(f'DROP DATABASE IF EXISTS "{ours}"')
        postgres.superuser_psql(f'DROP DATABASE IF EXISTS "{theirs}"')
