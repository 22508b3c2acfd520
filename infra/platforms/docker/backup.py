"""The dev stack's backup container: ``backup``, ``verify`` and ``prune`` on backup.schedule.

It runs this repository's CLI (``python -m infra backup-loop``) from an image built from
``backup.Dockerfile``, and reaches the servers by their network aliases. Its bucket is a host
folder (``docker.backup_dir``, default ``.backups/<stack>``): backups outlive the containers and
the data volumes, and the CLI on the host (``list``, ``restore``, ``rebuild``) reads them
directly. The container runs as the user who runs ``pulumi up``, so that folder stays theirs.

Passwords arrive as a 0400 secrets file, and the backup key (``infra.platforms.backup_key``) as
a 0400 key file the environment names; the environment carries only URLs without passwords.
The loop's stack file is reduced to what backups use. Neither may replace the container when the
service list changes: the container is created with the admins' passwords only and no stack
file (the stack loader refuses a stack without services), and ``backup_live_config`` writes the
full ones into the running container (secrets first, so a reader never finds a service without
its passwords). The loop waits for its stack file at start, then reads both again at every
run, and the health check at every call, so a new service is backed up from the next run on,
with no restart.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pulumi
import pulumi_docker as docker
import yaml

from infra.backup import crypto
from infra.commands.backup import ADMIN_URL_ENV, BUCKET_ENV, MANAGEMENT_URL_ENV, REDIS_URL_ENV
from infra.config.model import PROJECT, StackConfig
from infra.credentials import credentials_json
from infra.live.resource import LiveConfig, file_spec
from infra.platforms.docker.containers import Shared, network_attachment
from infra.render.endpoints import MANAGEMENT_PORT, POSTGRES_PORT, REDIS_PORT
from infra.render.postgres import PRIMARY_HOST

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = Path(__file__).resolve().with_name("backup.Dockerfile")
# What backup.Dockerfile copies; its hash rebuilds the image when any of it changes.
BUILD_INPUTS = ("pyproject.toml", "requirements.txt", "infra", "sql", "templates")
# Left out of the image (.dockerignore) and so of its hash: the stand-in images' build recipes.
NOT_COPIED = ("infra/images",)
BACKUP_DIR = "/backups"
SECRETS_FILE = "/run/secrets/persistence.secrets.json"
KEY_FILE = "/run/secrets/persistence.backup-key"
STACK_DIR = "/run/persistence"


def backup_dir(config: StackConfig, stack: str) -> Path:
    """The host folder used as the stack's local bucket."""
    configured = config.docker.backup_dir
    return Path(configured) if configured else REPO_ROOT / ".backups" / stack


def backup_bucket_url(config: StackConfig, stack: str) -> str:
    """The bucket URL the host-side CLI uses (``list``, ``restore``, ``rebuild``)."""
    return f"file://{backup_dir(config, stack)}"


def backup_stack_file(config: StackConfig) -> str:
    """A stack file holding only what the backup loop reads (names, admins, backup settings)."""
    settings = {
        "platform": config.platform,
        "services": [{"name": spec.name} for spec in config.services],
        "postgres": {"admin_user": config.postgres.admin_user},
        "redis": {"admin_user": config.redis.admin_user},
        "rabbitmq": {"admin_user": config.rabbitmq.admin_user},
        "backup": _plain(asdict(config.backup)),
    }
    document = {"config": {f"{PROJECT}:{key}": value for key, value in settings.items()}}
    return yaml.safe_dump(document, sort_keys=True)


def build_context_hash(root: Path = REPO_ROOT) -> str:
    """SHA-256 over every file the image copies, so an unchanged checkout never rebuilds."""
    digest = hashlib.sha256(DOCKERFILE.read_bytes())
    for name in BUILD_INPUTS:
        path = root / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            relative = file.relative_to(root).as_posix()
            if "__pycache__" in file.parts or relative.startswith(NOT_COPIED):
                continue
            digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def tooling_image(shared: Shared) -> docker.RemoteImage:
    """This repository's CLI in an image (``backup.Dockerfile``): the backup container and the
    primary router run it. Rebuilt when anything it copies changes."""
    config = shared.config
    uid, gid = str(os.getuid()), str(os.getgid())
    return docker.RemoteImage(
        "backup-image",
        name=f"{shared.prefix}-backup:latest",
        build=docker.RemoteImageBuildArgs(
            context=str(REPO_ROOT),
            dockerfile=str(DOCKERFILE.relative_to(REPO_ROOT)),
            build_args={"BASE_IMAGE": config.docker.images.backup, "UID": uid, "GID": gid},
        ),
        triggers={"context": build_context_hash()},
        keep_locally=True,
        opts=pulumi.ResourceOptions(parent=shared.parent),
    )


