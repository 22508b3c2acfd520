"""Reads what is on the server now, so every run recomputes from the catalog (never from memory).

Cluster-wide facts (roles, memberships, role settings, databases) are read once per run for all
services; per-database facts (extensions, schema, default and object privileges) are read over a
connection to that database. Everything here is readable by the non-superuser admin.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

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


@dataclass(frozen=True)
class ClusterState:
    """Cluster-wide catalog facts about a set of services' roles and databases."""

    roles: dict[str, RoleState] = field(default_factory=dict)
    groups: dict[str, frozenset[str]] = field(default_factory=dict)  # member -> its groups
    settings: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    databases: dict[str, DatabaseRow] = field(default_factory=dict)

    def groups_of(self, member: str) -> frozenset[str]:
        return self.groups.get(member, frozenset())

    def members_of(self, group: str) -> frozenset[str]:
        return frozenset(member for member, groups in self.groups.items() if group in groups)

    def settings_of(self, role: str, database: str = "") -> dict[str, str]:
        """``{name: value}`` set for the role (globally, or in ``database``)."""
        return self.settings.get((role, database), {})


@dataclass(frozen=True)
class Relation:
    """A table, view or sequence owned by the service's owner role."""

    schema: str
    name: str
    kind: str  # pg_class.relkind
    grants: Grants


@dataclass(frozen=True)
class DatabaseState:
    """Facts only visible from inside the service's database."""

    extensions: frozenset[str]
    schemas: dict[str, Grants]
    default_privileges: dict[str, Grants]  # pg_default_acl.defaclobjtype -> grants
    relations: tuple[Relation, ...]
    routine_schemas_missing_execute: tuple[str, ...]
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
        routine_schemas_missing_execute=(),
    )


def fresh_database_row(name: str, owner: str) -> DatabaseRow:
    """The database row once ``creation_statements`` ran (PUBLIC's CONNECT, TEMP revoked)."""
    return DatabaseRow(
        name=name,
        owner=owner,
        grants=frozenset({(owner, "CREATE"), (owner, "CONNECT"), (owner, "TEMPORARY")}),
        comment=MARKER,
    )


def _rows(
    conn: psycopg.Connection[tuple[Any, ...]], name: str, params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    with conn.cursor() as cursor:
        cursor.execute(query(name), params)
        return cursor.fetchall()


def read_cluster(
    conn: psycopg.Connection[tuple[Any, ...]], roles: Sequence[str], databases: Sequence[str]
) -> ClusterState:
    """Roles, memberships, settings and databases for the given names, in four queries."""
    names = list(roles)
    role_states = {row[0]: RoleState(*row) for row in _rows(conn, "roles", {"names": names})}
    groups: dict[str, set[str]] = defaultdict(set)
    for member, group in _rows(conn, "memberships", {"names": names}):
        groups[member].add(group)
    settings: dict[tuple[str, str], dict[str, str]] = {}
    for role, database, config in _rows(conn, "role_settings", {"names": names}):
        settings[(role, database)] = dict(item.split("=", 1) for item in config or ())
    database_rows = {
        row[0]: DatabaseRow(
            row[0], row[1], parse_grants(row[2]), row[3], row[4], row[5], tuple(row[6] or ())
        )
        for row in _rows(conn, "databases", {"names": list(databases)})
    }
    return ClusterState(
        roles=role_states,
        groups={member: frozenset(found) for member, found in groups.items()},
        settings=settings,
        databases=database_rows,
    )


def managed_services(conn: psycopg.Connection[tuple[Any, ...]]) -> list[str]:
    """Services whose owner role carries our marker comment."""
    return [row[0].removesuffix("_owner") for row in _rows(conn, "managed_owner_roles", {})]


def read_database(
    conn: psycopg.Connection[tuple[Any, ...]], owner: str, app: str, logins: Sequence[str] = ()
) -> DatabaseState:
    """The per-database facts, over a connection to the service's database."""
    params = {"owner": owner}
    return DatabaseState(
        extensions=frozenset(row[0] for row in _rows(conn, "extensions", {})),
        schemas={row[0]: parse_grants(row[1]) for row in _rows(conn, "schemas", params)},
        default_privileges={
            row[0]: parse_grants(row[1]) for row in _rows(conn, "default_privileges", params)
        },
        relations=tuple(
            Relation(row[0], row[1], row[2], parse_grants(row[3]))
            for row in _rows(conn, "relations", params)
        ),
        routine_schemas_missing_execute=tuple(
            row[0]
            for row in _rows(conn, "routine_schemas_missing_execute", {"owner": owner, "app": app})
        ),
        owned_by_logins=tuple(
            row[0] for row in _rows(conn, "owned_by_logins", {"names": list(logins)})
        ),
    )
