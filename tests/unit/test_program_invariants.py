"""Invariants every stack's program keeps, whatever its platform.

- No two resources of one type share a physical name (the engine would fight over one
  object, or the second create would fail).
- The platform component keeps its parts as attributes, and those are the very resources it
  registered below itself (callers and tests read them instead of walking private fields).
"""

from __future__ import annotations

from collections import Counter
from operator import attrgetter

import pulumi
import pytest
from pulumi.runtime.sync_await import _sync_await

from tests.unit.pulumi_mocks import ProgramRun, run_program

# Inputs that name a resource in its provider's namespace.
NAME_KEYS = (
    "name",
    "accountId",
    "secretId",
    "roleId",
    "repositoryId",
    "keyRingId",
    "instanceId",
    "aclPolicyId",
)
# Types whose names live inside another resource (a login inside its instance, an image by
# tag): equal names there are nested, or equal on purpose. IAM members name what they grant on.
NESTED = {"gcp:sql/user:User", "docker:index/remoteImage:RemoteImage"}
PARTS = {
    "dev": ("network", "postgres", "redis", "rabbitmq", "backup"),
    "prod": ("bucket", "valkey.instance", "dns_zone", "export_workflow", "export_schedule"),
    "bootstrap": ("state_bucket",),
}


@pytest.fixture(scope="module", params=sorted(PARTS))
def program(request: pytest.FixtureRequest) -> tuple[str, ProgramRun]:
    return request.param, run_program(request.param)


def test_no_two_resources_share_a_physical_name(program: tuple[str, ProgramRun]) -> None:
    stack, run = program
    names = Counter(
        (resource.type, key, resource.inputs[key])
        for resource in run
        if resource.custom
        and resource.type not in NESTED
        and not resource.type.lower().endswith("iammember")
        for key in NAME_KEYS
        if isinstance(resource.inputs.get(key), str)
    )
    assert len(names) > 5, f"{stack}: expected physical names, found {sorted(names)}"
    shared = sorted(f"{kind} {key}={name!r}" for (kind, key, name), n in names.items() if n > 1)
    assert not shared, f"{stack}: names declared more than once: {shared}"


def test_the_component_keeps_its_parts_as_attributes(program: tuple[str, ProgramRun]) -> None:
    stack, run = program
    platform = run.platform
    assert isinstance(platform, pulumi.ComponentResource), f"{stack}: {platform!r}"
    component = next(r for r in run if r.type.endswith(":Platform"))
    below = {r.urn for r in run.below(component)}
    for attribute in PARTS[stack]:
        part = attrgetter(attribute)(platform)
        assert isinstance(part, pulumi.CustomResource), f"{stack}: {attribute} is {part!r}"
        urn = _sync_await(part.urn.future())
        assert urn in below, f"{stack}: {attribute} ({urn}) is not one of its children"
