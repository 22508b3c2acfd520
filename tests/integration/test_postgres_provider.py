"""The Pulumi dynamic provider runs the engine for one service on a real server.

It builds the service's model from the resource's inputs and calls ``converge`` directly:
create converges, refresh (``read``) counts drift made by hand, update repairs it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from psycopg.conninfo import make_conninfo

from infra.config import StackConfig
from infra.config.model import ServiceSpec
from infra.credentials import Credentials
from infra.provisioning.provider import ServiceDatabaseProvider
from infra.provisioning.resource import service_inputs
from tests.integration.postgres_support import login_error
from tests.servers.postgres import PostgresServer

Rendered = tuple[Path, Credentials]


def test_the_provider_converges_counts_drift_and_repairs_it(
    postgres: PostgresServer, dev_config: StackConfig, dev_rendered: Rendered
) -> None:
    spec = ServiceSpec(name="provided", extensions=("pgcrypto",))
    config = replace(dev_config, services=(spec,))
    credentials = dev_rendered[1].completed_for(config)
    logins = credentials.for_service(spec.name)
    props: dict[str, Any] = {
        "service_name": spec.name,
        "service": service_inputs(spec),
        "password_version": logins.version,
        "passwords": {k: logins.postgres_password(k) for k in ("migrator", "app", "readonly")},
        "admin_host": postgres.host,
        "admin_port": postgres.port,
        "admin_user": dev_config.postgres.admin_user,
        "admin_password": credentials.postgres_admin,
        "sslmode": "disable",
    }
    provider = ServiceDatabaseProvider()

    created = provider.create(props)
    assert created.outs is not None
    assert created.outs["statements_executed"] > 0
    url = make_conninfo(
        host=str(postgres.socket_dir),
        port=postgres.port,
        dbname="provided",
        user="provided_app",
        password=logins.app,
    )
    assert login_error(url) is None
    assert provider.create(props).outs["statements_executed"] == 0  # type: ignore[index]
    assert provider.read("provided", props).outs["pending_statements"] == 0  # type: ignore[index]

    postgres.superuser_psql("ALTER ROLE provided_app CREATEDB")
    assert provider.read("provided", props).outs["pending_statements"] == 1  # type: ignore[index]
    updated = provider.update("provided", props, props)
    assert updated.outs["statements_executed"] == 1  # type: ignore[index]
    flag = postgres.superuser_psql(
        "SELECT rolcreatedb FROM pg_roles WHERE rolname = 'provided_app'"
    )
    assert flag == "f"
