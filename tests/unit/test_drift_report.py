"""``drift-report`` (what ``make drift`` prints): the steps ``pulumi up`` would take, not the
values the provider only reports back differently after a refresh."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
URN = "urn:pulumi:dev::persistence::persistence:docker:Platform$docker:index/container:Container"


def report(preview: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra", "drift-report"],
        input=f"pulumi --non-interactive preview --refresh --json\n{json.dumps(preview)}",
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def test_refresh_normalizations_alone_are_no_drift() -> None:
    steps = [
        {"op": "refresh", "urn": f"{URN}::redis", "detailedDiff": {"dns": {"kind": "ADD"}}},
        {"op": "same", "urn": f"{URN}::postgres"},
    ]
    completed = report({"steps": steps})
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("no drift")


def test_a_step_up_would_take_is_drift_named_with_what_differs() -> None:
    steps = [
        {"op": "refresh", "urn": f"{URN}::redis"},
        {"op": "update", "urn": f"{URN}::redis", "diffReasons": ["mustRun"]},
        {"op": "create", "urn": f"{URN}::backup"},
    ]
    completed = report({"steps": steps})
    assert completed.returncode == 1
    lines = completed.stdout.splitlines()
    assert lines[0].startswith("drift: 2 resource(s)")
    assert lines[1:] == [
        "  update docker:index/container:Container redis: mustRun",
        "  create docker:index/container:Container backup",
    ]


def test_input_that_is_not_a_preview_is_a_one_line_error() -> None:
    completed = report(["not", "a", "preview"])
    assert completed.returncode == 2
    assert completed.stderr.strip().startswith("error: stdin is not a preview")
    assert "Traceback" not in completed.stderr
