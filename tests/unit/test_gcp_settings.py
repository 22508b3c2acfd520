"""Prod settings that can only be checked inside a Pulumi run, and the derived GCP names."""

from __future__ import annotations

import json
import re

import pytest

from infra import naming
from infra.config.load import from_raw
from infra.errors import ConfigError
from infra.platforms.gcp import names
from tests.unit.gcp_program import run_prod
from tests.unit.pulumi_mocks import stack_config

SERVICE_ACCOUNT_ID = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")


def prod_config_with(**changes: str) -> dict[str, str]:
    config = stack_config("prod")
    config.update(changes)
    return config


def test_backup_region_must_differ_from_the_main_region() -> None:
    config = stack_config("prod")
    gcp = json.loads(config["persistence:gcp"])
    gcp["backup_region"] = config["gcp:region"]
    config["persistence:gcp"] = json.dumps(gcp)
    wanted = r"persistence:gcp\.backup_region .* must differ from gcp:region"
    with pytest.raises(Exception, match=wanted) as error:
        run_prod(config)
    assert type(error.value).__name__ == "RunError"
    assert "\n" not in str(error.value), "one line, no traceback"


def test_sql_backup_location_must_differ_from_the_main_region() -> None:
    config = stack_config("prod")
    gcp = json.loads(config["persistence:gcp"])
    gcp["sql_backup_location"] = config["gcp:region"]
    config["persistence:gcp"] = json.dumps(gcp)
    with pytest.raises(Exception, match=r"persistence:gcp\.sql_backup_location"):
        run_prod(config)


def test_region_is_required() -> None:
    config = stack_config("prod")
    del config["gcp:region"]
    with pytest.raises(Exception, match=r"gcp:region must be set"):
        run_prod(config)


@pytest.mark.parametrize(
    "service",
    [
        "a",
        "ab",
        "auth",
        "user_profiles",
        "x" * 26,
        "x" * 27,
        "a_b_c_d_e_f_g_h_i_j_k_l_m_n_o",
        "q" * 41,
    ],
)
@pytest.mark.parametrize("stack", ["prod", "prod-dr", "p", "prod-disaster-recovery-europe"])
def test_service_account_ids_follow_gcp_rules(service: str, stack: str) -> None:
    account_id = names.account_id(stack, naming.service_account_base(service))
    assert SERVICE_ACCOUNT_ID.match(account_id), f"{service!r} -> {account_id!r}"
    assert account_id == names.account_id(stack, naming.service_account_base(service))


def test_service_account_ids_are_unique_per_service_and_stack() -> None:
    services = ["a", "b", "ab", "a_b", "x" * 30 + "1", "x" * 30 + "2", "x" * 41, "x" * 40]
    ids = [
        names.account_id(stack, naming.service_account_base(s))
        for s in services
        for stack in ("prod", "prod-dr", "prod-disaster-recovery-eu")
    ]
    assert len(set(ids)) == len(ids), ids


@pytest.mark.parametrize(
    ("rule", "scope", "other"),
    [
        (names.BUCKET, "long-project-id-persistence-prod", "long-project-id-persistence-dr"),
        (names.RESOURCE, "persistence-" + "x" * 60, "persistence-" + "x" * 60 + "-dr"),
        (names.CLOUD_RUN, "persistence-prod-disaster-recovery-eu", "persistence-prod"),
        (names.SECRET_ID, "persistence-prod", "persistence-prod-dr"),
        (names.CUSTOM_ROLE_ID, "persistenceBackupExport_" + "x" * 40, "persistenceBackupExport_dr"),
    ],
)
def test_scoped_names_fit_their_namespace_and_differ_by_scope(
    rule: names.Rule, scope: str, other: str
) -> None:
    base = "backup" + rule.joiner + "job"
    first, second = names.scoped(scope, base, rule), names.scoped(other, base, rule)
    for name in (first, second):
        assert rule.min_length <= len(name) <= rule.max_length, f"{name!r} ({rule.label})"
        assert rule.pattern.match(name), f"{name!r} breaks {rule.label}"
    assert first != second


def test_plaintext_provisioning_only_through_a_loopback_proxy() -> None:
    raw = {
        "platform": "gcp",
        "services": [{"name": "auth"}],
        "gcp": {"provisioning_host": "10.20.0.5"},
    }
    with pytest.raises(ConfigError, match=r"Pulumi\.prod\.yaml: .*provisioning_sslmode 'disable'"):
        from_raw(raw, "Pulumi.prod.yaml")
    raw["gcp"] = {"provisioning_host": "10.20.0.5", "provisioning_sslmode": "require"}
    assert from_raw(raw, "Pulumi.prod.yaml").gcp.provisioning_sslmode == "require"
    assert from_raw({**raw, "gcp": {}}, "x").gcp.provisioning_sslmode == "disable"
