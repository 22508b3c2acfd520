"""Fixtures every end-to-end test shares: a Docker engine, the images built for the tests, and
the isolated stack of the real program under the real Pulumi engine.

Nothing is skipped: a missing engine (``make engine``), Docker engine or image build is a
failure that says what to run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.dockerd import DockerEngine, ensure_docker
from tests.e2e.images.build import SERVER_IMAGES, ensure_images
from tests.e2e.stack import PREFIX, E2eStack, docker, missing_engine


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """The running engine, or a dockerd started for this session and stopped after it."""
    with ensure_docker() as engine:
        yield engine


@pytest.fixture(scope="session")
def e2e_images(docker_engine: DockerEngine) -> dict[str, str]:
    """Image tag -> id of the base and every server image (built only when out of date)."""
    return ensure_images()


@pytest.fixture(scope="module")
def stack(
    e2e_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[E2eStack]:
    """The e2e stack; destroyed afterwards, with the volumes and image it keeps on purpose."""
    missing = missing_engine()
    if missing:
        pytest.fail(f"the Pulumi engine is not built ({', '.join(missing)}): run `make engine`")
    tags = {image.name: image.tag for image in SERVER_IMAGES}
    # backup.Dockerfile's BASE_IMAGE: pg_dump 15 on Debian, like the official postgres image.
    e2e = E2eStack(tmp_path_factory.mktemp("e2e"), {**tags, "backup": tags["postgres"]})
    yield e2e
    _remove_everything(e2e)


def _remove_everything(e2e: E2eStack) -> None:
    try:
        e2e.destroy()
    finally:
        label = f"label=persistence.stack={PREFIX}"
        for name in docker("container", "ls", "-aq", "--filter", label).split():
            docker("container", "rm", "-f", name, check=False)
        for name in docker("volume", "ls", "-q", "--filter", label).split():
            docker("volume", "rm", "-f", name, check=False)
        docker("image", "rm", "-f", f"{PREFIX}-backup:latest", check=False)
        e2e.stack.workspace.remove_stack(e2e.stack.name)


@pytest.fixture(scope="module")
def env_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("envs")
