"""No admin login, and no other service, may take a name the tool derives for a service, on any
of the three servers.

Checked on the raw data with every other problem, before anything changes: a Redis ACL file
with two ``user`` lines of one name stops Redis from starting, a RabbitMQ user of the admin's
name replaces the only administrator, and a PostgreSQL admin named like a service's role would
be granted, dropped or converged as that role. A service named like another's role
(``users_app`` next to ``users``) would put a database and a role of one name in two services'
hands, which every operator's grant or drop by name then confuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra import naming
from infra.config.model import DEFAULT_ADMIN
from infra.config.schema import Problems

# The sections whose admin login a stack can name (each defaults to DEFAULT_ADMIN).
ADMIN_KEYS = ("postgres", "redis", "rabbitmq")


def name_collisions(raw: Mapping[str, Any], problems: Problems) -> None:
    """Refuse an ``admin_user`` that any service's derived names (or the service itself) use,
    and a service named like another service's role (``users_app`` next to ``users``)."""
    services = raw.get("services")
    if not isinstance(services, list):
        return
    own: dict[str, tuple[int, str]] = {}  # a service's name -> (its index, it)
    derived: dict[str, tuple[int, str]] = {}  # its other names -> (its index, its name)
    for index, service in enumerate(services):
        name = service.get("name") if isinstance(service, Mapping) else None
        if isinstance(name, str):
            own.setdefault(name, (index, name))
            for other_name in naming.derived_names(name) - {name}:
                derived.setdefault(other_name, (index, name))
    for index, service in enumerate(services):
        name = service.get("name") if isinstance(service, Mapping) else None
        if isinstance(name, str) and name in derived:
            other, owner = derived[name]
            problems.add(
                f"services[{index}].name",
                f"{name!r} is already a name of service {owner!r} (services[{other}]): its "
                f"role {name!r} would sit next to this service's database of the same name; "
                f"choose another name (e.g. '{name.replace('_', '')}')",
            )
    for key in ADMIN_KEYS:
        section = raw.get(key)
        admin = section.get("admin_user") if isinstance(section, Mapping) else None
        admin = DEFAULT_ADMIN if admin is None else admin
        hit = (own.get(admin) or derived.get(admin)) if isinstance(admin, str) else None
        if hit is None:
            continue
        index, service = hit
        problems.add(
            f"{key}.admin_user",
            f"{admin!r} is a name service {service!r} (services[{index}]) gets (its database, "
            "roles <name>_owner/_migrator/_app/_readonly, Redis user, RabbitMQ user and vhost); "
            f"choose an admin name no service derives, e.g. {DEFAULT_ADMIN!r}",
        )
