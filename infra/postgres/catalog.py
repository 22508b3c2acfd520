"""Reads what is on the server now, so every run recomputes from the catalog (never from memory).

Cluster-wide facts (roles, memberships, role settings, databases) are read in one query for all
services; per-database facts (extensions, schema, default and object privileges) in one query
over a connection to that database. Everything here is readable by the non-superuser admin.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from infra import naming
from infra.postgres.model import MARKER
from infra.postgres.sqlfiles import query

Grants = frozenset[tuple[str, str]]  # (grantee or 'PUBLIC', privilege)


def parse_grants(items: Iterable[str] | None) -> Grants:
    """``['app:SELECT', 'PUBLIC:CONNECT']`` as a set of (grantee, privilege)."""
    pairs = (item.rsplit(":", 1) for item in (items or ()))
    return frozenset((grantee, privilege) for grantee, privilege in pairs)


def privileges_of(grants: Grants, grantee: str) -> frozenset[str]:
    """The privileges ``grantee`` holds directly in ``grants``."""
    return frozenset(privilege for who, privilege in grants if who == grantee)


@dataclass(frozen=True)
class RoleState:
    """One role's attributes and our marker comment."""

    name: str
    superuser: bool
    inherit: bool
    createrole: bool
    createdb: bool
    login: bool
    replication: bool
    bypassrls: bool
    connection_limit: int
    comment: str


@dataclass(frozen=True)
class DatabaseRow:
    """A database's owner and its database-level privileges (defaults made explicit)."""

    name: str
    owner: str
    grants: Grants
    comment: str = ""
    allow_connections: bool = True
    connection_limit: int = -1
    settings: tuple[str, ...] = ()  # ALTER DATABASE ... SET, as 'name=value'
    is_template: bool = False


@dataclass(frozen=True)
class ClusterState:
    """Cluster-wide catalog facts about a set of services' roles and databases."""

    roles: dict[str, RoleState] = field(default_factory=dict)
    groups: dict[str, frozenset[str]] = field(default_factory=dict)  # member -> its groups
    settings: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    databases: dict[str, DatabaseRow] = field(default_factory=dict)
    # The tooling database's registry: database name -> (service, purpose) (infra.postgres.registry)
    registry: dict[str, tuple[str, str]] = field(default_factory=dict)

    def groups_of(self, member: str) -> frozenset[str]:
        return self.groups.get(member, frozenset())

    def members_of(self, group: str) -> frozenset[str]:
        return frozenset(member for member, groups in self.groups.items() if group in groups)

    def settings_of(self, role: str, database: str = "") -> dict[str, str]:
        """``{name: value}`` set for the role (globally, or in ``database``)."""
        return self.settings.get((role, database), {})

    def updated(
        self,
        fresh: ClusterState,
        roles: Iterable[str],
        databases: Iterable[str],
        services: Iterable[str],
    ) -> ClusterState:
        """This state with everything about ``roles``, ``databases`` and the registry rows of
        ``services`` replaced by ``fresh``, a read of just those names (``read_cluster``):
        what one service's statements can change, without reading every service again."""
        names, dbs, owners = frozenset(roles), frozenset(databases), frozenset(services)
        groups: dict[str, set[str]] = {
            member: set(found - names)
            for member, found in self.groups.items()
            if member not in names
        }
        for member, found in fresh.groups.items():
            groups.setdefault(member, set()).update(found)
        return ClusterState(
            roles={
                **{name: row for name, row in self.roles.items() if name not in names},
                **fresh.roles,
            },
            groups={member: frozenset(found) for member, found in groups.items() if found},
            settings={
                **{key: value for key, value in self.settings.items() if key[0] not in names},
                **fresh.settings,
            },
            databases={
                **{name: row for name, row in self.databases.items() if name not in dbs},
                **fresh.databases,
            },
            registry={
                **{
                    name: row
                    for name, row in self.registry.items()
                    if name not in dbs and row[0] not in owners
                },
                **fresh.registry,
            },
        )


@dataclass(frozen=True)
class Relation:
    """A table, view or sequence owned by the service's owner role."""

    schema: str
    name: str
    kind: str  # pg_class.relkind
    grants: Grants


