"""The dev backup container, as the real dev program declares it under Pulumi mocks."""

from __future__ import annotations

import json

import pytest

from infra.config.model import StackConfig
from infra.platforms.docker.backup import BACKUP_DIR, DOCKERFILE, SECRETS_FILE
from tests.unit.pulumi_mocks import ProgramRun, is_secret, run_program

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/image:Image"
VOLUME = "docker:index/volume:Volume"


@pytest.fixture(scope="module")
def run() -> ProgramRun:
    return run_program("dev")


def test_the_image_is_built_from_the_repository_dockerfile(
    run: ProgramRun, dev_config: StackConfig
) -> None:
    image = run.one(IMAGE, "backup-image")
    assert image.inputs["build"]["dockerfile"] == str(DOCKERFILE)
    assert image.inputs["build"]["args"] == {"BASE_IMAGE": dev_config.docker.images.backup}
    assert image.inputs["skipPush"] is True, "a local image: nothing is pushed anywhere"


def test_backup_container_runs_the_schedule_loop_into_a_local_bucket(run: ProgramRun) -> None:
    assert run.one(VOLUME, "backup-data").inputs["name"] == "persistence-dev-backups"
    container = run.one(CONTAINER, "backup").inputs
    assert container["command"] == ["backup-loop", "--stack", "dev", "--secrets", SECRETS_FILE]
    envs = dict(item.split("=", 1) for item in container["envs"])
    assert envs["PERSISTENCE_BACKUP_BUCKET"] == f"file://{BACKUP_DIR}"
    assert envs["PERSISTENCE_ADMIN_URL"] == "postgresql://platform_admin@postgres:5432/postgres"
    assert envs["PERSISTENCE_REDIS_URL"] == "redis://redis:6379"
    assert container["volumes"] == [
        {"volumeName": "persistence-dev-backups", "containerPath": BACKUP_DIR}
    ]
    assert container["user"] == "999"
    assert "ports" not in container, "nothing published on the host"


def test_credentials_reach_the_container_only_as_a_private_secret_file(run: ProgramRun) -> None:
    declared = run.one(CONTAINER, "backup")
    (upload,) = declared.inputs["uploads"]
    assert upload["file"] == SECRETS_FILE
    assert upload["permissions"] == "0400"
    assert is_secret(declared.raw_inputs["uploads"]), "stays a Pulumi secret in state"
    credentials = json.loads(upload["content"])
    everything = repr(declared.inputs["envs"]) + repr(declared.inputs["command"])
    for password in (
        credentials["postgres_admin"],
        credentials["redis_admin"],
        credentials["rabbitmq_admin"],
    ):
        assert password not in everything
