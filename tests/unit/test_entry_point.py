"""The file Pulumi runs (`main:` in Pulumi.yaml), run by path under mocks as the engine does."""

from __future__ import annotations

import runpy
from pathlib import Path

import pulumi
import pytest
import yaml
from pulumi.runtime.settings import SETTINGS
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from tests.unit.pulumi_mocks import PROJECT, RecordingMocks, stack_config

REPO = Path(__file__).resolve().parents[2]


def run_entry_point(stack: str, config: dict[str, str]) -> RecordingMocks:
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    pulumi.runtime.set_all_config(config)
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()
    main = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["main"]

    def program() -> None:
        runpy.run_path(str(REPO / main), run_name="__main__")

    _sync_await(run_pulumi_func(program))
    return mocks


@pytest.mark.parametrize(
    ("stack", "component"),
    [("dev", "persistence:docker:Platform"), ("prod", "persistence:gcp:Platform")],
)
def test_the_entry_point_declares_the_platform_of_each_stack(stack: str, component: str) -> None:
    mocks = run_entry_point(stack, stack_config(stack))
    types = {d.type for d in mocks.declared}
    assert component in types, f"{stack}: {component} not declared"


def test_bad_config_stops_the_program_with_one_line_per_problem() -> None:
    config = stack_config("dev")
    config["persistence:services"] = '[{"name": "Users"}, {"name": "users", "colour": "red"}]'
    with pytest.raises(pulumi.RunError) as caught:
        run_entry_point("dev", config)
    lines = str(caught.value).splitlines()
    assert lines == [
        "Pulumi.dev.yaml: persistence:services[0].name: 'Users' is not a valid service name: "
        "use lowercase letters, digits and underscores, starting with a letter "
        "(e.g. 'user_profiles')",
        "Pulumi.dev.yaml: persistence:services[1].colour: unknown key; allowed keys: "
        "connection_limits, extensions, idle_in_transaction_session_timeout_ms, "
        "migrator_statement_timeout_ms, name, password_version, queues, redis, redis_scripting, "
        "statement_timeout_ms",
    ]


def test_the_program_directory_is_the_project_root() -> None:
    """Dynamic providers run in the program's directory and resolve ``virtualenv`` there,
    the language host resolves it against the project root: they agree only at the root.
    (Found by the real engine: with ``main: infra/program/`` every ServiceDatabase failed.)"""
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    assert (REPO / project.get("main", ".")).resolve() == REPO
    virtualenv = project["runtime"]["options"]["virtualenv"]
    assert not Path(virtualenv).is_absolute()
