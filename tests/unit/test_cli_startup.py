"""Every ``python -m infra`` run pays for building the parser: keep it to the parser (issue 22).

The database driver, the Redis client, Pulumi's and Google's SDKs, Jinja and the backup tooling
cost ~0.6 s of imports together; a command that needs them imports them when it runs. Measured
the way a user runs it: a fresh interpreter, ``-X importtime``, the modules it really loaded.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from infra.config.load import REPO_ROOT

HEAVY = ("psycopg", "redis", "pulumi", "google", "jinja2", "infra.backup")


def imported(*argv: str) -> set[str]:
    """The modules ``python -X importtime -m infra ARGV`` loaded (it must exit 0)."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "infra", *argv],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip()
        for line in run.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["db", "apply", "--help"],
        ["backup", "--help"],
        ["restore", "--help"],
        ["render", "--help"],
        ["rebuild", "--help"],
        ["plan", "--help"],
    ],
)
def test_building_and_parsing_imports_no_driver_sdk_template_or_backup_module(
    argv: list[str],
) -> None:
    loaded = imported(*argv)
    assert "infra.cli" in loaded, "importtime saw nothing: the check would be vacuous"
    heavy = sorted(
        name for name in loaded if any(name == h or name.startswith(f"{h}.") for h in HEAVY)
    )
    assert heavy == [], f"python -m infra {' '.join(argv)} imported {heavy}"
