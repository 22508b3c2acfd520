"""No admin login may take a name the tool derives for a service, on any of the three servers.

Checked on the raw data with every other problem, before anything changes: a Redis ACL file
with two ``user`` lines of one name stops Redis from starting, a RabbitMQ user of the admin's
name replaces the only administrator, and a PostgreSQL admin named like a service's role would
be granted, dropped or converged as that role.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra import naming
from infra.config.schema import Problems

# The admin logins a stack can name, and the default each one has when it is left out.
ADMIN_KEYS = ("postgres", "redis", "rabbitmq")
DEFAULT_ADMIN = "platform_admin"


def admin_collisions(raw: Mapping[str, Any], problems: Problems) -> None:
    """Refuse an ``admin_user`` that any service's derived names (or the service itself) use."""
    services = raw.get("services")
    if not isinstance(services, list):
        return
    owners: dict[str, tuple[int, str]] = {}
    for index, service in enumerate(services):
        name = service.get("name") if isinstance(service, Mapping) else None
        if isinstance(name, str):
            for derived in naming.derived_names(name):
                owners.setdefault(derived, (index, name))
    for key in ADMIN_KEYS:
        section = raw.get(key)
        admin = section.get("admin_user") if isinstance(section, Mapping) else None
        admin = DEFAULT_ADMIN if admin is None else admin
        if not isinstance(admin, str) or admin not in owners:
            continue
        index, service = owners[admin]
        problems.add(
            f"{key}.admin_user",
            f"{admin!r} is a name service {service!r} (services[{index}]) gets (its database, "
            "roles <name>_owner/_migrator/_app/_readonly, Redis user, RabbitMQ user and vhost); "
            f"choose an admin name no service derives, e.g. {DEFAULT_ADMIN!r}",
        )
