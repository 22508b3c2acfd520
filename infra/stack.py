"""Declares the whole stack for the configured platform; imported by the Pulumi entry point.

Kept separate from the entry point (``__main__.py``) so unit tests can install Pulumi's mocks and
then run ``main`` (or ``build`` with a config loaded from a stack file).
"""

from __future__ import annotations

import pulumi

from infra import outputs
from infra.config import load_pulumi
from infra.config.model import StackConfig
from infra.errors import ConfigError
from infra.platforms.component import PlatformComponent


def build(config: StackConfig) -> PlatformComponent:
    """Declare every resource, as one component for the configured platform."""
    if config.platform == "bootstrap":
        # No services, so no generated passwords: only the CI identity and the state backend.
        from infra.platforms.bootstrap import BootstrapPlatform

        return BootstrapPlatform("bootstrap", config=config)
    if config.platform == "docker":
        from infra.platforms.docker import DockerPlatform

        return DockerPlatform("dev", config=config)
    from infra.platforms.gcp import GcpPlatform

    return GcpPlatform("prod", config=config)


def main() -> PlatformComponent:
    """The program: load the stack's config, declare it, export every output (``infra.outputs``)."""
    try:
        config = load_pulumi()
    except ConfigError as error:
        # One line per problem, no traceback: the engine shows this as the program's error.
        raise pulumi.RunError(str(error)) from None
    platform = build(config)
    outputs.export(config.platform, platform.exports)
    return platform
