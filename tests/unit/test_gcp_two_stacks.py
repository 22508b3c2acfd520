"""Two prod-like stacks in one GCP project (the README's ``prod-dr`` runbook) share no name.

Service account ids, secret ids, buckets (global), instances, workflows, jobs, metrics...
live at project level (or wider): a second stack reusing one fails at its first ``pulumi up``,
or worse, adopts prod's. Both stacks are evaluated under mocks and every name-like input of
every declared GCP resource is compared.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.unit import test_program_invariants as invariants
from tests.unit.gcp_program import run_prod
from tests.unit.pulumi_mocks import Declared, stack_config

# Top-level inputs that name a resource in a project-wide (or global) namespace: the ids every
# program's resources are checked for (test_program_invariants), and the displayed names.
NAME_KEYS = (*invariants.NAME_KEYS, "displayName", "title", "job", "metric")
# Types whose names live inside a parent the stack owns, so equal names cannot collide.
NESTED = {
    "gcp:sql/user:User",  # a login inside its own instance
    "gcp:dns/recordSet:RecordSet",  # a record inside its own (per-stack) zone
}
SERVICE_ACCOUNT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")


def _names(declared: list[Declared]) -> dict[str, str]:
    """Every project-level name -> the resource and input that declared it."""
    found: dict[str, str] = {}
    for resource in declared:
        if not resource.type.startswith("gcp:") or resource.type in NESTED:
            continue
        for key in NAME_KEYS:
            value = resource.inputs.get(key)
            if isinstance(value, str) and value:
                found.setdefault(value, f"{resource}.{key}")
    return found


def _dr_config() -> dict[str, str]:
    """``Pulumi.prod-dr.yaml`` as the runbook makes it: prod's file, another main region."""
    config = stack_config("prod")
    config["gcp:region"] = "europe-west3"
    gcp = json.loads(config["persistence:gcp"])
    assert gcp["backup_region"] != "europe-west3"
    config["persistence:gcp"] = json.dumps(gcp)
    return config


@pytest.fixture(scope="module")
def names() -> tuple[dict[str, str], dict[str, str]]:
    prod = _names(run_prod().run.declared)
    dr = _names(run_prod(_dr_config(), stack="prod-dr").run.declared)
    return prod, dr


def test_two_stacks_in_one_project_share_no_physical_name(
    names: tuple[dict[str, str], dict[str, str]],
) -> None:
    prod, dr = names
    assert len(prod) > 30, f"expected the whole program's names, found {sorted(prod)}"
    shared = sorted(f"{name!r}: {prod[name]} and {dr[name]}" for name in set(prod) & set(dr))
    assert not shared, "names both stacks declare:\n" + "\n".join(shared)


def test_account_ids_fit_gcp_limits_for_a_long_stack_name() -> None:
    config = _dr_config()
    declared = run_prod(config, stack="prod-disaster-recovery-eu").run.declared
    for account in (r for r in declared if r.type == "gcp:serviceaccount/account:Account"):
        account_id = account.inputs["accountId"]
        assert SERVICE_ACCOUNT_ID.match(account_id), f"{account}: {account_id!r}"
