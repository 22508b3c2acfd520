"""Every stack output is described in infra/outputs.py, and the program exports through it."""

from __future__ import annotations

import json

import pytest

from infra import outputs, stack
from tests.unit.pulumi_mocks import OUTPUT_HOOKS, ProgramRun, run_program

STACKS = {"dev": outputs.DOCKER, "prod": outputs.GCP, "bootstrap": outputs.BOOTSTRAP}


@pytest.fixture(scope="module", params=sorted(STACKS))
def program(request: pytest.FixtureRequest) -> tuple[str, ProgramRun]:
    return request.param, run_program(request.param)


def test_the_program_exports_exactly_the_described_outputs(
    program: tuple[str, ProgramRun],
) -> None:
    stack, run = program
    described = {o.name for o in outputs.for_platform(STACKS[stack])}
    exported = set(run.exports)
    assert exported - described == set(), f"{stack}: exported but not described"
    assert described - exported == set(), f"{stack}: described but not exported"


def test_every_described_output_is_exported_by_some_stack() -> None:
    for output in outputs.OUTPUTS:
        assert output.platforms, f"{output.name}: no platform exports it"
        assert set(output.platforms) <= set(outputs.PLATFORMS), output.name
        assert len(output.description) > 10, f"{output.name}: describe what it holds"
    assert len(outputs.BY_NAME) == len(outputs.OUTPUTS), "an output is described twice"


def test_secret_outputs_are_exported_as_secrets(program: tuple[str, ProgramRun]) -> None:
    stack, run = program
    secret = {o.name for o in outputs.for_platform(STACKS[stack]) if o.secret}
    assert secret <= run.secret_exports, f"{stack}: not secret: {secret - run.secret_exports}"


def test_no_output_that_is_not_secret_holds_a_password(program: tuple[str, ProgramRun]) -> None:
    """Every generated password's mocked value is searched for in every plain output."""
    stack, run = program
    hook = OUTPUT_HOOKS["random:index/randomPassword:RandomPassword"]
    passwords = [
        str(hook(r.name, {})["result"])
        for r in run.of_type("random:index/randomPassword:RandomPassword")
    ]
    for key, value in run.exports.items():
        if key in run.secret_exports:
            continue
        text = json.dumps(value, default=str)
        leaked = [p for p in passwords if p in text]
        assert not leaked, f"{stack}: output {key} is not secret but holds a password"
        assert "mock-auth-string" not in text, f"{stack}: output {key} holds the AUTH string"


def test_the_outputs_reference_is_a_markdown_table_of_every_output() -> None:
    markdown = outputs.outputs_markdown()
    rows = [line for line in markdown.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [o.name for o in outputs.OUTPUTS]
    assert all(row.count("|") == 5 for row in rows), "a description breaks the table"


def test_an_undescribed_output_stops_the_program() -> None:
    with pytest.raises(Exception, match=r"not described there: \['surprise'\]"):
        stack.export_outputs(outputs.BOOTSTRAP, {"surprise": 1})
