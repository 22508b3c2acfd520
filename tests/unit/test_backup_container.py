"""The dev backup container under Pulumi mocks: image, volume, schedule loop, no secret in env."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker
from pulumi.runtime.settings import SETTINGS
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.config.model import StackConfig
from infra.credentials import Credentials
from infra.platforms.docker.backup import BACKUP_DIR, DOCKERFILE, SECRETS_FILE, backup_container
from infra.platforms.docker.containers import Shared
from tests.unit.pulumi_mocks import PROJECT, RecordingMocks, is_secret

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/image:Image"
VOLUME = "docker:index/volume:Volume"


class Parent(pulumi.ComponentResource):
    def __init__(self) -> None:
        super().__init__("persistence:docker:Platform", "dev")


def declare(config: StackConfig, credentials: Credentials) -> RecordingMocks:
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="dev", preview=False)
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()

    def body() -> None:
        parent = Parent()
        network = docker.Network(
            "network", name="persistence-dev-net", opts=pulumi.ResourceOptions(parent=parent)
        )
        shared = Shared(
            config=config,
            prefix="persistence-dev",
            network=network,
            files=pulumi.Output.from_input({}),
            secrets=pulumi.Output.from_input({}),
            parent=parent,
        )
        postgres = docker.Container(
            "postgres", image="postgres", opts=pulumi.ResourceOptions(parent=parent)
        )
        backup_container(shared, pulumi.Output.from_input(credentials), [postgres])

    _sync_await(run_pulumi_func(body))
    return mocks


def test_backup_container_runs_the_schedule_loop_into_a_local_bucket(
    dev_config: StackConfig,
) -> None:
    credentials = Credentials.generate().completed_for(dev_config)
    mocks = declare(dev_config, credentials)
    by_type = {(d.type, d.name): d for d in mocks.declared}
    image = by_type[IMAGE, "backup-image"]
    assert image.inputs["build"]["dockerfile"] == str(DOCKERFILE)
    assert image.inputs["build"]["args"] == {"BASE_IMAGE": dev_config.docker.images.backup}
    assert image.inputs["skipPush"] is True
    volume = by_type[VOLUME, "backup-data"]
    assert volume.inputs["name"] == "persistence-dev-backups"

    container = by_type[CONTAINER, "backup"].inputs
    assert container["command"] == ["backup-loop", "--stack", "dev", "--secrets", SECRETS_FILE]
    envs = dict(item.split("=", 1) for item in container["envs"])
    assert envs["PERSISTENCE_BACKUP_BUCKET"] == f"file://{BACKUP_DIR}"
    assert envs["PERSISTENCE_ADMIN_URL"] == "postgresql://platform_admin@postgres:5432/postgres"
    assert envs["PERSISTENCE_REDIS_URL"] == "redis://redis:6379"
    assert container["volumes"] == [
        {"volumeName": "persistence-dev-backups", "containerPath": BACKUP_DIR}
    ]
    assert container["user"] == "999"
    assert "ports" not in container  # nothing published on the host
    everything = repr(container["envs"]) + repr(container["command"])
    for secret in (credentials.postgres_admin, credentials.redis_admin, credentials.rabbitmq_admin):
        assert secret not in everything
    (upload,) = container["uploads"]
    assert upload["file"] == SECRETS_FILE
    assert upload["permissions"] == "0400"
    raw = by_type[CONTAINER, "backup"].raw_inputs["uploads"]
    assert is_secret(raw) or is_secret(raw[0]["content"])  # stays a Pulumi secret in state
    assert credentials.postgres_admin in upload["content"]
