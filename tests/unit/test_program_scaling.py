"""The prod program is linear in the number of services (issue 14).

Each service's resources depend on what they use: their own passwords, the admin's, the
server they live on. If one service's resources depended on every password of the stack (one
Output built from all of them), the dependency edges the engine stores would grow with the
square of the services; this counts them, as the mocks receive them at registration. Two
more guards bound the peak memory each extra service costs, before and after the program
starts waiting for registrations as it declares.
"""

from __future__ import annotations

import gc
import re
import tracemalloc

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


# Peak Python allocations (tracemalloc) per extra service: 1.37-1.38 MB in this suite (three
# runs; 1.17-1.27 MB in a bare process), nearly all of it the SDK's Outputs, futures and tasks
# for every output property of every resource, pending at once until the program's first wait
# for registrations (infra.platforms.pacing: none below ~20 services). 1.6 MB leaves ~15 % and
# fails if, say, a copy of the config per resource or a few more resources per service come
# back. A ratchet, not the goal: 300 MB at 200 services, about 195 MB of it fixed.
PEAK_BYTES_PER_SERVICE = 1_600_000
TRACED_SMALL, TRACED_LARGE = 5, 20
# Past 20 services the pacer lets each batch register before the next is declared, so an
# extra service costs what stays alive (~22 KB a resource) plus a bounded window: 0.04-0.17
# MB measured from 20 to 40 services in this suite (0.44 in a bare process), 0.99-1.10 MB
# (1.37) when every registration waits for the end. 0.7 MB sits between the two.
PACED_BYTES_PER_SERVICE = 700_000
PACED_LARGE = 40


def _traced_peak(count: int) -> int:
    """Peak traced bytes of one run above what was allocated when it started."""
    gc.collect()
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    run_program("prod", scaled_config("prod", count))
    return tracemalloc.get_traced_memory()[1] - start


@pytest.fixture(scope="module")
def traced_peaks() -> dict[int, int]:
    """Peak traced bytes of one run per size, in one traced stretch."""
    # A first, untraced run imports every pulumi_gcp module the program touches, so the
    # traced runs compare the program's own allocations only.
    run_program("prod", scaled_config("prod", TRACED_SMALL))
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        return {count: _traced_peak(count) for count in (TRACED_SMALL, TRACED_LARGE, PACED_LARGE)}
    finally:
        if started:
            tracemalloc.stop()


def test_peak_memory_per_service_stays_bounded(traced_peaks: dict[int, int]) -> None:
    small, large = traced_peaks[TRACED_SMALL], traced_peaks[TRACED_LARGE]
    per_service = (large - small) / (TRACED_LARGE - TRACED_SMALL)
    assert small > 0, "nothing traced: tracemalloc did not see the program"
    assert per_service <= PEAK_BYTES_PER_SERVICE, (
        f"peak allocations {small / 1e6:.1f} MB at {TRACED_SMALL} services, "
        f"{large / 1e6:.1f} MB at {TRACED_LARGE}: {per_service / 1e6:.2f} MB per service, "
        f"over {PEAK_BYTES_PER_SERVICE / 1e6:.2f} MB"
    )


def test_registrations_complete_while_services_are_declared(
    traced_peaks: dict[int, int],
) -> None:
    small, large = traced_peaks[TRACED_LARGE], traced_peaks[PACED_LARGE]
    per_service = (large - small) / (PACED_LARGE - TRACED_LARGE)
    assert per_service <= PACED_BYTES_PER_SERVICE, (
        f"peak allocations {small / 1e6:.1f} MB at {TRACED_LARGE} services, "
        f"{large / 1e6:.1f} MB at {PACED_LARGE}: {per_service / 1e6:.2f} MB per service, "
        f"over {PACED_BYTES_PER_SERVICE / 1e6:.2f} MB: are registrations pending until the "
        "end again (infra.platforms.pacing)?"
    )
