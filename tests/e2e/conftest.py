"""Fixtures every end-to-end test shares: a Docker engine, the images built for the tests, and
the isolated stack of the real program under the real Pulumi engine.

Nothing is skipped: a missing engine (``make engine``), Docker engine or image build is a
failure that says what to run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.images.build import ensure_images
from tests.e2e.dockerd import DockerEngine, ensure_docker
from tests.e2e.stack import PREFIX, REPLICAS, E2eStack, docker, remove_leftovers


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
    """The e2e stack; destroyed afterwards, with the volumes and image it keeps on purpose.

    No engine check here: `make up` finds, or builds and registers, the engine itself.
    """
    # The stack file names the default (official) images, as a user's does: `make up` itself
    # must find that they cannot be pulled here and fall back to the Debian-built stand-ins.
    # What an interrupted earlier run (or `make bench`'s rebuild benchmark, which drives the
    # same stack) left behind would clash with the names `make up` creates: clear it first.
    remove_leftovers()
    e2e = E2eStack(tmp_path_factory.mktemp("e2e"), replicas=len(REPLICAS))
    yield e2e
    _remove_everything(e2e)


def _remove_everything(e2e: E2eStack) -> None:
    try:
        e2e.make("down", check=False)
    finally:
        remove_leftovers()
        docker("image", "rm", "-f", f"{PREFIX}-backup:latest", check=False)
