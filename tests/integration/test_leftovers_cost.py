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
import yaml

from infra import naming, secrets_file
from infra.backup import leftovers
from infra.commands.db import recover_restores
from infra.config import StackConfig
from infra.config.load import REPO_ROOT
from infra.config.model import ServiceSpec
from infra.credentials import Credentials
from infra.postgres import apply
from tests.conftest import render_to
from tests.integration.backup_helpers import admin_url_without_password, cli
from tests.servers.postgres import PostgresServer

COUNT = 12


@pytest.fixture(scope="module")
def stack(
    dev_config: StackConfig, dev_rendered: tuple[Path, Credentials]
) -> tuple[StackConfig, Credentials]:
    """COUNT services (their names are this module's own)."""
    services = tuple(ServiceSpec(name=f"cost_{i:02d}") for i in range(COUNT))
    limits = sum(
        s.connection_limits.app + s.connection_limits.migrator + s.connection_limits.readonly
        for s in services
    )  # the config refuses a max_connections that does not cover every service's limits
    needed = limits + dev_config.postgres.reserved_connections
    settings = replace(dev_config.postgres, max_connections=needed)
    config = replace(dev_config, services=services, postgres=settings)
    return config, dev_rendered[1].completed_for(config)


@pytest.fixture(scope="module")
def postgres(
    stack: tuple[StackConfig, Credentials], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PostgresServer]:
    """The module's own server, from the files rendered for its services (pg_hba.conf names
    each one's backup login), every connection and statement logged."""
    config, credentials = stack
    rendered = render_to(tmp_path_factory.mktemp("leftovers-rendered"), config, credentials)
    server = PostgresServer(
        rendered,
        config.postgres.admin_user,
        credentials.postgres_admin,
        settings={"log_connections": "on", "log_statement": "all"},
    ).initialise()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def many(
    postgres: PostgresServer, stack: tuple[StackConfig, Credentials]
) -> tuple[StackConfig, Credentials]:
    """The COUNT services, converged."""
    config, credentials = stack
    apply(postgres.admin_url, config, credentials)
    return config, credentials


@pytest.fixture(scope="module")
def options(
    postgres: PostgresServer,
    many: tuple[StackConfig, Credentials],
    tmp_path_factory: pytest.TempPathFactory,
) -> list[str]:
    """The CLI's options for the COUNT services: their stack file, secrets and admin URL."""
    config, credentials = many
    root = tmp_path_factory.mktemp("leftovers")
    document = yaml.safe_load((REPO_ROOT / "Pulumi.dev.yaml").read_text(encoding="utf-8"))
    document["config"]["persistence:services"] = [{"name": s.name} for s in config.services]
    document["config"]["persistence:postgres"] = {
        "max_connections": config.postgres.max_connections
    }
    stack = root / "Pulumi.leftovers.yaml"
    stack.write_text(yaml.safe_dump(document), encoding="utf-8")
    secrets_file.write(root / "secrets.json", credentials)
    url = admin_url_without_password(postgres, config.postgres.admin_user)
    return ["--stack", str(stack), "--secrets", str(root / "secrets.json"), "--admin-url", url]


class Connections:
    """The connections the server logged from here on, by database."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.start = len(server.log_text())

    def authorized(self) -> list[tuple[str, str]]:
        """(user, database) of every login."""
        return re.findall(r"connection authorized: user=(\S+) database=(\S+)", self.text())

    def opened(self) -> list[str]:
        return [database for _, database in self.authorized()]

    def logins(self, user: str) -> list[str]:
        """The databases ``user`` logged in to."""
        return [database for who, database in self.authorized() if who == user]

    def restore_locks(self) -> list[str]:
        """The services whose restore lock was tried or taken (the lock key is a parameter)."""
        return re.findall(r"'restore:([^']+)'", self.text())

    def text(self) -> str:
        return self.server.log_text()[self.start :]


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


def test_a_backup_of_every_service_with_nothing_left_behind_takes_no_restore_lock(
    postgres: PostgresServer, options: list[str], tmp_path: Path
) -> None:
    seen = Connections(postgres)
    code, out, err = cli("backup", *options, "--bucket", f"file://{tmp_path / 'bucket'}")
    assert code == 0, out + err
    assert out.count("postgres/cost_") == COUNT, out
    # Recovery and the safety step used to take each service's restore lock (two tooling
    # connections and a catalog read each) just to find nothing.
    assert seen.restore_locks() == [], seen.restore_locks()


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


def test_a_command_logs_the_admin_in_once_per_maintenance_database(
    postgres: PostgresServer,
    many: tuple[StackConfig, Credentials],
    options: list[str],
    tmp_path: Path,
) -> None:
    """Each catalog step of a command used to be a login of its own (a restore of one service
    made 19 admin logins to these two databases, 4 now): the command keeps its sessions there
    and hands them out again (infra.postgres.driver.reusing)."""
    config, _ = many
    admin = config.postgres.admin_user
    maintenance = ["persistence_tooling", "postgres"]
    seen = Connections(postgres)
    code, out, err = cli("db", "apply", *options)
    assert code == 0, out + err
    logins = [db for db in seen.logins(admin) if db in maintenance]
    # Two each at most: a step that holds its session (the converge's admin session, the
    # registry's lock) while another runs needs a second one.
    assert all(0 < logins.count(db) <= 2 for db in maintenance), logins

    bucket = f"file://{tmp_path / 'bucket'}"
    service = config.services[0].name
    for command in (["backup", "--service", service], ["verify"]):
        code, out, err = cli(*command, *options, "--bucket", bucket)
        assert code == 0, out + err
    seen = Connections(postgres)
    code, out, err = cli("restore", "--service", service, *options, "--bucket", bucket)
    assert code == 0, out + err
    logins = [db for db in seen.logins(admin) if db in maintenance]
    # The restore holds two locks in the tooling database (the service's restore lock, its tool
    # login's) while its other steps run; the tool login holds no admin session while in use,
    # so every admin step on postgres shares one login.
    assert logins.count("postgres") == 1, logins
    assert 0 < logins.count("persistence_tooling") <= 3, logins
