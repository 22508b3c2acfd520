"""``envfiles`` turns the stack's service_env output into private env files."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def envfiles(out: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra", "envfiles", "--out", str(out)],
        input=stdin,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_writes_one_private_file_per_service(tmp_path: Path) -> None:
    output = {
        "users": "DATABASE_URL=postgresql://users_app:pw@127.0.0.1:15432/users\n",
        "audit": "DATABASE_URL=postgresql://audit_app:pw@127.0.0.1:15432/audit\n",
    }
    result = envfiles(tmp_path, json.dumps(output))
    assert result.returncode == 0, result.stderr
    for name, content in output.items():
        path = tmp_path / "services" / f"{name}.env"
        assert path.read_text() == content
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_refuses_input_that_is_not_the_stack_output(tmp_path: Path) -> None:
    result = envfiles(tmp_path, "not json")
    assert result.returncode == 2
    assert result.stderr.startswith("error: stdin is not JSON")
    result = envfiles(tmp_path, json.dumps({"../../etc/passwd": "x"}))
    assert result.returncode == 2
    assert "not a service name" in result.stderr
    assert not (tmp_path / "services").exists()
