"""Declares the whole stack for the configured platform; imported by the Pulumi entry point.

Kept separate from the entry point (``__main__.py``) so unit tests can install Pulumi's mocks and
then call ``build`` with a config loaded from a stack file.
"""

from __future__ import annotations

from typing import Any, Protocol

from infra.config.model import StackConfig
from infra.pulumi_credentials import generated_credentials


class Platform(Protocol):
    """What every platform component offers the entry point."""

    exports: dict[str, Any]


def build(config: StackConfig) -> dict[str, Any]:
    """Declare every resource; return the stack outputs (secrets already marked secret)."""
    if config.platform == "bootstrap":
        # No services, so no generated passwords: only the CI identity and the state backend.
        from infra.platforms.bootstrap import BootstrapPlatform

        return BootstrapPlatform("bootstrap", config=config).exports
    credentials = generated_credentials(config)
    if config.platform == "docker":
        from infra.platforms.docker import DockerPlatform

        platform: Platform = DockerPlatform("dev", config=config, credentials=credentials)
    else:
        from infra.platforms.gcp import GcpPlatform

        platform = GcpPlatform("prod", config=config, credentials=credentials)
    return platform.exports
