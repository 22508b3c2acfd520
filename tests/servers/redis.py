"""A real server started from the rendered redis.conf and users.acl: Valkey 8.0, the engine dev
and prod run (valkey-server from Debian bookworm-backports)."""

from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.servers.process import (
    as_user,
    chown_tree,
    free_port,
    port_open,
    private_dir,
    require_binary,
    stop_process,
    wait_until,
)

OS_USER = "valkey"  # the account Debian's valkey-server package creates
SERVER_BINARY = "valkey-server"
SERVER_PACKAGE = "-t bookworm-backports valkey-server"  # require_binary's install hint


@dataclass
class RedisServer:
    """One running server; the data dir survives restarts until ``cleanup``.

    ``binary`` is another server to run on the same files (the Redis 7.0 fixtures' generator).
    """

    rendered: Path
    port: int = field(default_factory=free_port)
    binary: str = SERVER_BINARY
    root: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.root = private_dir("redis-", OS_USER)
        self.data = self.root / "data"
        self.conf = self.root / "conf"
        self.log_file = self.root / "server.log"
        self.data.mkdir()
        self.conf.mkdir()
        for name in ("redis.conf", "users.acl"):
            shutil.copy(self.rendered / "redis" / name, self.conf / name)
        chown_tree(self.root, OS_USER)

    def start(self) -> RedisServer:
        """The rendered file, with only the address, port and paths overridden."""
        argv = [
            require_binary(self.binary, SERVER_PACKAGE),
            str(self.conf / "redis.conf"),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data),
            "--aclfile",
            str(self.conf / "users.acl"),
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            as_user(OS_USER, argv), stdout=log, stderr=log, cwd=self.data
        )
        wait_until(
            lambda: self._alive() and port_open(self.port),
            20,
            f"{Path(self.binary).name} on port {self.port}",
            self.log_file,
        )
        return self

    def _alive(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{Path(self.binary).name} exited")
        return True

    def client(self, user: str | None = None, password: str | None = None) -> redis.Redis:
        """A client logged in as ``user`` (no user: no AUTH at all).

        No retries, so a refusal surfaces at once: redis-py's default retries a failed AUTH
        with backoff for about 4 s before raising.
        """
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            username=user,
            password=password,
            socket_timeout=5,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),
        )

    def stop(self) -> None:
        """SIGTERM: the server's own clean shutdown (AOF flushed, RDB saved), as a restart needs."""
        self._stop(signal.SIGTERM)

    def _stop(self, sig: int) -> None:
        if self.process is not None:
            stop_process(self.process, sig=sig)
            self.process = None

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")

    def cleanup(self) -> None:
        """SIGKILL: the data directory is deleted next, so nothing needs saving."""
        self._stop(signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
