"""The one owner of the Redis client library (redis-py): one admin connection, one error mapping.

The tooling needs a handful of commands with binary values (``SCAN``, ``DUMP``, ``PTTL``,
``RESTORE``, ``ACL SETUSER``) as an ACL user, and batches of them pipelined. Replies come back
raw (no per-command parsing), so every caller reads the server's own reply shapes; an error
reply inside a pipeline is returned in its place, not raised. The password travels only in the
client's AUTH, never in a message.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlparse

from infra.errors import ServerError

TIMEOUT_SECONDS = 60
Reply = bytes | int | list["Reply"] | None


class RedisReplyError(ServerError):
    """The server answered a command with an error (``-ERR ...``)."""


class RedisClient:
    """One connection to ``redis://HOST:PORT`` (or ``rediss://``), logged in as ``user``."""

    def __init__(self, url: str, user: str, password: str) -> None:
        import redis  # here: redis-py costs every command ~0.2 s of start-up, most never use it

        parsed = urlparse(url)
        self.where = f"{parsed.hostname}:{parsed.port or 6379}"
        self._client = redis.Redis(
            host=parsed.hostname or "",
            port=parsed.port or 6379,
            username=user,
            password=password,
            ssl=parsed.scheme == "rediss",
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
        )
        self._client.response_callbacks.clear()  # the server's replies, as they are
        try:
            self._client.execute_command("PING")  # type: ignore[no-untyped-call]
        except redis.AuthenticationError as error:
            self.close()
            raise ServerError(f"Redis at {self.where} refused user {user!r}: {error}") from None
        except redis.RedisError as error:
            self.close()
            raise ServerError(f"Redis at {self.where} is unreachable ({error})") from None

    def __enter__(self) -> RedisClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

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
        import redis

        batch = self._client.pipeline(transaction=False)
        for command in commands:
            batch.execute_command(*command)  # type: ignore[no-untyped-call]
        try:
            replies: list[Any] = batch.execute(raise_on_error=False)
        except redis.RedisError as error:
            raise ServerError(f"Redis at {self.where}: connection lost ({error})") from None
        return [
            RedisReplyError(str(reply)) if isinstance(reply, redis.ResponseError) else reply
            for reply in replies
        ]
