"""Declares the whole stack for the configured platform; imported by the Pulumi entry point.

Kept separate from the entry point (``__main__.py``) so unit tests can install Pulumi's mocks and
then run ``main`` (or ``build`` with a config loaded from a stack file).
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from typing import Any

import pulumi

from infra import outputs
from infra.config import load_pulumi
from infra.config.model import StackConfig
from infra.errors import ConfigError
from infra.platforms.component import PlatformComponent

# Every resource leaves a dozen Outputs, futures and tasks alive until the program ends; with
# CPython's default young-generation threshold (700) the collector ran ~4,000 times at 200
# services and rescanned them, over a third of the program's CPU. A larger young generation
# finds the same garbage in ~400 runs (11.6 s -> 7.1 s of CPU at 200 services, same memory).
YOUNG_GENERATION_THRESHOLD = 10_000


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


def export_outputs(platform: str, values: Mapping[str, Any]) -> None:
    """``pulumi.export`` every output of ``platform``, secret where the table says so."""
    wanted = {output.name for output in outputs.for_platform(platform)}
    undescribed = sorted(set(values) - wanted)
    missing = sorted(wanted - set(values))
    if undescribed or missing:
        raise pulumi.RunError(
            f"the {platform} platform's outputs disagree with infra/outputs.yaml: "
            f"not described there: {undescribed}; described but not given: {missing}"
        )
    for output in outputs.for_platform(platform):
        value = values[output.name]
        pulumi.export(output.name, pulumi.Output.secret(value) if output.secret else value)


def main() -> PlatformComponent:
    """The program: load the stack's config, declare it, export every output (``infra.outputs``)."""
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_GENERATION_THRESHOLD), middle, old)
    try:
        config = load_pulumi()
    except ConfigError as error:
        # One line per problem, no traceback: the engine shows this as the program's error.
        raise pulumi.RunError(str(error)) from None
    platform = build(config)
    export_outputs(config.platform, platform.exports)
    return platform
