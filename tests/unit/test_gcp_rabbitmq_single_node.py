"""``rabbitmq.nodes: 1`` in prod is today's single broker VM, resource for resource.

A stack deployed before the cluster existed sets ``nodes: 1`` and must not churn: the same
URNs (a changed name or parent is a delete and a create) and the same inputs on every broker
resource (a changed instance input is an update or a replacement of the VM). The golden file
is what the program declared before cluster support (commit 44c8098); regenerate it only for
a change that is meant to reach existing single-node stacks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.platforms.gcp import rabbitmq_vm
from tests.unit.pulumi_mocks import ProgramRun, run_program, stack_config

GOLDEN = Path(__file__).parent / "golden" / "gcp_single_node_rabbitmq.json"

# Every resource the broker is made of or that names it (rules, records, alerts, grants).
BROKER_TYPES = (
    "gcp:compute/instance:Instance",
    "gcp:compute/disk:Disk",
    "gcp:compute/address:Address",
    "gcp:compute/resourcePolicy:ResourcePolicy",
    "gcp:compute/firewall:Firewall",
    "gcp:dns/recordSet:RecordSet",
    "gcp:serviceaccount/account:Account",
)


def single_node_config() -> dict[str, str]:
    """The prod stack file with ``rabbitmq.nodes: 1`` set."""
    config = stack_config("prod")
    rabbitmq = json.loads(config.get("persistence:rabbitmq", "{}"))
    config["persistence:rabbitmq"] = json.dumps({**rabbitmq, "nodes": 1})
    return config


def _without_hashes(value: Any) -> Any:
    """Password hashes are salted at random: everything else of the document must match."""
    if isinstance(value, dict):
        return {k: _without_hashes(v) for k, v in value.items() if k != "password_hash"}
    if isinstance(value, list):
        return [_without_hashes(v) for v in value]
    return value


def snapshot(run: ProgramRun) -> dict[str, Any]:
    """Every URN of the program, and the inputs of every broker resource (by URN)."""
    inputs: dict[str, Any] = {}
    for resource in run:
        broker_alert = resource.type == "gcp:monitoring/alertPolicy:AlertPolicy" and (
            "rabbitmq" in resource.name
        )
        if resource.type not in BROKER_TYPES and not broker_alert:
            continue
        found = resource.inputs
        metadata = found.get("metadata")
        if isinstance(metadata, dict) and rabbitmq_vm.DEFINITIONS_KEY in metadata:
            document = json.loads(metadata[rabbitmq_vm.DEFINITIONS_KEY])
            found["metadata"] = {**metadata, rabbitmq_vm.DEFINITIONS_KEY: _without_hashes(document)}
        inputs[resource.urn] = {
            "inputs": found,
            "protect": resource.protect,
            "parent": resource.parent,
        }
    return {"urns": sorted(r.urn for r in run), "inputs": inputs}


def test_one_node_in_prod_declares_exactly_the_single_vm_it_always_did() -> None:
    found = snapshot(run_program("prod", single_node_config()))
    golden = json.loads(GOLDEN.read_text())
    added = sorted(set(found["urns"]) - set(golden["urns"]))
    removed = sorted(set(golden["urns"]) - set(found["urns"]))
    assert not added, f"URNs added {added}"
    assert not removed, f"URNs removed {removed}"
    for urn, expected in golden["inputs"].items():
        assert found["inputs"].get(urn) == expected, f"{urn}: inputs changed"
    assert set(found["inputs"]) == set(golden["inputs"]), "broker resources differ"
