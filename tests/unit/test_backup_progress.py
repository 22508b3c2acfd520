"""Progress lines appear on a terminal and stay out of CI logs and pipes."""

from __future__ import annotations

import io

import pytest

from infra.backup.progress import human, track


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_names_the_service_and_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    screen = Terminal()
    assert b"".join(track([b"x" * 2048, b"y" * 1024], "postgres/users", screen)) == (
        b"x" * 2048 + b"y" * 1024
    )
    assert "postgres/users: 3.0 KiB done" in screen.getvalue()


def test_quiet_in_ci_and_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    screen = Terminal()
    list(track([b"x"], "postgres/users", screen))
    assert screen.getvalue() == ""
    monkeypatch.delenv("CI")
    pipe = io.StringIO()
    list(track([b"x"], "postgres/users", pipe))
    assert pipe.getvalue() == ""


def test_human_sizes() -> None:
    assert human(512) == "512 B"
    assert human(5 * 1024**2) == "5.0 MiB"
    assert human(3 * 1024**3) == "3.0 GiB"
