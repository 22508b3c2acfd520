"""The services' Redis ACL users on a running server: the one module with Redis client calls.

Users are set one by one with ``ACL SETUSER`` (``reset`` first, then exactly the users.acl
rules) and removed with ``ACL DELUSER``; never ``ACL LOAD``, which on Valkey 8.0 (as on Redis
7.0) drops every logged-in connection. Setting a user to the rules it already has changes nothing
and keeps its connections; only a removed service's connections are closed (by DELUSER, as they
must be).

Only what we manage is touched: the users of the configured services, and the ones a previous
apply created (``managed``) that are no longer configured. The ``default`` user, the admin and
every user made by hand stay as they are. Passwords travel only as ``#sha256`` hashes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from infra.errors import ServerError
from infra.redis_client import RedisClient
from infra.render.redis import setuser_rules

NEVER_TOUCHED = frozenset({"default"})


@dataclass
class AclReport:
    """What an apply did: users created or changed, users removed."""

    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _acl_lines(client: RedisClient) -> dict[str, str]:
    """User name -> its ``ACL LIST`` line, as the server normalises it."""
    lines: dict[str, str] = {}
    listed = client.call("ACL", "LIST")
    for raw in listed if isinstance(listed, list) else []:
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
    report = AclReport()
    try:
        client = RedisClient(f"redis://{host}:{port}", admin_user, admin_password)
    except ServerError as error:
        raise ServerError(f"applying the ACL users failed: {error}") from None
    try:
        before = _acl_lines(client)
        for name, user in sorted(users.items()):
            if name in protected:
                raise ServerError(f"Redis user {name!r} is reserved; rename the service")
            client.call("ACL", "SETUSER", name, *setuser_rules(dict(user)))
        after = _acl_lines(client)
        report.changed = [name for name in sorted(users) if before.get(name) != after.get(name)]
        for name in sorted(set(managed) - set(users) - protected):
            if name in after:
                client.call("ACL", "DELUSER", name)
                report.removed.append(name)
    except ServerError as error:
        raise ServerError(
            f"Redis at {host}:{port}: applying the ACL users failed ({error})"
        ) from None
    finally:
        client.close()
    return report
