"""Prod's pooled PostgreSQL endpoint under mocks: Cloud SQL Managed Connection Pooling on an
Enterprise Plus instance, the services' DATABASE_URL and READONLY_DATABASE_URL through it
(MIGRATION_DATABASE_URL direct), an alert when clients wait for a server connection, and the
configs that cannot work refused in one line before anything runs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra import naming
from infra.config import StackConfig
from infra.config.load import from_raw
from infra.errors import ConfigError
from infra.render import endpoints
from tests.unit.gcp_program import ProdRun, run_prod, secret_urls
from tests.unit.pulumi_mocks import Declared, stack_config

INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
WAITING_METRIC = "cloudsql.googleapis.com/per_database/conn_pool/client_connections"


def config_with(**sections: dict[str, Any]) -> dict[str, str]:
    """Pulumi.prod.yaml's config with keys of ``persistence:<section>`` replaced."""
    config = stack_config("prod")
    for section, changes in sections.items():
        key = f"persistence:{section}"
        current = json.loads(config.get(key, "{}"))
        current.update(changes)
        config[key] = json.dumps(current)
    return config


def without_pooler() -> dict[str, str]:
    """The cheaper way out: no pooler, the Enterprise edition and one of its tiers."""
    return config_with(
        postgres={"pooler": {"enabled": False}},
        gcp={"sql_edition": "ENTERPRISE", "sql_tier": "db-custom-2-7680"},
    )


@pytest.fixture(scope="module")
def pooled() -> ProdRun:
    return run_prod()


@pytest.fixture(scope="module")
def direct() -> ProdRun:
    return run_prod(without_pooler())


def main_instance(prod: ProdRun) -> Declared:
    return prod.run.one(INSTANCE, "postgres")


def pool_flags(instance: Declared) -> dict[str, str]:
    (config,) = instance.inputs["settings"]["connectionPoolConfigs"]
    assert config["connectionPoolingEnabled"] is True, f"{instance}: {config}"
    return {flag["name"]: flag["value"] for flag in config.get("flags") or []}


def test_the_instance_pools_with_the_stack_pooler_settings(
    pooled: ProdRun, prod_config: StackConfig
) -> None:
    instance = main_instance(pooled)
    pooler = prod_config.postgres.pooler
    assert pooler.enabled, "Pulumi.prod.yaml is meant to run with the pooler on"
    smallest = min(
        min(spec.connection_limits.app, spec.connection_limits.readonly)
        for spec in prod_config.services
    )
    assert pool_flags(instance) == {
        "pool_mode": pooler.pool_mode,
        "max_client_connections": str(pooler.max_client_connections),
        "max_prepared_statements": str(pooler.max_prepared_statements),
        "max_pool_size": str(smallest),
    }, f"{instance}"


def test_no_pool_outgrows_the_smallest_pooled_login_limit() -> None:
    """Cloud SQL has one pool size for every (login, database) pool: a pool bigger than its
    role's CONNECTION LIMIT would have the server refuse clients the pooler should queue."""
    services = [
        {"name": "orders", "connection_limits": {"app": 30, "migrator": 2, "readonly": 8}},
        {"name": "billing", "connection_limits": {"app": 12, "migrator": 50, "readonly": 40}},
    ]
    config = stack_config("prod")
    config["persistence:services"] = json.dumps(services)
    flags = pool_flags(main_instance(run_prod(config)))
    # orders' read-only login (8); the migrators (2, 50) are never pooled.
    assert flags["max_pool_size"] == "8", flags


def test_the_pool_mode_and_limits_follow_the_config() -> None:
    run = run_prod(
        config_with(
            postgres={
                "pooler": {
                    "pool_mode": "session",
                    "max_client_connections": 500,
                    "max_prepared_statements": 0,
                }
            }
        )
    )
    flags = pool_flags(main_instance(run))
    assert flags["pool_mode"] == "session", flags
    assert flags["max_client_connections"] == "500", flags
    assert flags["max_prepared_statements"] == "0", flags


def test_a_pooled_instance_is_enterprise_plus_on_a_fitting_tier(pooled: ProdRun) -> None:
    settings = main_instance(pooled).inputs["settings"]
    assert settings["edition"] == "ENTERPRISE_PLUS", settings
    assert settings["tier"].startswith("db-perf-optimized-N-"), settings


def test_no_pooling_config_without_the_pooler(direct: ProdRun) -> None:
    instance = main_instance(direct)
    settings = instance.inputs["settings"]
    assert not settings.get("connectionPoolConfigs"), f"{instance}: {settings}"
    assert settings["edition"] == "ENTERPRISE", f"{instance}"
    assert settings["tier"] == "db-custom-2-7680", f"{instance}"


def test_the_verify_instance_keeps_its_own_edition() -> None:
    """A separate verification instance is a small scratch server: it never pools."""
    run = run_prod(config_with(gcp={"verify_instance_tier": "db-g1-small"}))
    verify = run.run.one(INSTANCE, "postgres-verify")
    settings = verify.inputs["settings"]
    assert settings["edition"] == "ENTERPRISE", f"{verify}"
    assert not settings.get("connectionPoolConfigs"), f"{verify}"


def test_app_and_readonly_secrets_go_through_the_pooled_endpoint(
    pooled: ProdRun, prod_config: StackConfig
) -> None:
    stack = endpoints.for_stack(prod_config)
    assert stack.pooler_port == endpoints.MANAGED_POOLER_PORT == 6432
    for spec in prod_config.services:
        urls = secret_urls(pooled, spec.name)
        database = naming.database_name(spec.name)
        for kind in ("app", "readonly"):
            assert urls[kind].endswith(f"@{stack.postgres_host}:6432/{database}"), (
                f"{spec.name} {kind}: {urls[kind]}"
            )
        assert urls["migrator"].endswith(f"@{stack.postgres_host}:5432/{database}"), (
            f"{spec.name}: migrations must stay direct: {urls['migrator']}"
        )


