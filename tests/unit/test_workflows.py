"""Every workflow, parsed: what it runs exists, what it uses is pinned, what it may do is least.

actionlint (``make lint``) checks the syntax and expressions; these tests check the contract
with this repository: the make targets and ``python -m infra`` commands (with their options)
a step runs, the stacks a job names, action pins, and each job's permissions.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
STACKS = {p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in REPO.glob("Pulumi.*.yaml")}
AUTH = "google-github-actions/auth"
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@(?:[0-9a-f]{40}|v\d+\.\d+\.\d+)$")
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


@dataclass(frozen=True)
class Job:
    """One job of one workflow, with the names tests print when it breaks a rule."""

    workflow: str
    name: str
    body: dict[str, Any]
    document: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.workflow}:{self.name}"

    @property
    def steps(self) -> list[dict[str, Any]]:
        return list(self.body.get("steps", []))

    @property
    def uses(self) -> list[str]:
        return [str(step["uses"]) for step in self.steps if "uses" in step]

    @property
    def scripts(self) -> list[str]:
        """Each ``run:`` script with its line continuations joined."""
        return [str(step["run"]).replace("\\\n", " ") for step in self.steps if "run" in step]

    @property
    def permissions(self) -> dict[str, str]:
        value = self.body.get("permissions")
        assert isinstance(value, dict), f"{self}: set permissions: per job (got {value!r})"
        return {str(k): str(v) for k, v in value.items()}

    def with_inputs(self, action: str) -> list[dict[str, Any]]:
        return [
            dict(step.get("with") or {})
            for step in self.steps
            if str(step.get("uses", "")).startswith(f"{action}@")
        ]


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    if True in document:
        document["on"] = document.pop(True)
    return dict(document)


def jobs() -> Iterator[Job]:
    for path in WORKFLOWS:
        document = _load(path)
        for name, body in document["jobs"].items():
            yield Job(path.name, name, body, document)


ALL_JOBS = list(jobs())


def make_targets() -> set[str]:
    """Rule names in the Makefile (``target: prerequisites``, not ``VAR := value``)."""
    targets: set[str] = set()
    for line in (REPO / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_./$()-][A-Za-z0-9_./$() -]*):(?![=])", line)
        if match and not line.startswith(("\t", "#", ".PHONY")):
            targets.update(match.group(1).split())
    return targets


def make_calls(script: str) -> Iterator[list[str]]:
    """The words after each ``make`` in a script: targets and VAR=value assignments."""
    for match in re.finditer(r"(?:^|[\s;&|(])make\s+([^\n;&|)]*)", script):
        yield shlex.split(EXPRESSION.sub("X", match.group(1)))


def infra_calls(script: str) -> Iterator[list[str]]:
    """The arguments of each ``python -m infra`` in a script, up to a redirect or pipe."""
    for match in re.finditer(r"python3? -m infra\s+([^\n;&|>]*)", script):
        yield shlex.split(EXPRESSION.sub("X", match.group(1)))


def _descend(
    parser: argparse.ArgumentParser, words: list[str]
) -> tuple[argparse.ArgumentParser, list[str]]:
    """The parser of the innermost sub-command ``words`` name, and the sub-commands taken."""
    path: list[str] = []
    for word in words:
        if word.startswith("-"):
            break
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or word not in sub.choices:
            break
        parser = sub.choices[word]
        path.append(word)
    return parser, path


def test_there_are_the_four_workflows() -> None:
    names = {path.name for path in WORKFLOWS}
    assert names == {"preview.yml", "deploy.yml", "drift.yml", "dr-drill.yml"}, names


@pytest.mark.parametrize("job", ALL_JOBS, ids=str)
def test_every_make_target_a_job_runs_exists(job: Job) -> None:
    targets = make_targets()
    for script in job.scripts:
        for words in make_calls(script):
            wanted = [w for w in words if "=" not in w and not w.startswith("-")]
            assert wanted, f"{job}: bare `make` in {script!r}"
            missing = [w for w in wanted if w not in targets]
            assert missing == [], f"{job}: no make target {missing} (have {sorted(targets)})"


@pytest.mark.parametrize("job", ALL_JOBS, ids=str)
def test_every_infra_command_a_job_runs_exists_with_its_options(job: Job) -> None:
    for script in job.scripts:
        for words in infra_calls(script):
            parser, path = _descend(build_parser(), words)
            assert path, f"{job}: `python -m infra {' '.join(words)}` names no command"
            has_sub = any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
            assert not has_sub, f"{job}: `python -m infra {' '.join(path)}` needs a sub-command"
            options = [w.split("=")[0] for w in words if w.startswith("--")]
            unknown = [o for o in options if o not in parser._option_string_actions]
            assert unknown == [], f"{job}: `python -m infra {' '.join(path)}` has no {unknown}"


def stacks_named(job: Job) -> Iterator[str]:
    """Stacks a job names: pulumi/actions' stack-name, --stack and STACK= in its scripts."""
    for inputs in job.with_inputs("pulumi/actions"):
        if "stack-name" in inputs:
            yield str(inputs["stack-name"])
    for script in job.scripts:
        yield from re.findall(r"--stack[ =]([A-Za-z0-9_-]+)", EXPRESSION.sub("", script))
        yield from re.findall(r"\bSTACK=\"?([A-Za-z0-9_-]+)", EXPRESSION.sub("", script))
    matrix = (job.body.get("strategy") or {}).get("matrix") or {}
    yield from (str(stack) for stack in matrix.get("stack", []))


