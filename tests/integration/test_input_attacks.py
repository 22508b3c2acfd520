"""Names, files and inputs (issue 20, class 5): each attack through ``python -m infra`` as a user
runs it (a subprocess), against real servers where a server is what breaks.

Every refusal is one line on stderr naming the file or key and what is allowed; never a
traceback.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from infra.config import StackConfig
from infra.credentials import Credentials
from infra.render import redis as redis_render
from tests.servers.process import free_port, require_binary

REPO = Path(__file__).resolve().parents[2]

ONE_SERVICE = """\
config:
  persistence:platform: docker
  persistence:services:
    - name: ops
"""


def infra(
    *argv: str,
    stdin: str | None = None,
    umask: int | None = None,
    env: dict[str, str] | None = None,
    preexec: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m infra ARGV`` from the repository root, as a user types it."""

    def before() -> None:
        if umask is not None:
            os.umask(umask)
        if preexec is not None:
            preexec()

    return subprocess.run(
        [sys.executable, "-m", "infra", *argv],
        cwd=REPO,
        input=stdin,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=before,  # only os calls, before exec
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a refusal (never a traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_redis_admin_named_like_a_service_stops_redis_and_is_refused(
    dev_config: StackConfig, dev_rendered: tuple[Path, Credentials], tmp_path: Path
) -> None:
    _, credentials = dev_rendered
    service = dev_config.services[0].name
    # The harm, on a real redis-server: the ACL file such a stack renders stops Redis cold.
    colliding = dataclasses.replace(
        dev_config, redis=dataclasses.replace(dev_config.redis, admin_user=service)
    )
    acl = tmp_path / "users.acl"
    acl.write_text(redis_render.users_acl(colliding, credentials))
    redis_server = require_binary("redis-server", "redis-server")
    options = f"--port {free_port()} --bind 127.0.0.1 --daemonize no --dir {tmp_path}"
    server = subprocess.run(
        [redis_server, *options.split(), "--save", "", "--aclfile", str(acl)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert server.returncode != 0
    assert f"Duplicate user '{service}'" in server.stdout + server.stderr
    # The tool refuses such a stack before it writes anything.
    stack = tmp_path / "Pulumi.clash.yaml"
    stack.write_text(ONE_SERVICE + "  persistence:redis:\n    admin_user: ops\n")
    out = tmp_path / "out"
    result = infra("render", "--stack", str(stack), "--out", str(out), "--secrets",
                   str(tmp_path / "s.json"))  # fmt: skip
    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert line.startswith("error: Pulumi.clash.yaml: persistence:redis.admin_user: 'ops' is a"), (
        line
    )
    assert not out.exists()
