"""Prod settings that can only be checked inside a Pulumi run, and the derived GCP names."""

from __future__ import annotations

import json
import re

import pytest

from infra import naming
from infra.config.load import from_raw
from infra.errors import ConfigError
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
def test_service_account_ids_follow_gcp_rules(service: str) -> None:
    account_id = naming.service_account_id(service)
    assert SERVICE_ACCOUNT_ID.match(account_id), f"{service!r} -> {account_id!r}"
    assert account_id == naming.service_account_id(service), "must be deterministic"


def test_service_account_ids_are_unique() -> None:
    names = ["a", "b", "ab", "a_b", "x" * 30 + "1", "x" * 30 + "2", "x" * 41, "x" * 40]
    ids = [naming.service_account_id(n) for n in names]
    assert len(set(ids)) == len(ids), ids


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