@pytest.mark.parametrize("job", ALL_JOBS, ids=str)
def test_every_stack_a_job_names_exists(job: Job) -> None:
    for stack in stacks_named(job):
        assert stack in STACKS, f"{job}: no Pulumi.{stack}.yaml for stack {stack!r}"


def test_the_workflows_cover_every_deployed_stack() -> None:
    """dev and prod are previewed, deployed and drift-checked; bootstrap is applied by hand."""
    for workflow in ("preview.yml", "deploy.yml", "drift.yml"):
        named = {s for job in ALL_JOBS if job.workflow == workflow for s in stacks_named(job)}
        assert {"dev", "prod"} <= named, f"{workflow} names only {named}"


@pytest.mark.parametrize("job", ALL_JOBS, ids=str)
def test_every_third_party_action_is_pinned(job: Job) -> None:
    for uses in job.uses:
        if uses.startswith("./"):
            continue
        assert PINNED.match(uses), f"{job}: {uses} is not pinned to a full SHA or vX.Y.Z"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_grant_nothing_by_default(path: Path) -> None:
    assert _load(path).get("permissions") == {}, f"{path.name}: set `permissions: {{}}` on top"


@pytest.mark.parametrize("job", ALL_JOBS, ids=str)
def test_each_job_has_the_least_permissions(job: Job) -> None:
    permissions = job.permissions
    authenticates = any(uses.startswith(f"{AUTH}@") for uses in job.uses)
    comments = any(
        str(inputs.get("comment-on-pr")).lower() == "true"
        for inputs in job.with_inputs("pulumi/actions")
    )
    allowed = {"contents": "read"}
    if authenticates:
        allowed["id-token"] = "write"
    if comments:
        allowed["pull-requests"] = "write"
    assert permissions == allowed, f"{job}: permissions {permissions}, needs exactly {allowed}"


@pytest.mark.parametrize("job", ALL_JOBS, ids=str)
def test_only_same_repository_pull_requests_reach_secrets_or_cloud(job: Job) -> None:
    """A fork's pull request gets lint, unit tests and the mocks plan, nothing with secrets."""
    if "pull_request" not in job.document["on"]:
        return
    text = yaml.safe_dump(job.body)
    uses_secrets = "secrets." in text or job.permissions.get("id-token") == "write"
    same_repo = "github.event.pull_request.head.repo.full_name == github.repository"
    if uses_secrets:
        assert same_repo in str(job.body.get("if", "")), f"{job}: runs for forks with secrets"


def test_pull_request_preview_comments_once_per_stack() -> None:
    previews = [
        (job, inputs)
        for job in ALL_JOBS
        if job.workflow == "preview.yml"
        for inputs in job.with_inputs("pulumi/actions")
    ]
    stacks = sorted(str(inputs["stack-name"]) for _, inputs in previews)
    assert stacks == ["dev", "prod"], stacks
    for job, inputs in previews:
        assert inputs["command"] == "preview", job
        assert inputs["diff"] is True, job
        assert inputs["comment-on-pr"] is True, job
        assert inputs["edit-pr-comment"] is True, f"{job}: would post a new comment every push"


