"""Real servers for integration tests, started from the rendered dev files.

Which fixture to use (the fast path is the default; a test that needs more says why):

- ``postgres``: a fresh PostgreSQL 15 **per module**. Every module provisions the dev stack's
  own service names and asserts on the whole server (catalog-wide queries, "the server is
  empty", every database after a restore), so two modules cannot share one. It is cheap: the
  data directory is a copy of one bootstrapped per worker (``PostgresServer.initialise``).
  Tests inside a module share it: use your own service names (``one_service`` configs), or undo
  what you change. Need a second server (a restore target, a verifier)? ``PostgresServer(...)
  .initialise()`` and ``cleanup()`` it.
- ``redis_server``: one Valkey 8.0 server **per session** (per worker). Isolate by ACL user and key
  prefix; never FLUSHALL, restart, crash it or rewrite its ACL file. A module that must do that
  overrides ``redis_server`` with ``fresh_redis_server`` (see ``test_redis_durability.py``).
- ``rabbitmq_server``: one RabbitMQ node **per session** (booting one costs seconds of CPU).
  Isolate by vhost, queue and user names. A clean restart is allowed (the node comes back with
  the same state); a node booted from other definitions gets its own ``RabbitmqServer`` (see
  ``test_rabbitmq_prune.py``).
- ``docker_engine``: a Docker engine for the one module that runs a container (PgBouncer,
  ``test_pooler.py``), the running one or a ``dockerd`` started for the worker's session and
  stopped after it (by its PID). Keep every test that needs it in that module: under
  ``--dist loadscope`` a module runs on one worker, and a second worker would find, use and
  lose an engine it does not own.
- ``gcs``: the GCS emulator, one **per session**; the fixture points google-cloud-storage at it
  for the test only. Use a bucket prefix of your own (``gs://backups/<your-test>``).

Every server listens on a free loopback port (reserved across workers) and keeps its files in a
private temporary directory, so pytest-xdist workers never share anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.config import StackConfig
from infra.credentials import Credentials
from infra.postgres import apply
from tests.e2e.dockerd import DockerEngine, ensure_docker
from tests.integration.backup_helpers import (
    cli_options,
    seed,
)
from tests.servers.gcs import EMULATOR_ENV, GcsEmulator
from tests.servers.postgres import PostgresServer
from tests.servers.rabbitmq import RabbitmqServer
from tests.servers.redis import RedisServer


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what tests measured (``record_property("measured:...", value)``), e.g. the
    cluster's recovery time after a node loss; properties reach here from xdist workers too."""
    lines = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            for name, value in getattr(report, "user_properties", []):
                if str(name).startswith("measured:"):
                    lines.append(f"{report.nodeid}: {name[len('measured:') :]} = {value}")
    if lines:
        terminalreporter.section("measured")
        for line in sorted(lines):
            terminalreporter.line(line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def postgres(
    dev_rendered: tuple[Path, Credentials], dev_config: StackConfig
) -> Iterator[PostgresServer]:
    """A PostgreSQL 15 server of the module's own from the rendered dev files; statements
    logged for inspection."""
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
def empty_server(
    dev_rendered: tuple[Path, Credentials], dev_config: StackConfig
) -> Iterator[PostgresServer]:
    """A second, freshly initialised server (a disaster-recovery target, a router's other
    destination)."""
    rendered, credentials = dev_rendered
    server = PostgresServer(
        rendered, dev_config.postgres.admin_user, credentials.postgres_admin
    ).initialise()
    yield server
    server.cleanup()


def _redis(dev_rendered: tuple[Path, Credentials]) -> Iterator[RedisServer]:
    """A Valkey server from the rendered dev redis.conf and users.acl, removed afterwards."""
    server = RedisServer(dev_rendered[0]).start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def redis_server(dev_rendered: tuple[Path, Credentials]) -> Iterator[RedisServer]:
    """The session's Valkey server, shared by every module that does not need its own."""
    yield from _redis(dev_rendered)


@pytest.fixture(scope="module")
def fresh_redis_server(dev_rendered: tuple[Path, Credentials]) -> Iterator[RedisServer]:
    """A Valkey server of the module's own, for tests that crash, restart or reconfigure it."""
    yield from _redis(dev_rendered)


@pytest.fixture(scope="session")
def rabbitmq_server(
    dev_rendered: tuple[Path, Credentials], dev_config: StackConfig
) -> Iterator[RabbitmqServer]:
    """A RabbitMQ node from the rendered dev rabbitmq.conf, enabled_plugins and definitions,
    shared by the session."""
    rendered, credentials = dev_rendered
    server = RabbitmqServer(
        rendered, dev_config.rabbitmq.admin_user, credentials.rabbitmq_admin
    ).start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """The running Docker engine, or a dockerd started for this session and stopped after it."""
    with ensure_docker() as engine:
        yield engine


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GcsEmulator]:
    """The GCS emulator process, shared by the session (in memory; bucket ``backups``)."""
    emulator = GcsEmulator().start()
    yield emulator
    emulator.cleanup()


@pytest.fixture
def gcs(gcs_emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> GcsEmulator:
    """The shared emulator, with this process's google-cloud-storage clients pointed at it
    for this test only."""
    monkeypatch.setenv(EMULATOR_ENV, gcs_emulator.endpoint)
    return gcs_emulator


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
