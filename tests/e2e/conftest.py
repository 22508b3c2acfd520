"""The real engine, a real Docker engine and images built here: the dev stack's whole life cycle.

Nothing is skipped: a missing engine (``make engine``), Docker engine or image build is a
failure that says what to run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import dockerd
from tests.e2e.images import build
from tests.e2e.stack import PREFIX, E2eStack, docker, missing_engine


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[dockerd.DockerEngine]:
    """A Docker engine that answers: the one running, or one started (and stopped) here."""
    engine = dockerd.ensure_docker()
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def images(docker_engine: dockerd.DockerEngine) -> dict[str, str]:
    """The server images, built from Debian's packages (nothing can be pulled)."""
    return build.build_all()


@pytest.fixture(scope="module")
def stack(
    images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[E2eStack]:
    missing = missing_engine()
    if missing:
        pytest.fail(f"the Pulumi engine is not built ({', '.join(missing)}): run `make engine`")
    e2e = E2eStack(tmp_path_factory.mktemp("e2e"), _stack_images(images))
    yield e2e
    _remove_everything(e2e)


def _stack_images(images: dict[str, str]) -> dict[str, str]:
    return {
        "postgres": images["postgres"],
        "redis": images["redis"],
        "rabbitmq": images["rabbitmq"],
        "backup": images["postgres"],  # BASE_IMAGE of backup.Dockerfile: pg_dump 15 on Debian
    }


def _remove_everything(e2e: E2eStack) -> None:
    """Destroy the stack, then whatever it retained on purpose (volumes, the backup image)."""
    try:
        e2e.destroy()
    finally:
        label = f"label=persistence.stack={PREFIX}"
        for kind in ("container", "volume"):
            names = docker(kind, "ls", "-aq" if kind == "container" else "-q", "--filter", label)
            for name in names.split():
                docker(kind, "rm", "-f", name, check=False)
        docker("image", "rm", "-f", f"{PREFIX}-backup:latest", check=False)
        e2e.stack.workspace.remove_stack(e2e.stack.name)


@pytest.fixture(scope="module")
def env_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("envs")
