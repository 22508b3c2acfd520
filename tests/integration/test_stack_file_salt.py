"""The dev passphrase's salt never reaches git, through the Makefile a user runs.

Pulumi writes ``encryptionsalt:`` (the salt of the developer's own generated passphrase) into
Pulumi.dev.yaml on first use. Committed, it makes every other developer's first ``make up`` fail
with "incorrect passphrase". ``make setup`` configures the filter ``.gitattributes`` names, and
``make up``/``make preview`` end with ``salt-refresh``. Real git, real make, in a scratch
repository holding this checkout's Makefile, .gitattributes and Pulumi.dev.yaml.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SALT = "encryptionsalt: v1:CuliMyFm/BU=:v1:hQ3ZA0VfLuoDyFPA:tzkTEZz8UHuKhwTaTEQxQYbHSdrHDA==\n"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *argv: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *argv], capture_output=True, text=True, check=True
    ).stdout


def make(repo: Path, *argv: str) -> None:
    subprocess.run(["make", "-s", "-C", str(repo), *argv], capture_output=True, check=True)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A repository with this checkout's Makefile, .gitattributes and Pulumi.dev.yaml committed."""
    repo = tmp_path / "checkout"
    repo.mkdir()
    for name in ("Makefile", ".gitattributes"):
        shutil.copy(REPO / name, repo / name)
    # As committed: this checkout's own file may carry its developer's salt already.
    lines = (REPO / "Pulumi.dev.yaml").read_text().splitlines(keepends=True)
    committed = "".join(line for line in lines if not line.startswith("encryptionsalt:"))
    (repo / "Pulumi.dev.yaml").write_text(committed)
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "config", "user.name", "dev")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "checkout")
    return repo


def appended(repo: Path, text: str) -> None:
    with (repo / "Pulumi.dev.yaml").open("a") as stack_file:
        stack_file.write(text)


def salted(repo: Path) -> None:
    """What Pulumi does to the stack file on first use."""
    appended(repo, SALT)


def test_without_the_filter_the_salt_would_be_committed(checkout: Path) -> None:
    """The control: what a checkout without `make setup`'s filter does."""
    salted(checkout)
    assert "+encryptionsalt:" in git(checkout, "diff")
    git(checkout, "commit", "-q", "-am", "added a service")
    assert "encryptionsalt:" in git(checkout, "show", "HEAD:Pulumi.dev.yaml")


def test_the_salt_never_reaches_a_commit(checkout: Path) -> None:
    make(checkout, "git-filters")
    salted(checkout)
    appended(checkout, "# billing added\n")
    diff = git(checkout, "diff")
    assert "encryptionsalt" not in diff, diff
    assert "+# billing added" in diff, diff
    git(checkout, "commit", "-q", "-am", "added a service")
    committed = git(checkout, "show", "HEAD:Pulumi.dev.yaml")
    assert "encryptionsalt" not in committed
    assert "# billing added" in committed
    # The developer's own file keeps its salt: Pulumi goes on using it.
    assert SALT in (checkout / "Pulumi.dev.yaml").read_text()


def test_a_salt_only_change_leaves_git_status_clean(checkout: Path) -> None:
    make(checkout, "git-filters")
    salted(checkout)
    assert git(checkout, "status", "--porcelain") != ""  # the size changed: git cannot tell
    make(checkout, "salt-refresh")
    assert git(checkout, "status", "--porcelain") == ""
    assert SALT in (checkout / "Pulumi.dev.yaml").read_text()


def test_salt_refresh_never_stages_the_developers_own_edits(checkout: Path) -> None:
    make(checkout, "git-filters")
    salted(checkout)
    appended(checkout, "# not yet reviewed\n")
    (checkout / "Pulumi.other.yaml").write_text("config: {}\n" + SALT)
    make(checkout, "salt-refresh")
    make(checkout, "salt-refresh", "STACK=other")
    assert sorted(git(checkout, "status", "--porcelain").splitlines()) == [
        " M Pulumi.dev.yaml",
        "?? Pulumi.other.yaml",
    ]
