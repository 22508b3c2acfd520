"""The primary router (``python -m infra route-primary``, the dev stack's ``postgres-router``
container's command) between real PostgreSQL servers: each new connection goes where the target
file says at that moment, open sessions stay where they are, and a target that does not answer
fails the connection at once."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.integration.postgres_support import REPO
from tests.servers.postgres import PostgresServer
from tests.servers.process import free_port


@pytest.fixture
def router(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    target, port = tmp_path / "primary", free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "infra", "route-primary", "--target-file", str(target),
         "--listen-port", str(port)],
        cwd=REPO,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the router does not listen"
            time.sleep(0.05)
    yield port, target
    process.terminate()
    assert process.wait(10) == 0, "the router stops cleanly on SIGTERM"


def _through(server: PostgresServer, port: int) -> str:
    return server.admin_url.replace(f":{server.port}/", f":{port}/")


def test_each_connection_goes_where_the_target_file_says(
    postgres: PostgresServer, empty_server: PostgresServer, router: tuple[int, Path]
) -> None:
    port, target = router
    target.write_text(f"127.0.0.1:{postgres.port}\n")
    first = psycopg.connect(_through(postgres, port), autocommit=True)
    assert first.execute("SELECT inet_server_port()").fetchone() == (postgres.port,)

    target.write_text(f"127.0.0.1:{empty_server.port}\n")  # what db promote does
    with psycopg.connect(_through(empty_server, port), autocommit=True) as conn:
        assert conn.execute("SELECT inet_server_port()").fetchone() == (empty_server.port,)
    # The session opened before the switch still talks to the server it started on.
    assert first.execute("SELECT inet_server_port()").fetchone() == (postgres.port,)
    first.close()


def test_a_target_that_does_not_answer_fails_the_connection_at_once(
    postgres: PostgresServer, router: tuple[int, Path]
) -> None:
    port, target = router
    for content in (f"127.0.0.1:{free_port()}\n", "not an address\n"):
        target.write_text(content)
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(_through(postgres, port), connect_timeout=10)
        assert time.monotonic() - started < 2, "the client is told at once, not left waiting"
