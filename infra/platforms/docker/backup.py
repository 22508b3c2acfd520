"""The dev stack's backup container: ``backup``, ``verify`` and ``prune`` on backup.schedule.

It runs this repository's CLI (``python -m infra backup-loop``) from an image built from
``backup.Dockerfile``, writes into a named volume used as a ``file:///backups`` bucket, and
reaches the servers by their network aliases. Passwords arrive as a 0400 secrets file uploaded
by the program; the environment carries only URLs without passwords.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pulumi
import pulumi_docker as docker

from infra.commands.backup import ADMIN_URL_ENV, BUCKET_ENV, MANAGEMENT_URL_ENV, REDIS_URL_ENV
from infra.credentials import Credentials
from infra.platforms.docker.containers import IMAGE_USER, Shared
from infra.render.endpoints import MANAGEMENT_PORT, POSTGRES_PORT, REDIS_PORT

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = Path(__file__).with_name("backup.Dockerfile")
BACKUP_DIR = "/backups"
SECRETS_FILE = "/run/secrets/persistence.secrets.json"


def backup_container(
    shared: Shared, credentials: pulumi.Output[Credentials], servers: Sequence[docker.Container]
) -> docker.Container:
    """Declare the backup image, its bucket volume and the scheduler container."""
    config = shared.config
    child = pulumi.ResourceOptions(parent=shared.parent)
    image = docker.Image(
        "backup-image",
        image_name=f"{shared.prefix}-backup:latest",
        build=docker.DockerBuildArgs(
            context=str(REPO_ROOT),
            dockerfile=str(DOCKERFILE),
            args={"BASE_IMAGE": config.docker.images.backup},
            platform="linux/amd64",
        ),
        skip_push=True,  # a local image for the local engine; nothing is pushed anywhere
        build_on_preview=False,  # `pulumi preview` in pull requests needs no Docker engine
        opts=child,
    )
    volume = docker.Volume(
        "backup-data",
        name=f"{shared.prefix}-backups",
        labels=[docker.VolumeLabelArgs(label="persistence.stack", value=shared.prefix)],
        opts=pulumi.ResourceOptions(parent=shared.parent, retain_on_delete=True),
    )
    secrets = credentials.apply(lambda c: json.dumps(asdict(c), indent=2, sort_keys=True))
    return docker.Container(
        "backup",
        image=image.image_name,
        name=f"{shared.prefix}-backup",
        command=["backup-loop", "--stack", pulumi.get_stack(), "--secrets", SECRETS_FILE],
        envs=[
            f"{BUCKET_ENV}=file://{BACKUP_DIR}",
            f"{ADMIN_URL_ENV}=postgresql://{config.postgres.admin_user}@postgres:"
            f"{POSTGRES_PORT}/postgres",
            f"{REDIS_URL_ENV}=redis://redis:{REDIS_PORT}",
            f"{MANAGEMENT_URL_ENV}=http://rabbitmq:{MANAGEMENT_PORT}",
            "CI=1",  # no progress redraws in container logs
        ],
        uploads=[
            docker.ContainerUploadArgs(
                file=SECRETS_FILE,
                content=pulumi.Output.secret(secrets),
                owner=IMAGE_USER,
                group=IMAGE_USER,
                permissions="0400",
            )
        ],
        volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path=BACKUP_DIR)],
        networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=shared.network.name)],
        user=IMAGE_USER,
        restart="unless-stopped",
        memory=config.docker.memory_mb.backup,
        security_opts=["no-new-privileges:true"],
        log_opts={"max-size": "10m", "max-file": "3"},
        must_run=True,
        labels=[docker.ContainerLabelArgs(label="persistence.stack", value=shared.prefix)],
        opts=pulumi.ResourceOptions(parent=shared.parent, depends_on=list(servers)),
    )
