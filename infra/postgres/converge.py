"""Computes the statements that take the catalog's current state to a service's role model.

Both states become sets of values (``infra.postgres.values``); one ``diff`` says what to revoke
and what to grant, and ``render`` turns that into statements in the one order written in
``STEPS``. Pure functions of (model, state): ``plan`` and ``apply`` both call these, so what
``plan`` prints is what ``apply`` runs, and a re-apply executes nothing.

The cluster part (roles, memberships, the database and its database-level grants and settings)
runs over the admin's connection; the database part (extensions, schema, default, relation and
routine privileges, ownership hand-over) runs inside the service's database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

from psycopg import sql

from infra import naming
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
from infra.postgres.statements import Statement, build, fill, grantee, keyword, privileges
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

DEFAULT_OBJECTS = {"r": "TABLES", "S": "SEQUENCES", "f": "FUNCTIONS", "n": "SCHEMAS"}
# Attributes a non-superuser admin can neither set nor clear (PostgreSQL 15).
SUPERUSER_ONLY = (
    ("superuser", "SUPERUSER"),
    ("replication", "REPLICATION"),
    ("bypassrls", "BYPASSRLS"),
)
# Role attributes that ALTER ROLE sets, in the order they appear in one ALTER ROLE ... WITH.
ATTRIBUTE_WORDS: dict[str, Callable[[str], sql.Composable]] = {
    "login": lambda value: keyword("LOGIN" if value == "true" else "NOLOGIN"),
    "createdb": lambda _value: keyword("NOCREATEDB"),
    "createrole": lambda _value: keyword("NOCREATEROLE"),
    "inherit": lambda _value: keyword("INHERIT"),
    "connection_limit": lambda value: sql.SQL("CONNECTION LIMIT {}").format(
        sql.Literal(int(value))
    ),
}
# The one statement order, shared by plan and apply. Revokes come before grants of a kind.
STEPS = (
    "create_role",
    "alter_role_attributes",
    "set_password",
    "comment_role",
    "reset_role_setting",
    "set_role_setting",
    "revoke_membership",
    "grant_membership",
    "create_database",
    "alter_database_owner",
    "revoke_database",
    "grant_database",
    "comment_database",
    "reset_database_settings",
    "database_connection_limit",
    "reset_role_setting_in_database",
    "set_role_setting_in_database",
    "allow_connections",
    # Inside the service's database:
    "reassign_owned",
    "create_extension",
    "revoke_schema",
    "grant_schema",
    "revoke_default",
    "grant_default",
    "revoke_relation",
    "grant_relation",
    "grant_routines",
)


def foreign_objects(model: ServiceModel, cluster: ClusterState) -> list[str]:
    """Objects under the service's names that this tool did not create: never taken over.

    A role is ours only with our marker comment. A database is ours with our marker, or, if it
    has no comment at all (made before databases were marked), when its owner is our marked
    owner role.
    """
    found = []
    for role in model.roles:
        state = cluster.roles.get(role.name)
        if state is not None and not state.comment.startswith(MARKER):
            found.append(
                f"role {role.name} exists but was not created by this tool (no '{MARKER}' "
                f"comment); refusing to take it over for service {model.service}: drop or "
                "rename it"
            )
    row = cluster.databases.get(model.database)
    owner = cluster.roles.get(model.owner)
    ours_by_owner = (
        row is not None
        and row.comment == ""
        and row.owner == model.owner
        and owner is not None
        and owner.comment.startswith(MARKER)
    )
    if row is not None and not row.comment.startswith(MARKER) and not ours_by_owner:
        found.append(
            f"database {model.database} exists but was not created by this tool (owner "
            f"{row.owner}, no '{MARKER}' comment); refusing to take it over for service "
            f"{model.service}: drop or rename it"
        )
    return found


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
        DatabaseAttribute(db, "comment", MARKER),
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


def _current_database(model: ServiceModel, row: DatabaseRow | None) -> Iterator[Value]:
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
    yield DatabaseAttribute(db, "comment", row.comment)
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
    current.update(_current_database(model, cluster.databases.get(model.database)))
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


def _create_role(model: ServiceModel, name: str) -> Statement:
    role = next(spec for spec in model.roles if spec.name == name)
    return build(
        "create_role",
        role=sql.Identifier(name),
        login=keyword("LOGIN" if role.login else "NOLOGIN"),
        limit=sql.Literal(role.connection_limit),
        password=role.password,
    )


def _role_value(model: ServiceModel, value: RoleAttribute) -> tuple[str, Statement]:
    """Password and comment statements; plain attributes are gathered per role instead."""
    ident = sql.Identifier(value.role)
    if value.name == "password":
        role = next(spec for spec in model.roles if spec.name == value.role)
        return "set_password", build("set_password", role=ident, password=role.password)
    return "comment_role", build("comment_role", role=ident, comment=sql.Literal(value.value))


def _setting(value: RoleSetting, grant: bool) -> tuple[str, Statement]:
    parts: dict[str, sql.Composable] = {
        "role": sql.Identifier(value.role),
        "setting": sql.Identifier(value.name),
    }
    name = ("set" if grant else "reset") + "_role_setting"
    if value.database:
        parts["database"] = sql.Identifier(value.database)
        name += "_in_database"
    if grant:
        parts["value"] = sql.Literal(value.value)
    return name, fill(name, parts)


def _database_value(value: DatabaseAttribute) -> tuple[str, Statement]:
    database = sql.Identifier(value.database)
    if value.name == "owner":
        step = "alter_database_owner"
        return step, build(step, database=database, owner=sql.Identifier(value.value))
    if value.name == "comment":
        return "comment_database", build(
            "comment_database", database=database, comment=sql.Literal(value.value)
        )
    if value.name == "connection_limit":
        step = "database_connection_limit"
        return step, build(step, database=database, limit=sql.Literal(int(value.value)))
    step = "allow_connections"
    return step, build(step, database=database, allowed=sql.Literal(value.value == "true"))


def _privilege_statements(
    model: ServiceModel, values: Iterable[Privilege], grant: bool
) -> Iterator[tuple[str, Statement]]:
    """One GRANT or REVOKE per object and grantee, with all its privileges."""
    grouped: dict[tuple[str, tuple[str, ...], str], set[str]] = defaultdict(set)
    for value in values:
        grouped[(value.on, value.target, value.grantee)].add(value.privilege)
    verb = "grant" if grant else "revoke"
    routine_schemas: set[str] = set()
    for (on, target, who), words in sorted(grouped.items()):
        in_db = None if on == "DATABASE" else model.database
        parts: dict[str, sql.Composable] = {
            "privileges": privileges(words),
            "grantee": grantee(who),
        }
        if on == "DATABASE":
            parts["database"] = sql.Identifier(target[0])
            step = f"{verb}_database"
        elif on == "SCHEMA":
            parts["schema"] = sql.Identifier(target[0])
            step = f"{verb}_schema"
        elif on == "DEFAULT":
            parts["owner"] = sql.Identifier(target[0])
            parts["objects"] = keyword(DEFAULT_OBJECTS[target[1]])
            step = f"{verb}_default"
        elif on == "ROUTINE":  # only ever granted: one GRANT ... ON ALL ROUTINES per schema
            routine_schemas.update(target[:1] if grant else ())
            continue
        else:
            parts["kind"] = keyword(on)
            parts["relation"] = sql.Identifier(*target)
            step = f"{verb}_relation"
        yield step, fill(step, parts, in_database=in_db)
    app = sql.Identifier(model.role("app").name)
    for schema in sorted(routine_schemas):
        yield (
            "grant_routines",
            build(
                "grant_routines",
                in_database=model.database,
                schema=sql.Identifier(schema),
                grantee=app,
            ),
        )


def _handover(model: ServiceModel, value: Owns, admin: str) -> list[Statement]:
    """Everything a service login owns goes to the owner role (the admin joins the login for
    the one statement, in the same transaction)."""
    member, group = sql.Identifier(admin), sql.Identifier(value.role)
    db = model.database
    return [
        build("grant_membership", in_database=db, group=group, member=member),
        build("reassign_owned", in_database=db, role=group, owner=sql.Identifier(model.owner)),
        build("revoke_membership", in_database=db, group=group, member=member),
    ]


def render(changes: Changes, model: ServiceModel, admin: str) -> list[Statement]:
    """The statements for ``changes``, in the order of ``STEPS``."""
    steps: dict[str, list[Statement]] = defaultdict(list)
    attributes: dict[str, dict[str, str]] = defaultdict(dict)
    revoked_privileges: list[Privilege] = []
    granted_privileges: list[Privilege] = []
    for value, grant in [(v, False) for v in changes.revoke] + [(v, True) for v in changes.grant]:
        if isinstance(value, Privilege):
            (granted_privileges if grant else revoked_privileges).append(value)
        elif isinstance(value, Role):
            steps["create_role"].append(_create_role(model, value.name))
        elif isinstance(value, RoleAttribute) and value.name in ATTRIBUTE_WORDS:
            attributes[value.role][value.name] = value.value
        elif isinstance(value, RoleAttribute):
            step, statement = _role_value(model, value)
            steps[step].append(statement)
        elif isinstance(value, RoleSetting):
            step, statement = _setting(value, grant)
            steps[step].append(statement)
        elif isinstance(value, Membership):
            step = "grant_membership" if grant else "revoke_membership"
            group, member = sql.Identifier(value.group), sql.Identifier(value.member)
            steps[step].append(build(step, group=group, member=member))
        elif isinstance(value, Database):
            steps["create_database"].append(
                build(
                    "create_database",
                    database=sql.Identifier(value.database),
                    owner=sql.Identifier(model.owner),
                    transactional=False,
                )
            )
        elif isinstance(value, DatabaseAttribute):
            step, statement = _database_value(value)
            steps[step].append(statement)
        elif isinstance(value, DatabaseSetting) and not steps["reset_database_settings"]:
            steps["reset_database_settings"].append(
                build("reset_database_settings", database=sql.Identifier(value.database))
            )
        elif isinstance(value, Extension):
            steps["create_extension"].append(
                build(
                    "create_extension",
                    in_database=model.database,
                    extension=sql.Identifier(value.name),
                )
            )
        elif isinstance(value, Owns):
            steps["reassign_owned"].extend(_handover(model, value, admin))
    for role, changed in sorted(attributes.items()):
        words = [
            ATTRIBUTE_WORDS[name](changed[name]) for name in ATTRIBUTE_WORDS if name in changed
        ]
        steps["alter_role_attributes"].append(
            build(
                "alter_role_attributes",
                role=sql.Identifier(role),
                attributes=sql.SQL(" ").join(words),
            )
        )
    for step, statement in _privilege_statements(model, revoked_privileges, grant=False):
        steps[step].append(statement)
    for step, statement in _privilege_statements(model, granted_privileges, grant=True):
        steps[step].append(statement)
    return [statement for step in STEPS for statement in steps[step]]


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
