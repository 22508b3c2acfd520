"""Computes the statements that take the catalog's current state to a service's role model.

Both states become sets of values (``infra.postgres.values``); one ``diff`` says what to revoke
and what to grant, and ``infra.postgres.render`` turns that into statements in the one order
written in its ``STEPS``.

Pure functions of (model, state): ``plan`` and ``apply`` both call these, so what
``plan`` prints is what ``apply`` runs, and a re-apply executes nothing.

The cluster part (roles, memberships, the database and its database-level grants and settings)
runs over the admin's connection; the database part (extensions, schema, default, relation and
routine privileges, ownership hand-over) runs inside the service's database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from infra import naming
from infra.postgres import registry
from infra.postgres.catalog import ClusterState, DatabaseRow, DatabaseState
from infra.postgres.model import (
    DEFAULT_PRIVILEGES,
    MARKER,
    SCHEMA_PRIVILEGES,
    SEQUENCE_PRIVILEGES,
    TABLE_PRIVILEGES,
    RoleSpec,
    ServiceModel,
)
from infra.postgres.render import render
from infra.postgres.statements import Statement
from infra.postgres.values import (
    Changes,
    Database,
    DatabaseAttribute,
    DatabaseSetting,
    Extension,
    Membership,
    Owns,
    Privilege,
    Role,
    RoleAttribute,
    RoleSetting,
    Scope,
    Value,
    diff,
)

# Attributes a non-superuser admin can neither set nor clear (PostgreSQL 15).
SUPERUSER_ONLY = (
    ("superuser", "SUPERUSER"),
    ("replication", "REPLICATION"),
    ("bypassrls", "BYPASSRLS"),
)


def foreign_objects(model: ServiceModel, cluster: ClusterState) -> list[str]:
    """Objects under the service's names that this tool did not create: never taken over.

    A role is ours only with our marker comment (COMMENT ON ROLE needs CREATEROLE, which no
    service role has). A database is ours when the tooling database's registry holds it (by
    OID) for this service, or, not registered at all (made before the registry), when our
    marked owner role owns it; its comment proves nothing (its owner may rewrite it).
    """
    found = []
    for role in model.roles:
        state = cluster.roles.get(role.name)
        if state is not None and not state.comment.startswith(MARKER):
            found.append(
                f"role {role.name} exists but was not created by this tool (no '{MARKER}' "
                f"comment); refusing to take it over for service {model.service}: rename it "
                f"(ALTER ROLE {role.name} RENAME TO ...) and apply again"
            )
    row = cluster.databases.get(model.database)
    if row is not None and not database_is_ours(model, cluster):
        registered = cluster.registry.get(model.database)
        why = (
            f"registered for service {registered[0]}"
            if registered is not None
            else f"owner {row.owner}, not in {naming.TOOLING_DATABASE}'s registry"
        )
        found.append(
            f"database {model.database} exists but was not created by this tool for service "
            f"{model.service} ({why}); refusing to take it over: rename it (ALTER DATABASE "
            f"{model.database} RENAME TO ...) and apply again"
        )
    return found


def database_is_ours(model: ServiceModel, cluster: ClusterState) -> bool:
    """Registered for this service, or unregistered and owned by our marked owner role."""
    row = cluster.databases.get(model.database)
    registered = cluster.registry.get(model.database)
    if row is None:
        return False
    if registered is not None:
        return registered[0] == model.service
    owner = cluster.roles.get(model.owner)
    return row.owner == model.owner and owner is not None and owner.comment.startswith(MARKER)


def superuser_problems(model: ServiceModel, cluster: ClusterState) -> list[str]:
    """Attributes on the service's roles that only a superuser can remove: the service waits."""
    problems = []
    for role in model.roles:
        state = cluster.roles.get(role.name)
        forbidden = [word for attr, word in SUPERUSER_ONLY if state and getattr(state, attr)]
        if forbidden:
            problems.append(
                f"role {role.name} has {', '.join(forbidden)}, which only a superuser can "
                f"remove (ALTER ROLE {role.name} NO{' NO'.join(forbidden)}); "
                f"service {model.service} was left unchanged"
            )
    return problems


def scope_of(model: ServiceModel) -> Scope:
    """The service's roles and database; the backup tooling's login may stay in the owner role."""
    return Scope(
        roles=frozenset(model.role_names),
        databases=frozenset({model.database}),
        foreign_members=frozenset({(model.owner, naming.tool_login(model.service))}),
    )


