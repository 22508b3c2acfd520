"""A real PgBouncer, the dev stack's own image, in front of a test's PostgreSQL.

Debian bookworm's PgBouncer (1.18) has no prepared statements in transaction mode, so the tests
run the image the dev stack runs (``persistence-e2e/pgbouncer``, built from trixie's package by
``infra.images.build``) with ``--network host``: it listens on a free loopback port and reaches
the test's PostgreSQL through the server's socket directory, mounted read-only where the dev
container mounts it, as the image's uid 6432 with the dev container's capabilities.
Its files are the rendered ones (``infra.render.pgbouncer``), with only the port and paths a test
needs; ``reload`` sends SIGHUP as the live apply does.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from infra.config.model import StackConfig
from infra.credentials import Credentials
from infra.images.build import ensure_images
from infra.platforms.docker.containers import POOLER_CAPABILITIES, POOLER_USER
from infra.render import pgbouncer
from tests.servers.postgres import PostgresServer
from tests.servers.process import ServerUnavailableError, free_port, port_open, wait_until

IMAGE = "persistence-e2e/pgbouncer:1.24"
MOUNT = "/etc/pgbouncer-test"
SERVER_UID = int(POOLER_USER)  # the image's user


@dataclass
class PgbouncerServer:
    """One PgBouncer container on the host's network; ``write`` its files, then ``reload``."""

    postgres: PostgresServer
    root: Path
    port: int = field(default_factory=free_port)
    name: str = field(default_factory=lambda: f"persistence-test-pgbouncer-{uuid.uuid4().hex[:8]}")
    # Read replicas (tests.servers.replica): their loopback addresses and their one port.
    replica_hosts: tuple[str, ...] = ()
    replica_port: int = 0

    def write(self, config: StackConfig, credentials: Credentials) -> None:
        """The rendered pgbouncer.ini and auth file for ``config``, as the live apply does."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chown(self.root, SERVER_UID, SERVER_UID)
        files = {
            "pgbouncer.ini": pgbouncer.pgbouncer_ini(
                config,
                server_port=self.postgres.port,
                listen_address="127.0.0.1",
                listen_port=self.port,
                auth_file=f"{MOUNT}/userlist.txt",
                replica_hosts=self.replica_hosts,
                replica_port=self.replica_port,
            ),
            "userlist.txt": pgbouncer.userlist_txt(config, credentials),
        }
        for name, content in files.items():
            staged = self.root / f".{name}.new"
            staged.write_text(content)
            os.chown(staged, SERVER_UID, SERVER_UID)
            staged.chmod(0o400)
            staged.replace(self.root / name)

    def start(self) -> PgbouncerServer:
        """Run the image (built here when out of date) on a Docker engine that answers: the
        caller owns the engine (``tests/integration/conftest.py`` ``docker_engine``)."""
        ensure_images(["pgbouncer"])
        started = subprocess.run(
            [
                "docker", "run", "--detach", "--name", self.name, "--network", "host",
                "--cap-drop", "ALL", *(f"--cap-add={cap}" for cap in POOLER_CAPABILITIES),
                "--security-opt", "no-new-privileges:true",
                "--volume", f"{self.root}:{MOUNT}:ro",
                "--volume", f"{self.postgres.socket_dir}:{pgbouncer.SERVER_SOCKET_DIR}:ro", IMAGE,
                "pgbouncer", f"{MOUNT}/pgbouncer.ini",
            ],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if started.returncode != 0:
            raise ServerUnavailableError(f"docker run {IMAGE} failed: {started.stderr.strip()}")
        try:
            wait_until(lambda: port_open(self.port), 30, f"PgBouncer on port {self.port}")
        except ServerUnavailableError as error:
            raise ServerUnavailableError(f"{error}\n{self.logs()}") from None
        return self

    def reload(self) -> None:
        """SIGHUP, as the dev stack's live apply sends it: the files are read again."""
        subprocess.run(["docker", "kill", "--signal", "HUP", self.name], check=True,
                       capture_output=True)  # fmt: skip

    def logs(self) -> str:
        found = subprocess.run(["docker", "logs", "--tail", "40", self.name],
                               capture_output=True, text=True, check=False)  # fmt: skip
        return found.stdout + found.stderr

    def url(self, user: str, password: str, database: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def cleanup(self) -> None:
        subprocess.run(["docker", "rm", "--force", self.name], capture_output=True, check=False)
