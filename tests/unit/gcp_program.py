"""The prod program run once under mocks, plus the GcpPlatform component it built.

The component is captured so tests can walk its children and read each one's ``protect``
option, which the mock monitor does not record.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pulumi

import infra.platforms.gcp as gcp_platform
from tests.unit.pulumi_mocks import ProgramRun, run_program


@dataclass
class ProdRun:
    """What the prod program declared and the component resource that declared it."""

    run: ProgramRun
    platform: pulumi.ComponentResource

    def children(self) -> Iterator[pulumi.Resource]:
        """Every resource below the platform component, depth first."""
        pending: list[pulumi.Resource] = list(self.platform._childResources)
        while pending:
            resource = pending.pop()
            yield resource
            pending.extend(resource._childResources)


def run_prod(config: dict[str, str] | None = None, *, stack: str = "prod") -> ProdRun:
    """Run a prod-like stack (``prod``'s file unless ``config``) and keep its GcpPlatform."""
    built: list[pulumi.ComponentResource] = []
    original = gcp_platform.GcpPlatform

    class Recording(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

    gcp_platform.GcpPlatform = Recording  # type: ignore[misc]
    try:
        run = run_program(stack, config)
    finally:
        gcp_platform.GcpPlatform = original  # type: ignore[misc]
    assert len(built) == 1, f"expected one GcpPlatform, built {len(built)}"
    return ProdRun(run=run, platform=built[0])