def _attributes(role: RoleSpec, model: ServiceModel) -> Iterator[RoleAttribute]:
    """What CREATE ROLE gives a role of the model (everything but the comment)."""
    yield RoleAttribute(role.name, "login", str(role.login).lower())
    yield RoleAttribute(role.name, "createdb", "false")
    yield RoleAttribute(role.name, "createrole", "false")
    yield RoleAttribute(role.name, "inherit", "true")
    yield RoleAttribute(role.name, "connection_limit", str(role.connection_limit))
    if role.password is not None:
        yield RoleAttribute(role.name, "password", str(model.password_version))


def wanted_cluster(model: ServiceModel, admin: str) -> set[Value]:
    """The roles, memberships and database the role model wants, cluster-wide."""
    db, owner, migrator = model.database, model.owner, model.role("migrator").name
    wanted: set[Value] = {
        Membership(owner, admin),
        Membership(owner, migrator),
        Database(db),
        DatabaseAttribute(db, "owner", owner),
        DatabaseAttribute(db, "registered", registry.LIVE),
        DatabaseAttribute(db, "is_template", "false"),
        DatabaseAttribute(db, "connection_limit", "-1"),
        DatabaseAttribute(db, "allow_connections", "true"),
        RoleSetting(migrator, "role", owner, database=db),
    }
    for role in model.roles:
        wanted |= {Role(role.name), *_attributes(role, model)}
        wanted.add(RoleAttribute(role.name, "comment", model.comment_for(role)))
        wanted |= {RoleSetting(role.name, k, v) for k, v in role.settings.items()}
    wanted |= {Privilege(db, "DATABASE", (db,), login.name, "CONNECT") for login in model.logins}
    return wanted


def _current_role(
    role: RoleSpec, model: ServiceModel, cluster: ClusterState, stale: frozenset[str]
) -> Iterator[Value]:
    state = cluster.roles.get(role.name)
    if state is None:  # as CREATE ROLE will leave it: only the comment and settings to come
        yield from _attributes(role, model)
        return
    yield Role(role.name)
    yield RoleAttribute(role.name, "login", str(state.login).lower())
    yield RoleAttribute(role.name, "createdb", str(state.createdb).lower())
    yield RoleAttribute(role.name, "createrole", str(state.createrole).lower())
    yield RoleAttribute(role.name, "inherit", str(state.inherit).lower())
    yield RoleAttribute(role.name, "connection_limit", str(state.connection_limit))
    yield RoleAttribute(role.name, "comment", state.comment)
    # The admin cannot read verifiers: the comment records the version applied, and a login
    # that changed its own password since (``stale``) no longer has it.
    current_version = state.comment == model.comment_for(role) and role.name not in stale
    if role.password is not None and current_version:
        yield RoleAttribute(role.name, "password", str(model.password_version))
    for database in ("", model.database):
        for key, value in cluster.settings_of(role.name, database).items():
            yield RoleSetting(role.name, key, value, database=database)
    yield from (Membership(group, role.name) for group in cluster.groups_of(role.name))
    yield from (Membership(role.name, member) for member in cluster.members_of(role.name))


def _current_database(
    model: ServiceModel, row: DatabaseRow | None, registered: tuple[str, str] | None
) -> Iterator[Value]:
    db = model.database
    if row is None:  # as CREATE DATABASE ... ALLOW_CONNECTIONS false will leave it
        row = DatabaseRow(
            db,
            model.owner,
            frozenset({("PUBLIC", "CONNECT"), ("PUBLIC", "TEMPORARY")}),
            allow_connections=False,
        )
    else:
        yield Database(db)
    yield DatabaseAttribute(db, "owner", row.owner)
    if registered is not None and registered[0] == model.service:
        yield DatabaseAttribute(db, "registered", registered[1])
    yield DatabaseAttribute(db, "is_template", str(row.is_template).lower())
    yield DatabaseAttribute(db, "connection_limit", str(row.connection_limit))
    yield DatabaseAttribute(db, "allow_connections", str(row.allow_connections).lower())
    for setting in row.settings:
        name, _, value = setting.partition("=")
        yield DatabaseSetting(db, name, value)
    for who, privilege in row.grants:
        if who not in (row.owner, model.owner):  # an owner's rights are implicit
            yield Privilege(db, "DATABASE", (db,), who, privilege)