def test_fork_pull_requests_see_a_mocks_plan_of_every_stack() -> None:
    (plan,) = [job for job in ALL_JOBS if job.workflow == "preview.yml" and job.name == "plan"]
    assert "if" not in plan.body, "the mocks plan must run for forks too"
    assert set(plan.body["strategy"]["matrix"]["stack"]) == STACKS
    assert any("make plan" in script for script in plan.scripts)


def test_deploys_go_dev_then_prod_behind_the_prod_environment() -> None:
    deploy = {job.name: job for job in ALL_JOBS if job.workflow == "deploy.yml"}
    assert deploy["prod"].body["needs"] == "dev"
    assert deploy["prod"].body["environment"] == "prod"
    assert "environment" not in deploy["dev"].body
    for stack, job in deploy.items():
        concurrency = job.body["concurrency"]
        assert concurrency["group"] == f"deploy-{stack}", job
        assert concurrency["cancel-in-progress"] is False, f"{job}: may cancel a running update"
        (inputs,) = job.with_inputs("pulumi/actions")
        assert (inputs["command"], inputs["stack-name"]) == ("up", stack), job
    triggers = _load(REPO / ".github/workflows/deploy.yml")["on"]
    assert triggers == {"push": {"branches": ["main"]}}, triggers


def test_only_deploy_and_the_drill_use_the_deploy_account() -> None:
    for job in ALL_JOBS:
        for inputs in job.with_inputs(AUTH):
            account = str(inputs["service_account"])
            if "DEPLOY" in account:
                assert job.workflow in ("deploy.yml", "dr-drill.yml"), f"{job} deploys"
            else:
                assert "PREVIEW" in account, f"{job}: unknown account {account}"
            assert "credentials_json" not in inputs, f"{job}: a JSON key"


def test_drift_and_drill_run_daily_monthly_and_by_hand() -> None:
    drift = _load(REPO / ".github/workflows/drift.yml")["on"]
    drill = _load(REPO / ".github/workflows/dr-drill.yml")["on"]
    assert "workflow_dispatch" in drift
    assert "workflow_dispatch" in drill
    (daily,) = drift["schedule"]
    assert re.fullmatch(r"\d+ \d+ \* \* \*", daily["cron"]), daily
    (monthly,) = drill["schedule"]
    assert re.fullmatch(r"\d+ \d+ \d+ \* \*", monthly["cron"]), monthly
    scripts = "\n".join(s for job in ALL_JOBS if job.workflow == "drift.yml" for s in job.scripts)
    for stack in ("dev", "prod"):
        assert f"make drift STACK={stack}" in scripts
    # The target the e2e suite also runs against the real engine (tests/e2e/test_lifecycle.py).
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("\ndrift:", 1)[1].split("\n\n", 1)[0]
    assert "\nPULUMI := pulumi " in makefile
    assert "$(PULUMI) preview --stack $(STACK) --refresh --json" in recipe, recipe
    assert "python -m infra drift-report" in recipe, recipe
    assert scripts.count("db plan --check --json") == 2


def test_the_pulumi_cli_the_workflows_install_is_the_pinned_engine() -> None:
    pinned = re.search(r"^pulumi==(\S+)", (REPO / "requirements.txt").read_text(), re.M)
    assert pinned is not None
    for job in ALL_JOBS:
        for inputs in job.with_inputs("pulumi/actions"):
            assert str(inputs.get("pulumi-version")) == pinned.group(1), job


@pytest.mark.parametrize("job", ALL_JOBS, ids=str)
def test_every_repository_script_a_job_runs_exists_and_is_executable(job: Job) -> None:
    for script in job.scripts:
        for relative in re.findall(r"(?:^|\s)(\.github/scripts/[A-Za-z0-9_.-]+)", script):
            path = REPO / relative
            assert path.is_file(), f"{job}: {relative} does not exist"
            assert path.stat().st_mode & 0o111, f"{job}: {relative} is not executable"
