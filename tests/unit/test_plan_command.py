"""``python -m infra plan`` (``make plan``): what a fork's pull request is shown, from the stack
file alone. Run as a subprocess with no backend, no passphrase and no cloud credentials."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECRET_ENV = ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")


def plan(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV and "GOOGLE" not in k}
    env["HOME"] = "/nonexistent"  # no ~/.pulumi, no gcloud credentials, no secrets file
    return subprocess.run(
        [sys.executable, "-m", "infra", "plan", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("stack", "component", "expected"),
    [
        ("dev", "persistence:docker:Platform", "docker:index/container:Container"),
        ("prod", "persistence:gcp:Platform", "gcp:sql/databaseInstance:DatabaseInstance"),
        (
            "bootstrap",
            "persistence:bootstrap:Platform",
            "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider",
        ),
    ],
)
def test_plan_lists_every_declared_resource_without_credentials(
    stack: str, component: str, expected: str
) -> None:
    result = plan("--stack", stack, "--json")
    assert result.returncode == 0, result.stderr
    types = [r["type"] for r in json.loads(result.stdout)["resources"]]
    assert component in types, types
    assert expected in types, types
    text = plan("--stack", stack)
    assert text.returncode == 0, text.stderr
    assert f"resources declared by stack {stack!r}" in text.stdout.splitlines()[-1]


def test_plan_of_a_bad_stack_file_is_one_line_per_problem(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text("config:\n  persistence:platform: bootstrap\n")
    result = plan("--stack", str(stack))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "error: Pulumi.bad.yaml: persistence:bootstrap.github_repository: required for platform "
        "'bootstrap': the repository whose workflows may authenticate "
        "(e.g. 'example-org/persistence')"
    ]
