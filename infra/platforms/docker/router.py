"""The dev stack's primary router container: the one address of PostgreSQL's primary.

It runs ``python -m infra route-primary`` (``infra.router``) from the tooling image and answers
on the stack's network as ``postgres-primary`` (the replicas seed and stream through it, the
backup container reaches the primary through it) and on the host's PostgreSQL port (the admin
URL and ``MIGRATION_DATABASE_URL``). Each connection goes to the member named in its target
file: uploaded from ``postgres.primary`` when the container is created, rewritten in place by
``db promote`` (``TARGET_FILE``), so a failover changes no client's address.
"""

from __future__ import annotations

import os

import pulumi
import pulumi_docker as docker

from infra.platforms.docker.containers import Shared, published_port, server_container
from infra.render import postgres as pg_files
from infra.render.endpoints import POSTGRES_PORT

ROUTER = "postgres-router"
TARGET_DIR = "/run/persistence"
TARGET_FILE = f"{TARGET_DIR}/primary"
# Healthy once it accepts connections (whether the primary behind it answers is the members'
# own health checks' business).
HEALTH_CHECK = [
    "CMD", "/venv/bin/python", "-c",
    f"import socket; socket.create_connection(('127.0.0.1', {POSTGRES_PORT}), 2).close()",
]  # fmt: skip


def target(primary_host: str) -> str:
    """The target file's content: the primary member's address on the stack's network."""
    return f"{primary_host}:{POSTGRES_PORT}\n"


def router_container(
    shared: Shared, image: docker.RemoteImage, after: list[pulumi.Resource]
) -> docker.Container:
    """The router, created after ``after``."""
    config = shared.config
    uid = str(os.getuid())
    primary = pg_files.replica_host(pg_files.primary_index(config))
    return server_container(
        shared,
        ROUTER,
        image,
        config.docker.memory_mb.router,
        aliases=[pg_files.PRIMARY_HOST],
        wait_timeout=60,
        depends_on=after,
        command=["route-primary", "--target-file", TARGET_FILE],
        uploads=[
            docker.ContainerUploadArgs(
                file=TARGET_FILE, content=target(primary), owner=uid, group=uid, permissions="0644"
            )
        ],
        ports=[published_port(shared, POSTGRES_PORT, config.docker.ports.postgres)],
        user=uid,
        capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
        healthcheck=docker.ContainerHealthcheckArgs(
            tests=HEALTH_CHECK, interval="3s", timeout="2s", retries=3, start_period="5s"
        ),
    )
