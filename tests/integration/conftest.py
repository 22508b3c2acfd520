"""Real servers for integration tests, started from the rendered dev files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.config import StackConfig
from infra.credentials import Credentials
from infra.postgres import apply
from tests.integration.backup_helpers import (
    cli_options,
    seed,
)
from tests.servers.postgres import PostgresServer
from tests.servers.rabbitmq import RabbitmqServer
from tests.servers.redis import RedisServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def postgres(
    dev_rendered: tuple[Path, Credentials], dev_config: StackConfig
) -> Iterator[PostgresServer]:
    """A PostgreSQL 15 server from the rendered dev files; statements logged for inspection."""
    rendered, credentials = dev_rendered
    server = PostgresServer(
        rendered,
        dev_config.postgres.admin_user,
        credentials.postgres_admin,
        settings={"log_statement": "all"},
    ).initialise()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def redis_server(dev_rendered: tuple[Path, Credentials]) -> Iterator[RedisServer]:
    """A redis-server from the rendered dev redis.conf and users.acl."""
    rendered, _ = dev_rendered
    server = RedisServer(rendered).start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def rabbitmq_server(
    dev_rendered: tuple[Path, Credentials], dev_config: StackConfig
) -> Iterator[RabbitmqServer]:
    """A RabbitMQ node from the rendered dev rabbitmq.conf, enabled_plugins and definitions."""
    rendered, credentials = dev_rendered
    server = RabbitmqServer(
        rendered, dev_config.rabbitmq.admin_user, credentials.rabbitmq_admin
    ).start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def common(
    postgres: PostgresServer, dev_rendered: tuple[Path, Credentials], dev_config: StackConfig
) -> list[str]:
    """The CLI's stack, secrets and admin options for the backup commands, on a converged
    server whose ``users`` database holds data (a module may define its own instead)."""
    rendered, credentials = dev_rendered
    apply(postgres.admin_url, dev_config, credentials)
    seed(postgres, credentials, "users")
    return cli_options(postgres, rendered, dev_config.postgres.admin_user)
