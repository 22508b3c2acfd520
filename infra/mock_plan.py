"""The resources a stack declares, found by running the real program under Pulumi's mocks.

What a pull request from a fork can be shown safely: no backend, no state, no cloud
credentials and no stack secrets, only the stack file and the program. The mocks run in
preview mode, so every value a provider would compute stays unknown and nothing that depends
on it is evaluated; what is listed is exactly what the program declares for that config.
This module is the one place outside the tests that drives Pulumi's mock runtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import yaml
from pulumi.runtime.settings import SETTINGS
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.config.load import stack_name, stack_path
from infra.config.model import PROJECT


@dataclass(frozen=True)
class PlannedResource:
    """One declared resource: its type token and logical name."""

    type: str
    name: str


class _Recorder(pulumi.runtime.Mocks):
    """Answers every registration with its own inputs and remembers it; invokes return nothing."""

    def __init__(self) -> None:
        self.declared: list[PlannedResource] = []

    def new_resource(
        self, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str | None, dict[str, Any]]:
        self.declared.append(PlannedResource(args.typ, args.name))
        return None, dict(args.inputs)

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, []


def engine_config(stack: str) -> dict[str, str]:
    """The stack file's config as the engine passes it: JSON text for anything not a string."""
    document = yaml.safe_load(stack_path(stack).read_text(encoding="utf-8")) or {}
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in (document.get("config") or {}).items()
    }


def declared_resources(stack: str) -> list[PlannedResource]:
    """Run the program for ``stack`` under mocks; the resources in declaration order."""
    from infra.stack import main

    name = stack_name(stack)
    recorder = _Recorder()
    pulumi.runtime.set_mocks(recorder, project=PROJECT, stack=name, preview=True)
    pulumi.runtime.set_all_config(engine_config(stack))
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()

    def program() -> None:
        main()

    _sync_await(run_pulumi_func(program))
    return recorder.declared
