"""A minimal Redis client (RESP2 over a socket, standard library only) for backup and restore.

The backup tooling needs a handful of commands with binary values (``SCAN``, ``DUMP``,
``PTTL``, ``RESTORE``) as the admin ACL user; redis-cli cannot carry binary payloads safely and
the backup image has no redis-py. Commands are pipelined: ``pipeline`` sends a batch and reads
every reply. The password travels only in the AUTH command, never in a message.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from types import TracebackType
from urllib.parse import urlparse

from infra.errors import ServerError

TIMEOUT_SECONDS = 60
Reply = bytes | int | list["Reply"] | None


class RedisReplyError(ServerError):
    """The server answered a command with an error (``-ERR ...``)."""


class RespClient:
    """One connection to ``redis://HOST:PORT`` (or ``rediss://``), logged in as ``user``."""

    def __init__(self, url: str, user: str, password: str) -> None:
        parsed = urlparse(url)
        self.where = f"{parsed.hostname}:{parsed.port or 6379}"
        try:
            raw = socket.create_connection(
                (parsed.hostname or "", parsed.port or 6379), timeout=TIMEOUT_SECONDS
            )
            if parsed.scheme == "rediss":
                context = ssl.create_default_context()
                raw = context.wrap_socket(raw, server_hostname=parsed.hostname)
        except OSError as error:
            raise ServerError(f"Redis at {self.where} is unreachable ({error})") from None
        self._sock = raw
        self._buffer = raw.makefile("rb")
        try:
            self.call("AUTH", user, password)
        except RedisReplyError as error:
            self.close()
            raise ServerError(f"Redis at {self.where} refused user {user!r}: {error}") from None

    def __enter__(self) -> RespClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._buffer.close()
            self._sock.close()
        except OSError:
            pass

    def call(self, *args: bytes | str | int) -> Reply:
        """One command; an error reply raises ``RedisReplyError``."""
        (reply,) = self.pipeline([args])
        if isinstance(reply, RedisReplyError):
            raise reply
        return reply

    def pipeline(
        self, commands: Sequence[Sequence[bytes | str | int]]
    ) -> list[Reply | RedisReplyError]:
        """Send every command, then read every reply (errors are returned, not raised)."""
        payload = b"".join(_encode(command) for command in commands)
        try:
            self._sock.sendall(payload)
            return [self._read() for _ in commands]
        except OSError as error:
            raise ServerError(f"Redis at {self.where}: connection lost ({error})") from None

    def _read(self) -> Reply | RedisReplyError:
        line = self._buffer.readline()
        if not line.endswith(b"\r\n"):
            raise ServerError(f"Redis at {self.where} closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RedisReplyError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self._buffer.read(size + 2)
            return data[:-2]
        if kind == b"*":
            count = int(rest)
            if count < 0:
                return None
            items: list[Reply] = []
            for _ in range(count):
                item = self._read()
                if isinstance(item, RedisReplyError):
                    raise item
                items.append(item)
            return items
        raise ServerError(f"Redis at {self.where} sent an unknown reply type {kind!r}")


def _encode(command: Sequence[bytes | str | int]) -> bytes:
    parts = [f"*{len(command)}\r\n".encode()]
    for arg in command:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)
