"""``rebuild``'s output: the engine's lines one per line, a line per part, the JSON summary last.

The engine and the servers are replaced at the command's seams (the real engine runs it in
tests/e2e; the restores run against real servers in tests/integration); what is tested here is
what a CI log shows and what the summary holds.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from infra import automation
from infra.backup import recovery
from infra.cli import main
from infra.commands import backup as backup_commands
from infra.config.load import REPO_ROOT
from infra.credentials import Credentials, credentials_json


class FakeStack:
    """Streams output the way the Automation API does: chunks, some with redraws."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def _run(self, **kwargs: Any) -> SimpleNamespace:
        self.calls.append(kwargs)
        kwargs["on_output"]("Updating (dev):")
        kwargs["on_output"]("  docker:Container redis creating\r  docker:Container redis created")
        return SimpleNamespace(summary=SimpleNamespace(resource_changes={"same": 3}), outputs={})

    def refresh(self, **kwargs: Any) -> SimpleNamespace:
        return self._run(**kwargs)

    def up(self, **kwargs: Any) -> SimpleNamespace:
        result = self._run(**kwargs)
        credentials = Credentials.generate()
        values = {
            "backup_bucket": "file:///nonexistent-bucket",
            "postgres_admin_url": "postgresql://platform_admin:pw@127.0.0.1:15432/postgres",
            "redis_admin_url": "redis://platform_admin:secret@127.0.0.1:16379/0",
            "rabbitmq_management_url": "http://127.0.0.1:16672/",
            "credentials": credentials_json(credentials),
        }
        result.outputs = {k: SimpleNamespace(value=v) for k, v in values.items()}
        return result


def test_rebuild_prints_line_by_line_and_reports_every_part(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = FakeStack()
    monkeypatch.setattr(automation, "select", lambda name, work_dir: stack)
    seen: dict[str, Any] = {}

    def services(*args: Any, say: Any, before: Any, **kwargs: Any) -> dict[str, Any]:
        seen["before"] = before
        say("users: restored 20260101T000000.000000Z in 1.0s")
        return {"users": {"ok": True, "recovery_time_s": 2.0, "recovery_point_s": 60.0}}

    def redis(target: Any, url: str, *args: Any, say: Any, **kwargs: Any) -> dict[str, Any]:
        seen["redis_url"] = url
        say("redis/users: restored 3 keys")
        return {"ok": True, "recovery_time_s": 3.0, "recovery_point_s": 61.0, "services": {}}

    def rabbitmq(target: Any, url: str, *args: Any, say: Any, **kwargs: Any) -> dict[str, Any]:
        say("rabbitmq/users: 1 queues, 1 exchanges, 1 bindings, 1 policies restored")
        return {"ok": False, "error": "no verified backup of rabbitmq/server"}

    # rebuild imports these when it runs (not at start-up), so they are replaced at home.
    monkeypatch.setattr(recovery, "restore_services", services)
    monkeypatch.setattr(recovery, "restore_redis", redis)
    monkeypatch.setattr(recovery, "restore_rabbitmq", rabbitmq)
    monkeypatch.setattr(backup_commands, "secure", lambda *args: True)

    code = main(["rebuild", "--stack", "dev", "--project-dir", str(REPO_ROOT)])
    out = capsys.readouterr().out

    assert code == 1  # one part failed: the command says so
    for call in stack.calls:
        assert call["suppress_progress"] is True
        assert call["color"] == "never"
    lines = out.splitlines()
    assert "Updating (dev):" in lines
    assert "  docker:Container redis created" in lines  # a redraw became its own line
    assert "\r" not in out
    assert "up: 3 same" in lines
    assert "users: restored 20260101T000000.000000Z in 1.0s" in lines
    assert "redis/users: restored 3 keys" in lines
    assert seen["redis_url"] == "redis://127.0.0.1:16379"  # the password travels in AUTH only
    assert seen["before"] is not None
    summary = json.loads(out[out.index("\n{") :])
    assert summary["ok"] is False
    assert summary["services"]["users"]["recovery_time_s"] == 2.0
    assert summary["redis"]["recovery_point_s"] == 61.0
    assert summary["rabbitmq"] == {"ok": False, "error": "no verified backup of rabbitmq/server"}


def test_a_stack_file_in_the_project_directory_selects_its_stack(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--stack Pulumi.dev.yaml`` (or its full path) is stack 'dev', as for every command."""
    selected: list[tuple[str, Any]] = []

    def select(name: str, work_dir: Any) -> Any:
        selected.append((name, work_dir))
        raise automation.EngineError("stop here")

    monkeypatch.setattr(automation, "select", select)
    assert main(["rebuild", "--stack", str(REPO_ROOT / "Pulumi.dev.yaml")]) == 1
    assert selected == [("dev", REPO_ROOT)]
    assert capsys.readouterr().err == "error: stop here\n"
