"""The prod program run once under mocks, plus the GcpPlatform component it built.

The component is what ``infra.stack.main`` returns; tests read its parts from its attributes
(``platform.sql``, ``platform.network``...). What the engine would record of each resource
(parent, ``protect``, dependencies) is on the registrations themselves (``Declared``).
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.platforms.gcp import GcpPlatform
from tests.unit.pulumi_mocks import Declared, ProgramRun, run_program


@dataclass
class ProdRun:
    """What the prod program declared and the component resource that declared it."""

    run: ProgramRun
    platform: GcpPlatform

    @property
    def component(self) -> Declared:
        """The platform component's own registration."""
        return self.run.one("persistence:gcp:Platform")


def run_prod(config: dict[str, str] | None = None, *, stack: str = "prod") -> ProdRun:
    """Run a prod-like stack (``prod``'s file unless ``config``) and keep its GcpPlatform."""
    run = run_program(stack, config)
    assert isinstance(run.platform, GcpPlatform), f"built {run.platform!r}"
    return ProdRun(run=run, platform=run.platform)