def current_cluster(
    model: ServiceModel, cluster: ClusterState, stale: frozenset[str] = frozenset()
) -> set[Value]:
    """The catalog's cluster-wide facts about the service's roles and database."""
    current: set[Value] = set()
    for role in model.roles:
        current.update(_current_role(role, model, cluster, stale))
    current.update(
        _current_database(
            model, cluster.databases.get(model.database), cluster.registry.get(model.database)
        )
    )
    return current


def _granted(
    model: ServiceModel, on: str, target: tuple[str, ...], per_kind: dict[str, frozenset[str]]
) -> Iterator[Privilege]:
    for kind, wanted in per_kind.items():
        for privilege in wanted:
            yield Privilege(model.database, on, target, model.role(kind).name, privilege)


def _held(
    model: ServiceModel,
    on: str,
    target: tuple[str, ...],
    grants: Iterable[tuple[str, str]],
    managed: Iterable[str],
) -> Iterator[Privilege]:
    """The privileges the managed role kinds hold on one object."""
    names = {model.role(kind).name for kind in managed}
    for who, privilege in grants:
        if who in names:
            yield Privilege(model.database, on, target, who, privilege)


def _relation_privileges(relation_kind: str) -> dict[str, frozenset[str]]:
    return SEQUENCE_PRIVILEGES if relation_kind == "S" else TABLE_PRIVILEGES


def wanted_database(model: ServiceModel, state: DatabaseState) -> set[Value]:
    """Extensions and privileges the model wants on what exists in the service's database."""
    db, owner, app = model.database, model.owner, model.role("app").name
    wanted: set[Value] = {Extension(db, name) for name in model.extensions}
    for schema in state.schemas:
        wanted.update(_granted(model, "SCHEMA", (schema,), SCHEMA_PRIVILEGES))
    for objtype, per_kind in DEFAULT_PRIVILEGES.items():
        wanted.update(_granted(model, "DEFAULT", (owner, objtype), per_kind))
    for rel in state.relations:
        on = "SEQUENCE" if rel.kind == "S" else "TABLE"
        wanted.update(_granted(model, on, (rel.schema, rel.name), _relation_privileges(rel.kind)))
    wanted |= {Privilege(db, "ROUTINE", (r.schema, r.oid), app, "EXECUTE") for r in state.routines}
    return wanted


def current_database(model: ServiceModel, state: DatabaseState) -> set[Value]:
    """What the service's database holds now, for the role kinds the model manages."""
    db, owner, app = model.database, model.owner, model.role("app").name
    current: set[Value] = {Extension(db, name) for name in state.extensions}
    current |= {Owns(db, login) for login in state.owned_by_logins}
    for schema, grants in state.schemas.items():
        current.update(_held(model, "SCHEMA", (schema,), grants, SCHEMA_PRIVILEGES))
        if ("PUBLIC", "CREATE") in grants:
            current.add(Privilege(db, "SCHEMA", (schema,), "PUBLIC", "CREATE"))
    for objtype, per_kind in DEFAULT_PRIVILEGES.items():
        grants = state.default_privileges.get(objtype, frozenset())
        current.update(_held(model, "DEFAULT", (owner, objtype), grants, per_kind))
    for rel in state.relations:
        on = "SEQUENCE" if rel.kind == "S" else "TABLE"
        managed = _relation_privileges(rel.kind)
        current.update(_held(model, on, (rel.schema, rel.name), rel.grants, managed))
    current |= {
        Privilege(db, "ROUTINE", (r.schema, r.oid), app, "EXECUTE")
        for r in state.routines
        if r.app_may_execute
    }
    return current


def cluster_statements(
    model: ServiceModel, cluster: ClusterState, admin: str, stale: frozenset[str] = frozenset()
) -> list[Statement]:
    """Roles, memberships and the database itself, run over the admin's connection."""
    changes = diff(
        wanted_cluster(model, admin), current_cluster(model, cluster, stale), scope_of(model)
    )
    return render(changes, model, admin)


def database_statements(model: ServiceModel, state: DatabaseState, admin: str) -> list[Statement]:
    """Ownership hand-over, extensions and privileges, run inside the service's database."""
    changes = diff(wanted_database(model, state), current_database(model, state), scope_of(model))
    return render(changes, model, admin)


def handover_statements(model: ServiceModel, state: DatabaseState, admin: str) -> list[Statement]:
    """Only the ownership hand-over, which apply runs (and re-reads after) before the rest."""
    handed = tuple(Owns(model.database, login) for login in state.owned_by_logins)
    return render(Changes(revoke=handed, grant=()), model, admin)