def backup_container(
    shared: Shared,
    image: docker.RemoteImage,
    servers: Sequence[pulumi.Resource],
    key: pulumi.Output[str] | None,
) -> docker.Container:
    """Declare the scheduler container writing into the host bucket.

    With a backup ``key``, every backup the loop writes is sealed and authenticated with it.
    It reaches PostgreSQL's primary through the router (``postgres-primary``), so backups
    follow a failover.
    """
    config = shared.config
    stack = pulumi.get_stack()
    bucket = backup_dir(config, stack)
    # Created here, by the user running pulumi, so Docker does not create it root-owned; not
    # by a preview, which changes nothing.
    if not pulumi.runtime.is_dry_run():
        bucket.mkdir(mode=0o700, parents=True, exist_ok=True)
    uid, gid = str(os.getuid()), str(os.getgid())
    secrets = shared.passwords.admins.apply(credentials_json)
    stack_file = loop_stack_file(stack)
    uploads = [
        docker.ContainerUploadArgs(
            file=SECRETS_FILE,
            content=pulumi.Output.secret(secrets),
            owner=uid,
            group=gid,
            permissions="0400",
        )
    ]
    key_env = []
    if key is not None:
        uploads.append(
            docker.ContainerUploadArgs(
                file=KEY_FILE, content=key, owner=uid, group=gid, permissions="0400"
            )
        )
        key_env.append(f"{crypto.KEY_FILE_ENV}={KEY_FILE}")
    return docker.Container(
        "backup",
        image=image.image_id,
        name=f"{shared.prefix}-backup",
        command=["backup-loop", "--stack", stack_file, "--secrets", SECRETS_FILE],
        envs=[
            f"{BUCKET_ENV}=file://{BACKUP_DIR}",
            f"{ADMIN_URL_ENV}=postgresql://{config.postgres.admin_user}@{PRIMARY_HOST}:"
            f"{POSTGRES_PORT}/postgres",
            f"{REDIS_URL_ENV}=redis://redis:{REDIS_PORT}",
            f"{MANAGEMENT_URL_ENV}=http://rabbitmq:{MANAGEMENT_PORT}",
            "CI=1",  # no progress redraws in container logs
            *key_env,
        ],
        uploads=uploads,
        mounts=[
            docker.ContainerMountArgs(
                type="bind", source=str(bucket), target=BACKUP_DIR, read_only=False
            )
        ],
        networks_advanced=[network_attachment(shared)],
        user=uid,  # a bare uid: Docker's uploads cannot resolve "uid:gid"
        restart="unless-stopped",
        memory=config.docker.memory_mb.backup,
        memory_swap=config.docker.memory_mb.backup,
        security_opts=["no-new-privileges:true"],
        log_opts={"max-size": "10m", "max-file": "3"},
        must_run=True,
        # Unhealthy when the last run failed, or a service's newest verified backup is older
        # than two schedule periods: `docker ps` shows that backups stopped.
        healthcheck=docker.ContainerHealthcheckArgs(
            tests=[
                "CMD",
                "/venv/bin/python",
                "-m",
                "infra",
                "backup-health",
                "--stack",
                stack_file,
                "--bucket",
                f"file://{BACKUP_DIR}",
            ],
            interval="20s",
            timeout="15s",
            retries=2,
            start_period="30s",
        ),
        labels=[docker.ContainerLabelArgs(label="persistence.stack", value=shared.prefix)],
        opts=pulumi.ResourceOptions(parent=shared.parent, depends_on=list(servers)),
    )


def loop_stack_file(stack: str) -> str:
    """Where the loop and its health check read the stack file, inside the container."""
    return f"{STACK_DIR}/Pulumi.{stack}.yaml"


def backup_live_config(shared: Shared, backup: docker.Container) -> LiveConfig:
    """The loop's full secrets and stack files, written into the running backup container."""
    uid, gid = os.getuid(), os.getgid()
    secrets = shared.passwords.everything.apply(credentials_json)
    return LiveConfig.files(
        "backup-live-config",
        server_id=backup.id,
        files={
            SECRETS_FILE: file_spec(secrets, uid=uid, gid=gid, mode=0o400, secret=True),
            loop_stack_file(pulumi.get_stack()): file_spec(
                backup_stack_file(shared.config), uid=uid, gid=gid, mode=0o444
            ),
        },
        opts=pulumi.ResourceOptions(parent=shared.parent, depends_on=[backup]),
    )


def _plain(value: object) -> object:
    """Tuples to lists, so the YAML is plain data the stack loader accepts."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
