"""The pacer (infra/platforms/pacing.py) under the real Pulumi engine.

The prod stack, the pacer's user, cannot run here (it needs Google Cloud), and the dev stack is
too small to reach a checkpoint. So a program of its own declares random passwords through a
``Pacer`` with a small batch, under the engine and the random provider `make engine` built:
``pulumi up`` must finish (a pacer that waits on the wrong thing would hang it), and the
registrations must complete while the program is still declaring, one checkpoint behind.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.stack import ENGINE_BIN, REPO, engine_environment, missing_engine

COUNT, EVERY = 30, 5
PROGRAM = f"""
import json
import os

import pulumi
import pulumi_random as random

from infra.platforms.pacing import Pacer

pacer = Pacer(every={EVERY})
registered: list[str] = []
seen = []  # registrations complete when each password is declared
for i in range({COUNT}):
    seen.append(len(registered))
    password = pacer.track(random.RandomPassword(f"p{{i}}", length=16))
    password.urn.apply(registered.append)
with open(os.environ["PACING_LOG"], "w", encoding="utf-8") as handle:
    json.dump(seen, handle)
"""


def _project(root: Path) -> dict[str, str]:
    project = root / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(
        "name: pacing\nmain: ./\nruntime:\n  name: python\n  options:\n"
        "    toolchain: pip\n    virtualenv: .venv\n",
        encoding="utf-8",
    )
    (project / "__main__.py").write_text(PROGRAM, encoding="utf-8")
    for name in ("infra", ".venv"):
        (project / name).symlink_to(REPO / name)
    return {**os.environ, **engine_environment(root), "PACING_LOG": str(root / "seen.json")}


def _pulumi(env: dict[str, str], cwd: Path, *args: str) -> str:
    completed = subprocess.run(
        [str(ENGINE_BIN / "pulumi"), *args, "--non-interactive"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # a pacer waiting for what never registers would hang here
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed.stdout


def test_registrations_complete_while_a_paced_program_declares(tmp_path: Path) -> None:
    missing = missing_engine()
    if missing:
        pytest.fail(f"the Pulumi engine is not built ({', '.join(missing)}): run `make engine`")
    env = _project(tmp_path)
    project = tmp_path / "project"
    _pulumi(env, project, "stack", "init", "pacing")
    _pulumi(env, project, "up", "--yes", "--skip-preview", "--color", "never")

    seen = json.loads((tmp_path / "seen.json").read_text(encoding="utf-8"))
    # Declaring password i, at most two batches may still be pending: the one being declared
    # and the one before it. An unpaced program sees none registered until it returns.
    lagging = [(i, n) for i, n in enumerate(seen) if n < i - 2 * EVERY]
    assert not lagging, f"(declared, registered) while declaring: {lagging}"
    resources = json.loads(_pulumi(env, project, "stack", "export"))["deployment"]["resources"]
    created = [r for r in resources if r["type"] == "random:index/randomPassword:RandomPassword"]
    assert len(created) == COUNT
