"""Every fact the engine manages, as one hashable value; a plan is one set difference.

Modelled on ldap2pg's ``internal/privileges``: the wanted state (from the role model) and the
current state (from the catalog) are both sets of these values, and ``diff`` revokes what is
extra, then grants what is missing. Each value carries the database it lives in ("" for facts
that are cluster-wide), and knows whether it falls inside what this tool manages, so "extra" is
never computed on an object or role the tool did not create.

Single-valued facts (an attribute, a setting, an owner) carry a ``key``: a wanted value with the
same key as an extra one replaces it, so the extra one needs no statement of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Scope:
    """What this tool manages: its marked roles and its services' databases."""

    roles: frozenset[str]
    databases: frozenset[str]
    # Members of our roles that are not ours to remove (the backup tooling's short-lived login).
    foreign_members: frozenset[tuple[str, str]] = field(default_factory=frozenset)


class Value(Protocol):
    """A fact on the server: hashable, orderable, and placed in one database."""

    @property
    def database(self) -> str: ...

    @property
    def key(self) -> tuple[object, ...]: ...

    def managed(self, scope: Scope) -> bool: ...


class _Whole:
    """A fact with no single value: the whole value is its identity."""

    @property
    def key(self) -> tuple[object, ...]:
        return (self,)


class _Kept(_Whole):
    """Something this tool creates but never removes (a role, a database, an extension)."""

    def managed(self, scope: Scope) -> bool:
        return False


class _InDatabase:
    """A fact managed wherever its database is one of ours."""

    database: str

    def managed(self, scope: Scope) -> bool:
        return self.database in scope.databases


@dataclass(frozen=True, order=True)
class Role(_Kept):
    """A role exists (created with every attribute the model wants; never dropped here)."""

    name: str
    database: str = ""


@dataclass(frozen=True, order=True)
class _OfRole:
    """A single-valued fact of one role, managed when the role is ours; keyed by ``name``."""

    role: str
    name: str
    value: str
    database: str = ""

    @property
    def key(self) -> tuple[object, ...]:
        return (type(self).__name__, self.role, self.database, self.name)

    def managed(self, scope: Scope) -> bool:
        return self.role in scope.roles and (
            self.database == "" or self.database in scope.databases
        )


@dataclass(frozen=True, order=True)
class RoleAttribute(_OfRole):
    """One attribute of a role: login, createdb, createrole, inherit, connection_limit,
    password (the version applied) or comment."""


@dataclass(frozen=True, order=True)
class RoleSetting(_OfRole):
    """``ALTER ROLE role [IN DATABASE database] SET name = value``."""


@dataclass(frozen=True, order=True)
class Membership(_Whole):
    """``member`` belongs to ``group``."""

    group: str
    member: str
    database: str = ""

    def managed(self, scope: Scope) -> bool:
        touches = self.group in scope.roles or self.member in scope.roles
        return touches and (self.group, self.member) not in scope.foreign_members


@dataclass(frozen=True, order=True)
class Database(_Kept):
    """A database exists (created closed, owned by the owner role; never dropped here)."""

    database: str


@dataclass(frozen=True, order=True)
class DatabaseAttribute(_InDatabase):
    """One property of a database: owner, comment, connection_limit or allow_connections."""

    database: str
    name: str
    value: str

    @property
    def key(self) -> tuple[object, ...]:
        return ("database", self.database, self.name)


@dataclass(frozen=True, order=True)
class DatabaseSetting(_Whole, _InDatabase):
    """``ALTER DATABASE database SET name = value`` (none is wanted)."""

    database: str
    name: str
    value: str


@dataclass(frozen=True, order=True)
class Extension(_Kept):
    """An extension installed in a database (never dropped here)."""

    database: str
    name: str


@dataclass(frozen=True, order=True)
class Owns(_Whole):
    """``role`` owns something in ``database``; only the owner role may (none is wanted)."""

    database: str
    role: str

    def managed(self, scope: Scope) -> bool:
        return self.database in scope.databases and self.role in scope.roles


# Privilege targets: DATABASE (name,), SCHEMA (schema,), TABLE and SEQUENCE (schema, name),
# DEFAULT (owner, pg_default_acl.defaclobjtype), ROUTINE (schema, oid).
@dataclass(frozen=True, order=True)
class Privilege(_Whole, _InDatabase):
    """``GRANT privilege ON on target TO grantee`` inside ``database``."""

    database: str
    on: str
    target: tuple[str, ...]
    grantee: str
    privilege: str


@dataclass(frozen=True)
class Changes:
    """What ``diff`` found: extra values to revoke, then missing values to grant."""

    revoke: tuple[Value, ...]
    grant: tuple[Value, ...]

    def __bool__(self) -> bool:
        return bool(self.revoke or self.grant)


def _sort_key(value: Value) -> tuple[str, str]:
    return (type(value).__name__, repr(value))


def diff(wanted: Iterable[Value], current: Iterable[Value], scope: Scope) -> Changes:
    """Revoke what is extra (inside ``scope`` only), grant what is missing.

    An extra value whose key a missing value also has (an attribute's old value) is replaced by
    that grant, so it is not revoked on its own.
    """
    wanted_set, current_set = set(wanted), set(current)
    missing = wanted_set - current_set
    replaced = {value.key for value in missing}
    extra = {
        value
        for value in current_set - wanted_set
        if value.managed(scope) and value.key not in replaced
    }
    return Changes(
        revoke=tuple(sorted(extra, key=_sort_key)),
        grant=tuple(sorted(missing, key=_sort_key)),
    )