@dataclass(frozen=True)
class Routine:
    """A function or procedure owned by the service's owner role."""

    schema: str
    oid: str
    app_may_execute: bool


@dataclass(frozen=True)
class DatabaseState:
    """Facts only visible from inside the service's database."""

    extensions: frozenset[str]
    schemas: dict[str, Grants]
    default_privileges: dict[str, Grants]  # pg_default_acl.defaclobjtype -> grants
    relations: tuple[Relation, ...]
    routines: tuple[Routine, ...]
    owned_by_logins: tuple[str, ...] = ()


def fresh_database(owner: str) -> DatabaseState:
    """What a brand-new database (from template1) looks like on PostgreSQL 15, for ``plan``."""
    return DatabaseState(
        extensions=frozenset({"plpgsql"}),
        schemas={
            "public": frozenset(
                {
                    ("pg_database_owner", "USAGE"),
                    ("pg_database_owner", "CREATE"),
                    ("PUBLIC", "USAGE"),
                }
            )
        },
        default_privileges={},
        relations=(),
        routines=(),
    )


def fresh_database_row(name: str, owner: str) -> DatabaseRow:
    """The database row once ``creation_statements`` ran (PUBLIC's CONNECT, TEMP revoked)."""
    return DatabaseRow(
        name=name,
        owner=owner,
        grants=frozenset({(owner, "CREATE"), (owner, "CONNECT"), (owner, "TEMPORARY")}),
    )


def _document(
    conn: psycopg.Connection[tuple[Any, ...]], name: str, params: dict[str, Any]
) -> dict[str, Any]:
    """One catalog query that returns its whole answer as one JSON document (one round trip)."""
    with conn.cursor() as cursor:
        cursor.execute(query(name), params)
        row = cursor.fetchone()
    assert row is not None
    return dict(row[0])


def read_cluster(
    conn: psycopg.Connection[tuple[Any, ...]], roles: Sequence[str], databases: Sequence[str]
) -> ClusterState:
    """Roles, memberships, settings and databases for the given names, in one query."""
    found = _document(conn, "cluster", {"names": list(roles), "databases": list(databases)})
    groups: dict[str, set[str]] = defaultdict(set)
    for member, group in found["memberships"]:
        groups[member].add(group)
    settings: dict[tuple[str, str], dict[str, str]] = {}
    for role, database, config in found["role_settings"]:
        settings[(role, database)] = dict(item.split("=", 1) for item in config or ())
    return ClusterState(
        roles={row[0]: RoleState(*row) for row in found["roles"]},
        groups={member: frozenset(found) for member, found in groups.items()},
        settings=settings,
        databases={
            row[0]: DatabaseRow(
                row[0],
                row[1],
                parse_grants(row[2]),
                row[3],
                row[4],
                row[5],
                tuple(row[6] or ()),
                bool(row[7]),
            )
            for row in found["databases"]
        },
    )


def managed_services(conn: psycopg.Connection[tuple[Any, ...]]) -> list[str]:
    """Services whose owner role carries our marker comment."""
    with conn.cursor() as cursor:
        suffix = f"_{naming.OWNER_KIND}"
        pattern = "%" + suffix.replace("_", "\\_")  # LIKE: the suffix's "_" is literal
        cursor.execute(query("managed_owner_roles"), {"marker": MARKER, "owner_like": pattern})
        return [str(row[0]).removesuffix(suffix) for row in cursor.fetchall()]


def read_database(
    conn: psycopg.Connection[tuple[Any, ...]], owner: str, app: str, logins: Sequence[str] = ()
) -> DatabaseState:
    """The per-database facts, over a connection to the service's database, in one query."""
    found = _document(conn, "database", {"owner": owner, "app": app, "names": list(logins)})
    return DatabaseState(
        extensions=frozenset(found["extensions"]),
        schemas={row[0]: parse_grants(row[1]) for row in found["schemas"]},
        default_privileges={row[0]: parse_grants(row[1]) for row in found["default_privileges"]},
        relations=tuple(
            Relation(row[0], row[1], row[2], parse_grants(row[3])) for row in found["relations"]
        ),
        routines=tuple(Routine(row[0], row[1], bool(row[2])) for row in found["routines"]),
        owned_by_logins=tuple(sorted(found["owned_by_logins"])),
    )
