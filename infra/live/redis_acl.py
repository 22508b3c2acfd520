"""The services' Redis ACL users on a running server: the one module with Redis client calls.

Users are set one by one with ``ACL SETUSER`` (``reset`` first, then exactly the users.acl
rules) and removed with ``ACL DELUSER``; never ``ACL LOAD``, which on Redis 7.0 drops every
logged-in connection. Setting a user to the rules it already has changes nothing and keeps its
connections; only a removed service's connections are closed (by DELUSER, as they must be).

Only what we manage is touched: the users of the configured services, and the ones a previous
apply created (``managed``) that are no longer configured. The ``default`` user, the admin and
every user made by hand stay as they are. Passwords travel only as ``#sha256`` hashes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from infra.errors import ServerError
from infra.render.redis import setuser_rules

TIMEOUT_SECONDS = 10
NEVER_TOUCHED = frozenset({"default"})


@dataclass
class AclReport:
    """What an apply did: users created or changed, users removed."""

    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _command(client: redis.Redis, *args: str) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _acl_lines(client: redis.Redis) -> dict[str, str]:
    """User name -> its ``ACL LIST`` line, as the server normalises it."""
    lines: dict[str, str] = {}
    for raw in _command(client, "ACL", "LIST"):
        line = raw.decode() if isinstance(raw, bytes) else str(raw)
        parts = line.split(" ", 2)
        if len(parts) >= 2 and parts[0] == "user":
            lines[parts[1]] = line
    return lines


def apply(
    host: str,
    port: int,
    admin_user: str,
    admin_password: str,
    users: Mapping[str, Mapping[str, str]],
    managed: Iterable[str] = (),
) -> AclReport:
    """Make the server's service users exactly ``users`` (``infra.render.redis.service_users``);
    delete the ``managed`` ones no longer in it. Idempotent: a second run reports nothing."""
    protected = NEVER_TOUCHED | {admin_user}
    client = redis.Redis(
        host=host,
        port=port,
        username=admin_user,
        password=admin_password,
        socket_timeout=TIMEOUT_SECONDS,
        socket_connect_timeout=TIMEOUT_SECONDS,
    )
    report = AclReport()
    try:
        before = _acl_lines(client)
        for name, user in sorted(users.items()):
            if name in protected:
                raise ServerError(f"Redis user {name!r} is reserved; rename the service")
            _command(client, "ACL", "SETUSER", name, *setuser_rules(dict(user)))
        after = _acl_lines(client)
        report.changed = [name for name in sorted(users) if before.get(name) != after.get(name)]
        for name in sorted(set(managed) - set(users) - protected):
            if name in after:
                _command(client, "ACL", "DELUSER", name)
                report.removed.append(name)
    except redis.RedisError as error:
        raise ServerError(
            f"Redis at {host}:{port}: applying the ACL users failed ({error})"
        ) from None
    finally:
        client.close()
    return report
