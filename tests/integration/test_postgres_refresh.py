"""The converge's cluster facts, refreshed after each service by re-reading only that service's
names (``engine._refreshed``), equal a full re-read of every service on a real server.

A full re-read after each service made converging N services from empty cost N^2 catalog reads
(1,000 services did not finish in 14 minutes); the refresh is only allowed to be cheaper, never
to see something else. Cross-service edges are what a partial read could miss: another
service's login made a member of this service's roles, and this service's roles made members
of another's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import postgres as pg_engine
from infra.config import StackConfig
from infra.credentials import Credentials
from infra.postgres import engine
from infra.postgres.catalog import ClusterState
from infra.postgres.model import ServiceModel
from tests.servers.postgres import PostgresServer

# Made by hand as the superuser between two applies: each crosses from one service to another.
CROSS_SERVICE_DRIFT = [
    "GRANT audit_owner TO events_migrator",
    "GRANT events_app TO audit_readonly",
    "GRANT auth_owner TO users_app, events_app",
    "ALTER ROLE audit_app CONNECTION LIMIT 99",
    "ALTER ROLE users_app SET work_mem = '7MB'",
    "REVOKE audit_app FROM platform_admin",
]


def test_each_refresh_equals_a_full_read_from_empty_and_after_cross_service_drift(
    postgres: PostgresServer,
    dev_config: StackConfig,
    dev_rendered: tuple[Path, Credentials],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, credentials = dev_rendered
    models = engine._models(dev_config, credentials, None)
    refreshed = engine._refreshed
    compared: list[str] = []

    def checked(
        conn: engine.Connection, admin_url: str, cluster: ClusterState, model: ServiceModel
    ) -> ClusterState:
        result = refreshed(conn, admin_url, cluster, model)
        full = engine._cluster(conn, admin_url, models)
        assert result == full, f"refresh after {model.service} differs from a full read"
        compared.append(model.service)
        return result

    monkeypatch.setattr(engine, "_refreshed", checked)
    pg_engine.apply(postgres.admin_url, dev_config, credentials)
    assert compared == [spec.name for spec in dev_config.services]  # every one changed things

    compared.clear()
    for statement in CROSS_SERVICE_DRIFT:
        postgres.superuser_psql(statement)
    pg_engine.apply(postgres.admin_url, dev_config, credentials)
    assert set(compared) == {"audit", "auth", "users"}  # events: audit repaired its edge
    repaired = postgres.superuser_psql(
        "SELECT count(*) FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid "
        "JOIN pg_roles m ON m.oid = a.member WHERE (g.rolname, m.rolname) IN "
        "(('audit_owner', 'events_migrator'), ('events_app', 'audit_readonly'), "
        "('auth_owner', 'users_app'), ('auth_owner', 'events_app'))"
    )
    assert repaired == "0"
