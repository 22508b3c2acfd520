"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import secrets_file
from infra.commands.render import write_file
from infra.config import StackConfig, load_stack
from infra.credentials import Credentials
from infra.render import render_all


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
