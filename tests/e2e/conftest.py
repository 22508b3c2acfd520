"""Fixtures every end-to-end test shares: a Docker engine and the images built for the tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.dockerd import DockerEngine, ensure_docker
from tests.e2e.images.build import ensure_images


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """The running engine, or a dockerd started for this session and stopped after it."""
    with ensure_docker() as engine:
        yield engine


@pytest.fixture(scope="session")
def e2e_images(docker_engine: DockerEngine) -> dict[str, str]:
    """Image tag -> id of the base and every server image (built only when out of date)."""
    return ensure_images()
