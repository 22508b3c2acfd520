"""The prod program is linear in the number of services (issue 14).

Each service's resources depend on what they use: their own passwords, the admin's, the
server they live on. If one service's resources depended on every password of the stack (one
Output built from all of them), the dependency edges the engine stores would grow with the
square of the services; this counts them, as the mocks receive them at registration.
"""

from __future__ import annotations

import re

import pytest

from tests.unit.pulumi_mocks import ProgramRun, run_program, scaled_config

SMALL, LARGE = 10, 40
SERVICE = re.compile(r"svc\d{3}")  # the generated services' names (scaled_config)


@pytest.fixture(scope="module")
def runs() -> tuple[ProgramRun, ProgramRun]:
    return run_program("prod", scaled_config("prod", SMALL)), run_program(
        "prod", scaled_config("prod", LARGE)
    )


def test_dependency_edges_grow_linearly_with_services(
    runs: tuple[ProgramRun, ProgramRun],
) -> None:
    small, large = runs
    ratio = large.edges / small.edges
    services = LARGE / SMALL
    assert small.edges > 0, "no dependency edges recorded: the mocks lost them"
    # Linear growth stays at or under the services' ratio (fixed parts only lower it).
    assert ratio <= services, (
        f"{SMALL} services: {small.edges} edges, {LARGE}: {large.edges} "
        f"({ratio:.2f}x for {services:g}x the services): faster than linear"
    )


def test_no_service_resource_depends_on_another_services_passwords(
    runs: tuple[ProgramRun, ProgramRun],
) -> None:
    _, large = runs
    passwords = {
        r.urn: r.name
        for r in large.of_type("random:index/randomPassword:RandomPassword")
        if SERVICE.match(r.name)
    }
    checked, problems = 0, []
    for resource in large:
        found = SERVICE.search(resource.name)
        if found is None or resource.type.startswith("random:"):
            continue
        checked += 1
        foreign = {
            passwords[urn]
            for urn in resource.dependencies
            if urn in passwords and not passwords[urn].startswith(f"{found.group()}-")
        }
        if foreign:
            problems.append(f"{resource}: depends on {sorted(foreign)[:3]}...")
    assert checked >= LARGE * 10, f"only {checked} per-service resources found"
    assert not problems, "\n".join(problems[:10])
