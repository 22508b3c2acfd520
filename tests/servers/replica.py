"""A real PostgreSQL 15 read replica of a test's ``PostgresServer``, seeded as the dev one is.

The dev container's start (``infra.platforms.docker.containers.REPLICA_SEED``): ``pg_basebackup``
through the replica's own slot as the replication login, with its password in a libpq passfile
only, then a hot standby started from the rendered ``replica.conf`` (which includes the primary's
rendered ``postgresql.conf``). Only the addresses and paths differ: each replica listens on its
own loopback address (127.0.0.2, 127.0.0.3, ...) on one shared port, because PgBouncer gives all
the hosts of a database entry one port, as the dev stack's replicas all listen on 5432.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from infra.render import postgres as pg_files
from tests.servers.postgres import (
    OS_USER,
    PostgresServer,
    launch,
    pg_binary,
    postgres_argv,
)
from tests.servers.process import as_user, chown_tree, private_dir, stop_process


def loopback(index: int) -> str:
    """Replica ``index``'s (1-based) own loopback address."""
    return f"127.0.0.{index + 1}"


def shared_port(count: int) -> int:
    """A port free on the loopback address of every one of ``count`` replicas."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind((loopback(1), 0))
            port = int(probe.getsockname()[1])
        if all(_bindable(loopback(i), port) for i in range(2, count + 1)):
            return port
    raise RuntimeError("no port free on every replica's loopback address")


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
        return True


@dataclass
class ReplicaServer:
    """Replica ``index`` of ``primary``; ``seed`` it, then ``start`` it."""

    primary: PostgresServer
    index: int
    replication_password: str
    port: int
    root: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.root = private_dir(f"pg-replica-{self.index}-", OS_USER)
        self.data = self.root / "data"
        self.conf = self.root / "conf"
        self.socket_dir = self.root / "sock"
        self.log_file = self.root / "server.log"
        self.conf.mkdir()
        self.socket_dir.mkdir()
        shutil.copy(self.primary.conf / "postgresql.conf", self.conf / "postgresql.conf")
        shutil.copy(self.primary.conf / "pg_hba.conf", self.conf / "pg_hba.conf")
        passfile = self.conf / "replication.pgpass"
        passfile.write_text(
            pg_files.replication_passfile(
                self.replication_password, self.primary.host, self.primary.port
            )
        )
        passfile.chmod(0o600)
        (self.conf / "replica.conf").write_text(
            pg_files.replica_conf(
                self.index,
                primary_host=self.primary.host,
                primary_port=self.primary.port,
                primary_config=str(self.conf / "postgresql.conf"),
                passfile=str(passfile),
            )
        )
        chown_tree(self.root, OS_USER)

    @property
    def host(self) -> str:
        return loopback(self.index)

    @property
    def name(self) -> str:
        return pg_files.replica_slot(self.index)

    def seed(self) -> ReplicaServer:
        """``pg_basebackup`` through the replica's own slot, as the dev container does."""
        connect = ["-h", self.primary.host, "-p", str(self.primary.port)]
        connect += ["-U", pg_files.REPLICATION_USER, "--no-password"]
        env = {"PGPASSFILE": str(self.conf / "replication.pgpass"), "PATH": "/usr/bin:/bin"}
        slot = pg_files.replica_slot(self.index)
        subprocess.run(
            as_user(OS_USER, [pg_binary("pg_receivewal"), *connect, "--drop-slot", "--slot", slot]),
            env=env,
            capture_output=True,
            check=False,
        )
        basebackup = [pg_binary("pg_basebackup"), *connect, "-D", str(self.data)]
        basebackup += ["-X", "stream", "-C", "-S", slot, "--checkpoint=fast"]
        subprocess.run(
            as_user(OS_USER, basebackup),
            env=env,
            capture_output=True,
            check=True,
        )
        standby = self.data / "standby.signal"
        standby.touch()
        chown_tree(standby, OS_USER)
        return self

    def start(self) -> ReplicaServer:
        argv = postgres_argv(
            self.data,
            self.conf / "replica.conf",
            self.conf / "pg_hba.conf",
            self.host,
            self.port,
            self.socket_dir,
        )
        self.process = launch(argv, self.log_file, self.host, self.port, f"replica {self.index}")
        return self

    def superuser_psql(self, sql: str, database: str = "postgres") -> str:
        """SQL as the superuser over the replica's own socket."""
        argv = [pg_binary("psql"), "-h", str(self.socket_dir), "-p", str(self.port)]
        argv += ["-U", "postgres", "-d", database, "-X", "-A", "-t", "-c", sql]
        return subprocess.run(
            as_user(OS_USER, argv), capture_output=True, text=True, check=True
        ).stdout.strip()

    def kill(self) -> None:
        """Gone at once (SIGKILL of the postmaster: a lost machine, not a shutdown)."""
        if self.process is not None:
            stop_process(self.process, sig=signal.SIGKILL)
            self.process = None

    def cleanup(self) -> None:
        if self.process is not None:
            stop_process(self.process, sig=signal.SIGQUIT)
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)
