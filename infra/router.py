"""The dev stack's primary router: a TCP relay to whichever PostgreSQL member is the primary.

    python -m infra route-primary --target-file /run/persistence/primary

The dev stack's ``postgres-primary`` container runs it. It listens on PostgreSQL's port, is the
``postgres-primary`` name on the stack's network and publishes the host port that the admin URL
and ``MIGRATION_DATABASE_URL`` name. Each new connection is forwarded to the ``host:port`` in the
target file, read again for every connection: ``db promote`` rewrites that one file and every
connection from then on reaches the new primary, with no restart and no client changed. A
connection it cannot forward is closed at once (the client sees the server go away, as it would
with the server itself down). It reads nothing of the traffic: TLS, authentication and the
protocol are the client's and the server's business.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

CHUNK = 256 * 1024


def read_target(path: Path) -> tuple[str, int] | None:
    """The primary's ``host:port`` from ``path``; None when it is missing or malformed."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        return None
    return host, int(port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        pass
    finally:
        writer.close()


async def _relay(
    target_file: Path, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
) -> None:
    target = read_target(target_file)
    try:
        if target is None:
            raise OSError("no target")
        server_reader, server_writer = await asyncio.open_connection(*target)
    except OSError:
        client_writer.close()
        return
    try:
        await asyncio.gather(
            _pipe(client_reader, server_writer), _pipe(server_reader, client_writer)
        )
    finally:
        client_writer.close()
        server_writer.close()


async def serve(target_file: Path, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104
    """Relay every connection on ``host:port`` until SIGTERM or SIGINT."""
    server = await asyncio.start_server(
        lambda r, w: _relay(target_file, r, w), host, port, reuse_address=True, backlog=512
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()