def test_without_the_pooler_every_secret_is_direct(
    direct: ProdRun, prod_config: StackConfig
) -> None:
    for spec in prod_config.services:
        for kind, url in secret_urls(direct, spec.name).items():
            assert ":5432/" in url, f"{spec.name} {kind}: {url}"


def waiting_policy(prod: ProdRun) -> Declared:
    return prod.run.one(POLICY, "alert-sql-pooler-waiting")


def test_an_alert_fires_when_clients_wait_for_a_server_connection(
    pooled: ProdRun, prod_config: StackConfig
) -> None:
    policy = waiting_policy(pooled)
    (condition,) = policy.inputs["conditions"]
    threshold = condition["conditionThreshold"]
    text = threshold["filter"]
    assert f'metric.type = "{WAITING_METRIC}"' in text, f"{policy}: {text}"
    assert 'metric.label.status = "waiting"' in text, f"{policy}: {text}"
    assert 'resource.type = "cloudsql_instance_database"' in text, f"{policy}: {text}"
    instance = main_instance(pooled).inputs["name"]
    assert f'resource.label.resource_id = "example-project:{instance}"' in text, text
    assert threshold["thresholdValue"] == prod_config.alerts.sql_pooler_waiting_clients
    assert threshold["comparison"] == "COMPARISON_GT", f"{policy}"
    (aggregation,) = threshold["aggregations"]
    # Waiting clients of every database add up: one service starved is enough to page.
    assert aggregation["crossSeriesReducer"] == "REDUCE_SUM", f"{policy}: {aggregation}"
    content = policy.inputs["documentation"]["content"]
    assert "1." in content, f"{policy}: documentation needs numbered steps"
    assert "pool_mode" in content, f"{policy}: {content}"


def test_no_waiting_alert_without_the_pooler(direct: ProdRun) -> None:
    names = {p.name for p in direct.run.of_type(POLICY)}
    assert "alert-sql-pooler-waiting" not in names, names


def raw_prod(**sections: dict[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "platform": "gcp",
        "services": [{"name": "auth"}],
        "alerts": {"emails": ["oncall@example.com"]},
    }
    raw.update(sections)
    return raw


def refused(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        from_raw(raw, "Pulumi.prod.yaml")
    (line,) = caught.value.problems
    assert "\n" not in line, line
    return line


def test_the_pooler_on_the_enterprise_edition_is_refused_naming_both_keys() -> None:
    line = refused(raw_prod(gcp={"sql_edition": "ENTERPRISE", "sql_tier": "db-custom-2-7680"}))
    assert line.startswith("Pulumi.prod.yaml: persistence:"), line
    for part in ("postgres.pooler.enabled", "gcp.sql_edition", "ENTERPRISE_PLUS", "enabled: false"):
        assert part in line, line


def test_the_enterprise_edition_without_the_pooler_is_accepted() -> None:
    config = from_raw(
        raw_prod(
            postgres={"pooler": {"enabled": False}},
            gcp={"sql_edition": "ENTERPRISE", "sql_tier": "db-custom-2-7680"},
        ),
        "Pulumi.prod.yaml",
    )
    assert config.gcp.sql_edition == "ENTERPRISE"


@pytest.mark.parametrize(
    ("edition", "tier"),
    [
        ("ENTERPRISE_PLUS", "db-custom-2-7680"),
        ("ENTERPRISE_PLUS", "db-g1-small"),
        ("ENTERPRISE", "db-perf-optimized-N-2"),
    ],
)
def test_a_tier_that_does_not_fit_the_edition_is_refused(edition: str, tier: str) -> None:
    pooler = {"enabled": edition == "ENTERPRISE_PLUS"}
    line = refused(
        raw_prod(postgres={"pooler": pooler}, gcp={"sql_edition": edition, "sql_tier": tier})
    )
    assert line.startswith("Pulumi.prod.yaml: persistence:gcp"), line
    for part in ("gcp.sql_tier", repr(tier), edition):
        assert part in line, line


def test_an_unknown_edition_is_refused() -> None:
    line = refused(raw_prod(gcp={"sql_edition": "STANDARD"}))
    assert line.startswith("Pulumi.prod.yaml: persistence:gcp.sql_edition:"), line
    for allowed in ("'ENTERPRISE'", "'ENTERPRISE_PLUS'"):
        assert allowed in line, line


def test_docker_stacks_are_not_held_to_the_prod_edition() -> None:
    """The pooler is on by default in dev too (PgBouncer); the edition is a gcp matter."""
    raw = {
        "platform": "docker",
        "services": [{"name": "auth"}],
        "gcp": {"sql_edition": "ENTERPRISE", "sql_tier": "db-custom-2-7680"},
    }
    assert from_raw(raw, "Pulumi.dev.yaml").postgres.pooler.enabled


def test_a_refused_prod_config_stops_the_program_in_one_line() -> None:
    config = config_with(gcp={"sql_edition": "ENTERPRISE", "sql_tier": "db-custom-2-7680"})
    with pytest.raises(
        Exception,
        match=r"Pulumi\.prod\.yaml: persistence:.*postgres\.pooler\.enabled .*gcp\.sql_edition",
    ) as error:
        run_prod(config)
    assert "\n" not in str(error.value), "one line, no traceback"
