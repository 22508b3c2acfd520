"""Declares the whole stack for the configured platform; imported by the Pulumi entry point.

Kept separate from ``infra/program/__main__.py`` so unit tests can install Pulumi's mocks and
then call ``build`` with a config loaded from a stack file.
"""

from __future__ import annotations

from typing import Any

from infra.config.model import StackConfig
from infra.pulumi_credentials import generated_credentials


def build(config: StackConfig) -> dict[str, Any]:
    """Declare every resource; return the stack outputs (secrets already marked secret)."""
    credentials = generated_credentials(config)
    if config.platform == "docker":
        from infra.platforms.docker import DockerPlatform

        return DockerPlatform("dev", config=config, credentials=credentials).exports
    from infra.platforms.gcp import GcpPlatform

    return GcpPlatform("prod", config=config, credentials=credentials).exports
