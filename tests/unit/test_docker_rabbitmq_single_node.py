"""``rabbitmq.nodes: 1`` (dev's default) is the dev stack it always was, resource for resource.

Existing dev stacks must not churn when the cluster arrives: the same URNs (a changed name or
parent is a delete and a create), the same dependencies, and the same inputs on every resource
(a changed container input is a replacement, so a restart). The golden file is what the program
declared before dev could build a cluster (commit f49a9f8); regenerate it only for a change
that is meant to reach existing single-node stacks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.unit.pulumi_mocks import ProgramRun, run_program

GOLDEN = Path(__file__).parent / "golden" / "docker_single_node.json"
# Salted at random on every run: everything else of a document holding them must match.
SALTED = ("password_hash",)
# The backup image's rebuild trigger hashes the program's own source (the image carries it): it
# changes with every commit, by design, and says nothing about the servers.
SOURCE_HASHES = ("triggers",)
# Where the backup container carries the uid and gid of whoever runs pulumi.
OWNER_KEYS = ("user", "owner", "group", "uid", "gid", "UID", "GID")
CHECKOUT = str(Path(__file__).resolve().parents[2])
LOCAL_ID = "<local-id>"


def _normalised(value: Any) -> Any:
    """``value`` without salted hashes, also inside strings that hold a JSON document, and
    with what differs between machines named: the uid and gid of whoever runs pulumi (the
    backup container runs as them) and the checkout's path (the backup image's build context)."""
    if isinstance(value, str):
        if value.startswith("{"):
            try:
                return json.dumps(_normalised(json.loads(value)), sort_keys=True)
            except ValueError:
                return value
        return value.replace(CHECKOUT, "<checkout>")
    if isinstance(value, dict):
        return {
            k: LOCAL_ID
            if k in OWNER_KEYS and str(v) in _local_ids()
            else "<source hash>"
            if k in SOURCE_HASHES
            else _normalised(v)
            for k, v in value.items()
            if k not in SALTED
        }
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value


def _local_ids() -> set[str]:
    return {str(os.getuid()), str(os.getgid())}


def snapshot(run: ProgramRun) -> dict[str, Any]:
    """Every URN of the program, and each resource's inputs, parent and dependencies."""
    return {
        "urns": sorted(r.urn for r in run),
        "resources": {
            r.urn: {
                "inputs": _normalised(r.inputs),
                "parent": r.parent,
                "dependencies": sorted(r.dependencies),
            }
            for r in run
        },
    }


def test_one_node_in_dev_declares_exactly_the_stack_it_always_did() -> None:
    found = snapshot(run_program("dev"))
    if os.environ.get("PERSISTENCE_WRITE_GOLDEN") == GOLDEN.name:
        GOLDEN.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    golden = json.loads(GOLDEN.read_text())
    added = sorted(set(found["urns"]) - set(golden["urns"]))
    removed = sorted(set(golden["urns"]) - set(found["urns"]))
    assert not added, f"URNs added {added}"
    assert not removed, f"URNs removed {removed}"
    for urn, expected in golden["resources"].items():
        assert found["resources"][urn] == expected, f"{urn}: inputs, parent or dependencies changed"
