"""Fixtures and run settings shared by unit and integration tests.

How the suite stays fast (``tests/README.md`` has the whole story):

- **Parallel by module.** ``pyproject.toml`` runs pytest with ``-n 2 --dist loadscope``
  (pytest-xdist): every module runs whole on one worker, so its module-scoped fixtures (a
  server, a converged stack) start once. ``-n 0`` runs in this process (for ``--pdb``, which
  switches to it by itself). Whenever ``tests/e2e`` is selected the whole run is serial: the
  end-to-end tests share fixed container names, so only one may run at a time.
- **Scratch space in RAM.** Server data directories, ``tmp_path`` and the tooling's own
  temporary files go to a directory on ``/dev/shm`` when it has room (see ``_ram_tempdir``),
  except when ``tests/e2e`` is selected: on disk, file I/O (PostgreSQL's above all) cost
  about a quarter of the integration tests' CPU time.
- **Servers are shared where a test does not need its own** (``tests/integration/conftest.py``).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from infra import secrets_file
from infra.backup import crypto
from infra.commands.render import write_file
from infra.config import StackConfig, load_stack
from infra.credentials import Credentials
from infra.render import render_all

# The suite starts without a backup key whatever the shell holds: tests that need one set it.
for _name in (crypto.KEY_ENV, crypto.KEY_FILE_ENV):
    os.environ.pop(_name, None)

E2E = Path(__file__).resolve().parent / "e2e"
RAM = Path("/dev/shm")
RAM_NEEDED = 2 * 2**30  # two workers' servers and backups, with room to spare


def _selects_e2e(config: pytest.Config) -> bool:
    """True when an argument (or the default ``testpaths``) is, or contains, ``tests/e2e``."""
    for argument in config.args:
        path = (config.invocation_params.dir / argument.split("::", 1)[0]).resolve()
        if path == E2E or E2E in path.parents or path in E2E.parents:
            return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """One process (xdist's ``-n 0``) for the end-to-end tests and for ``--pdb``.

    Runs before pytest-xdist reads ``-n``: a conftest's hook is called before an installed
    plugin's of the same priority.
    """
    if not getattr(config.option, "numprocesses", None):
        return
    if config.getoption("usepdb", False) or _selects_e2e(config):
        config.option.numprocesses = 0


def _ram_tempdir() -> Path | None:
    """``/dev/shm/persistence-tests-<uid>`` when /dev/shm is a roomy tmpfs, else None.

    The servers' users (postgres, redis, rabbitmq) must traverse it to reach their own 0700
    directories inside, hence 0755. A path someone else made, or a symlink, is not used.
    """
    if not RAM.is_dir() or shutil.disk_usage(RAM).free < RAM_NEEDED:
        return None
    path = RAM / f"persistence-tests-{os.getuid()}"
    try:
        path.mkdir(mode=0o755, exist_ok=True)
    except OSError:
        return None
    found = path.lstat()
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
        return None
    return path


def pytest_configure(config: pytest.Config) -> None:
    """Put temporary files in RAM unless TMPDIR says where (workers inherit the choice).

    Not for the end-to-end tests: their image builds are large, and they run as they always did.
    """
    if "TMPDIR" in os.environ or _selects_e2e(config):
        return
    ram = _ram_tempdir()
    if ram is not None:
        os.environ["TMPDIR"] = str(ram)
        tempfile.tempdir = None  # gettempdir() caches; read TMPDIR again


@pytest.fixture(scope="session")
def dev_config() -> StackConfig:
    return load_stack("dev")


@pytest.fixture(scope="session")
def prod_config() -> StackConfig:
    return load_stack("prod")


def render_to(directory: Path, config: StackConfig, credentials: Credentials) -> Path:
    """Write every rendered file of ``config`` under ``directory`` exactly as the CLI does."""
    for relative, rendered in render_all(config, credentials).items():
        write_file(directory / relative, rendered)
    return directory


@pytest.fixture(scope="session")
def dev_rendered(
    tmp_path_factory: pytest.TempPathFactory, dev_config: StackConfig
) -> tuple[Path, Credentials]:
    """The dev stack rendered once per session, with its generated credentials."""
    root = tmp_path_factory.mktemp("dev-rendered")
    credentials = secrets_file.load_or_create(root / "dev.secrets.json", dev_config)
    return render_to(root / "out", dev_config, credentials), credentials


@pytest.fixture(scope="session")
def redis_7_0_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A volume and a backup a real Redis 7.0 wrote (tests/integration/redis_7_0_fixtures.py)."""
    from tests.integration.redis_7_0_fixtures import make
    from tests.servers.process import require_binary

    root = tmp_path_factory.mktemp("redis-7.0")
    make(require_binary("redis-server", "redis-server"), root)
    return root
