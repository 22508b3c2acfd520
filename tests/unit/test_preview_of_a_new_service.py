"""The preview of an added service (its passwords not generated yet) leaves every server's
inputs known, in dev and prod: an unknown input of a container is previewed, and applied, as
its replacement, so every server would restart for one new service.

Each case runs in a fresh interpreter: the SDK keeps its settings in context variables, and a
program run earlier in the same process (any other mock test) leaves the next run's preview
flag without effect, so unknown outputs would come back as None.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime.rpc import UNKNOWN

from infra.provisioning.unknowns import is_unknown
from tests.unit.pulumi_mocks import OUTPUT_HOOKS, run_program, stack_config
from tests.unit.test_live_config import DYNAMIC, PASSWORD, SERVERS

REPO = Path(__file__).resolve().parents[2]


def unknown_inputs(stack: str) -> dict[str, bool]:
    """Preview ``stack`` with its first three services, the third's passwords unknown: the new
    service's database and each server -> whether its inputs hold an unknown."""
    config = stack_config(stack)
    services = json.loads(config["persistence:services"])[:3]
    config["persistence:services"] = json.dumps(services)
    new = services[-1]["name"]
    known = OUTPUT_HOOKS[PASSWORD]

    def password(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"result": UNKNOWN} if name.startswith(f"{new}-") else known(name, inputs)

    OUTPUT_HOOKS[PASSWORD] = password
    try:
        run = run_program(stack, config, preview=True)
    finally:
        OUTPUT_HOOKS[PASSWORD] = known
    found = {"new service": is_unknown(run.one(DYNAMIC, f"{new}-database").raw_inputs)}
    for token, name in SERVERS[stack]:
        found[str(run.one(token, name))] = is_unknown(run.one(token, name).raw_inputs)
    return found


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_preview_of_a_new_service_leaves_every_server_known(stack: str) -> None:
    script = (
        "import json; from tests.unit.test_preview_of_a_new_service import unknown_inputs; "
        f"print(json.dumps(unknown_inputs({stack!r})))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    found = json.loads(completed.stdout.strip().splitlines()[-1])
    assert found.pop("new service"), "the mock did not leave the new service's passwords unknown"
    unknown = [server for server, is_unknown_ in found.items() if is_unknown_]
    assert not unknown, f"{stack}: unknown in the preview of a new service: {unknown}"
