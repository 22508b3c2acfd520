"""Plaintext scratch directories: private, removed on exit, and swept after a killed run."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from infra.backup import workdir


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(child.stdout)


def _leftover(root: Path, pid: int, host: str | None = None) -> Path:
    path = root / f"{workdir.PREFIX}pgdump-{host or workdir._host()}-{pid}-abc123"
    path.mkdir(mode=0o700)
    (path / "toc.dat").write_bytes(b"plaintext rows")
    return path


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    return tmp_path


def test_a_workdir_is_private_and_gone_after_use(temp_root: Path) -> None:
    with workdir.private_workdir("verify") as work:
        assert work.parent == temp_root
        assert stat.S_IMODE(work.stat().st_mode) == 0o700
        assert f"-{os.getpid()}-" in work.name
        (work / "dump").write_bytes(b"rows")
    assert not work.exists()


def test_a_dead_runs_leftover_is_swept_by_the_next_workdir(temp_root: Path) -> None:
    dead = _leftover(temp_root, _dead_pid())
    with workdir.private_workdir("restore"):
        assert not dead.exists()


def test_a_live_processs_workdir_is_never_touched(temp_root: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = _leftover(temp_root, sleeper.pid)
        mine = _leftover(temp_root, os.getpid())
        assert workdir.sweep() == []
        assert live.exists()
        assert mine.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert workdir.sweep() == [live]


def test_only_this_hosts_directories_of_our_own_pattern_are_swept(temp_root: Path) -> None:
    pid = _dead_pid()
    other_host = _leftover(
        temp_root, pid, host="0badc0de" if workdir._host() != "0badc0de" else "1badc0de"
    )
    stranger = temp_root / f"{workdir.PREFIX}notes"
    stranger.mkdir()
    target = temp_root / "elsewhere"
    target.mkdir()
    link = temp_root / f"{workdir.PREFIX}pgdump-{workdir._host()}-{pid}-link"
    link.symlink_to(target, target_is_directory=True)
    assert workdir.sweep() == []
    for kept in (other_host, stranger, target, link):
        assert kept.exists(), kept


def test_a_purpose_that_could_break_the_name_is_refused() -> None:
    with pytest.raises(ValueError, match="lower-case letters"), workdir.private_workdir("a-b"):
        pass


def test_a_directory_removed_while_another_run_sweeps_is_skipped(
    temp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs at once: the other one removes its own directory (or sweeps it) while this
    sweep is looking at it, after finding it a directory. Seen in CI with two test workers."""
    gone = _leftover(temp_root, _dead_pid())
    kept = _leftover(temp_root, _dead_pid())
    original = Path.is_symlink

    def removed_meanwhile(self: Path) -> bool:
        if self == gone and gone.exists():
            shutil.rmtree(gone)
        return original(self)

    monkeypatch.setattr(Path, "is_symlink", removed_meanwhile)
    assert workdir.sweep() == [kept]
    assert not kept.exists()
