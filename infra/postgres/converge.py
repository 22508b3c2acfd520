"""Computes the statements that take the catalog's current state to a service's role model.

Pure functions of (model, state): ``plan`` and ``apply`` both call these, so what ``plan``
prints is what ``apply`` runs. Only differences produce statements, which is what makes a
re-apply execute nothing and what repairs drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import sql

from infra import naming
from infra.postgres.catalog import ClusterState, DatabaseRow, DatabaseState, Grants, privileges_of
from infra.postgres.model import (
    DEFAULT_PRIVILEGES,
    MARKER,
    SCHEMA_PRIVILEGES,
    SEQUENCE_PRIVILEGES,
    TABLE_PRIVILEGES,
    ServiceModel,
)
from infra.postgres.statements import Statement, build, grantee, keyword, privileges

DEFAULT_OBJECTS = {"r": "TABLES", "S": "SEQUENCES", "f": "FUNCTIONS", "n": "SCHEMAS"}
# Attributes a non-superuser admin can neither set nor clear (PostgreSQL 15).
SUPERUSER_ONLY = (
    ("superuser", "SUPERUSER"),
    ("replication", "REPLICATION"),
    ("bypassrls", "BYPASSRLS"),
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


def role_statements(
    model: ServiceModel,
    cluster: ClusterState,
    admin: str,
    stale_passwords: frozenset[str] = frozenset(),
) -> tuple[list[Statement], list[str]]:
    """Roles, attributes, passwords, settings and memberships; plus problems we cannot fix.

    ``stale_passwords``: logins whose known password no longer logs in (a login changed its
    own password): their password is set again.
    """
    out: list[Statement] = []
    problems: list[str] = []
    for role in model.roles:
        ident = sql.Identifier(role.name)
        state = cluster.roles.get(role.name)
        comment = model.comment_for(role)
        if state is None:
            out.append(
                build(
                    "create_role",
                    role=ident,
                    login=keyword("LOGIN" if role.login else "NOLOGIN"),
                    limit=sql.Literal(role.connection_limit),
                    password=role.password,
                )
            )
            out.append(build("comment_role", role=ident, comment=sql.Literal(comment)))
        else:
            forbidden = [word for attr, word in SUPERUSER_ONLY if getattr(state, attr)]
            if forbidden:
                problems.append(
                    f"role {role.name} has {', '.join(forbidden)}, which only a superuser can "
                    f"remove (ALTER ROLE {role.name} NO{' NO'.join(forbidden)}); "
                    f"service {model.service} was left unchanged"
                )
                continue
            attributes: list[sql.Composable] = []
            if state.login != role.login:
                attributes.append(keyword("LOGIN" if role.login else "NOLOGIN"))
            if state.createdb:
                attributes.append(keyword("NOCREATEDB"))
            if state.createrole:
                attributes.append(keyword("NOCREATEROLE"))
            if not state.inherit:
                attributes.append(keyword("INHERIT"))
            if state.connection_limit != role.connection_limit:
                attributes.append(
                    sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(role.connection_limit))
                )
            if attributes:
                out.append(
                    build(
                        "alter_role_attributes",
                        role=ident,
                        attributes=sql.SQL(" ").join(attributes),
                    )
                )
            if state.comment != comment:
                if role.password is not None:
                    out.append(build("set_password", role=ident, password=role.password))
                out.append(build("comment_role", role=ident, comment=sql.Literal(comment)))
            elif role.name in stale_passwords and role.password is not None:
                out.append(build("set_password", role=ident, password=role.password))
        current = cluster.settings_of(role.name)
        for setting in sorted(set(current) - set(role.settings)):
            out.append(build("reset_role_setting", role=ident, setting=sql.Identifier(setting)))
        for setting, value in sorted(role.settings.items()):
            if current.get(setting) != value:
                out.append(
                    build(
                        "set_role_setting",
                        role=ident,
                        setting=sql.Identifier(setting),
                        value=sql.Literal(value),
                    )
                )
    if problems:
        return [], problems
    out.extend(_membership_statements(model, cluster, admin))
    return out, problems


def _membership_statements(
    model: ServiceModel, cluster: ClusterState, admin: str
) -> list[Statement]:
    """The admin and the migrator belong to the owner role; the other roles belong to nothing."""
    out: list[Statement] = []
    wanted: dict[str, frozenset[str]] = {role.name: frozenset() for role in model.roles}
    wanted[model.role("migrator").name] = frozenset({model.owner})
    if model.owner not in cluster.groups_of(admin):
        out.append(
            build(
                "grant_membership", group=sql.Identifier(model.owner), member=sql.Identifier(admin)
            )
        )
    allowed = {model.owner: {admin, model.role("migrator").name, naming.tool_login(model.service)}}
    for role in model.roles:
        for member in sorted(cluster.members_of(role.name) - allowed.get(role.name, set())):
            if member in wanted:
                continue  # one of the service's own roles: handled below
            out.append(
                build(
                    "revoke_membership",
                    group=sql.Identifier(role.name),
                    member=sql.Identifier(member),
                )
            )
    for member, groups in wanted.items():
        have = cluster.groups_of(member)
        for group in sorted(groups - have):
            out.append(
                build(
                    "grant_membership", group=sql.Identifier(group), member=sql.Identifier(member)
                )
            )
        for group in sorted(have - groups):
            out.append(
                build(
                    "revoke_membership", group=sql.Identifier(group), member=sql.Identifier(member)
                )
            )
    return out


def database_cluster_statements(model: ServiceModel, cluster: ClusterState) -> list[Statement]:
    """The database itself, from the admin's database: created closed when missing, then
    PUBLIC's rights revoked, marked, settings and connection limit reset, and opened last.

    So a new database is never reachable with PUBLIC's default CONNECT or TEMP, and a database
    left closed by an interrupted apply or restore is opened again by the next apply.
    """
    database = sql.Identifier(model.database)
    out: list[Statement] = []
    row = cluster.databases.get(model.database)
    if row is None:
        out.append(
            build(
                "create_database",
                database=database,
                owner=sql.Identifier(model.owner),
                transactional=False,
            )
        )
        row = DatabaseRow(
            model.database,
            model.owner,
            frozenset({("PUBLIC", "CONNECT"), ("PUBLIC", "TEMPORARY")}),
            allow_connections=False,
        )
    public = privileges_of(row.grants, "PUBLIC")
    if public:
        out.append(
            build(
                "revoke_database",
                privileges=privileges(public),
                database=database,
                grantee=keyword("PUBLIC"),
            )
        )
    if row.comment != MARKER:
        out.append(build("comment_database", database=database, comment=sql.Literal(MARKER)))
    if row.settings:
        out.append(build("reset_database_settings", database=database))
    if row.connection_limit != -1:
        out.append(build("database_connection_limit", database=database, limit=sql.Literal(-1)))
    if not row.allow_connections:
        out.append(build("allow_connections", database=database, allowed=sql.Literal(True)))
    return out


def _grant_diff(
    grants: Grants,
    who: str,
    wanted: frozenset[str],
    grant: str,
    revoke: str,
    in_database: str,
    **target: Any,
) -> list[Statement]:
    have = privileges_of(grants, who)
    out = []
    if wanted - have:
        out.append(
            build(
                grant,
                in_database=in_database,
                privileges=privileges(wanted - have),
                grantee=grantee(who),
                **target,
            )
        )
    if have - wanted:
        out.append(
            build(
                revoke,
                in_database=in_database,
                privileges=privileges(have - wanted),
                grantee=grantee(who),
                **target,
            )
        )
    return out


def ownership_statements(model: ServiceModel, state: DatabaseState, admin: str) -> list[Statement]:
    """Everything a service login owns in the database goes to the owner role, first (the
    privileges on what it hands over are converged after it)."""
    db = model.database
    out: list[Statement] = []
    for login in state.owned_by_logins:
        member, group = sql.Identifier(admin), sql.Identifier(login)
        out.append(build("grant_membership", in_database=db, group=group, member=member))
        out.append(
            build("reassign_owned", in_database=db, role=group, owner=sql.Identifier(model.owner))
        )
        out.append(build("revoke_membership", in_database=db, group=group, member=member))
    return out


def database_statements(
    model: ServiceModel,
    row: DatabaseRow,
    role_settings: Mapping[str, Mapping[str, str]],
    state: DatabaseState,
) -> list[Statement]:
    """Ownership, CONNECT, extensions, schema, default and object privileges in the database.

    ``role_settings``: each of the service's roles' settings in this database; only the
    migrator's ``role = <owner>`` belongs there.
    """
    db = model.database
    on_db = sql.Identifier(db)
    out: list[Statement] = []
    if row.owner != model.owner:
        out.append(
            build(
                "alter_database_owner",
                in_database=db,
                database=on_db,
                owner=sql.Identifier(model.owner),
            )
        )
    migrator = model.role("migrator").name
    logins = {role.name for role in model.logins}
    grantees = {who for who, _ in row.grants} | logins
    for who in sorted(grantees - {row.owner, model.owner, "PUBLIC"}):
        wanted = frozenset({"CONNECT"}) if who in logins else frozenset()
        out += _grant_diff(
            row.grants, who, wanted, "grant_database", "revoke_database", db, database=on_db
        )
    for role, settings in sorted(role_settings.items()):
        for setting in sorted(settings):
            if role == migrator and setting == "role":
                continue
            out.append(
                build(
                    "reset_role_setting_in_database",
                    in_database=db,
                    role=sql.Identifier(role),
                    database=on_db,
                    setting=sql.Identifier(setting),
                )
            )
    if role_settings.get(migrator, {}).get("role") != model.owner:
        out.append(
            build(
                "set_role_setting_in_database",
                in_database=db,
                role=sql.Identifier(migrator),
                database=on_db,
                setting=sql.Identifier("role"),
                value=sql.Literal(model.owner),
            )
        )
    for extension in model.extensions:
        if extension not in state.extensions:
            out.append(
                build("create_extension", in_database=db, extension=sql.Identifier(extension))
            )
    for schema, grants in sorted(state.schemas.items()):
        target = sql.Identifier(schema)
        for kind, wanted in SCHEMA_PRIVILEGES.items():
            out += _grant_diff(
                grants,
                model.role(kind).name,
                wanted,
                "grant_schema",
                "revoke_schema",
                db,
                schema=target,
            )
        if "CREATE" in privileges_of(grants, "PUBLIC"):
            out.append(
                build(
                    "revoke_schema",
                    in_database=db,
                    privileges=keyword("CREATE"),
                    schema=target,
                    grantee=keyword("PUBLIC"),
                )
            )
    owner = sql.Identifier(model.owner)
    for objtype, per_kind in DEFAULT_PRIVILEGES.items():
        grants = state.default_privileges.get(objtype, frozenset())
        for kind, wanted in per_kind.items():
            out += _grant_diff(
                grants,
                model.role(kind).name,
                wanted,
                "grant_default",
                "revoke_default",
                db,
                owner=owner,
                objects=keyword(DEFAULT_OBJECTS[objtype]),
            )
    for relation in state.relations:
        sequence = relation.kind == "S"
        wanted_by_kind = SEQUENCE_PRIVILEGES if sequence else TABLE_PRIVILEGES
        for kind, wanted in wanted_by_kind.items():
            out += _grant_diff(
                relation.grants,
                model.role(kind).name,
                wanted,
                "grant_relation",
                "revoke_relation",
                db,
                kind=keyword("SEQUENCE" if sequence else "TABLE"),
                relation=sql.Identifier(relation.schema, relation.name),
            )
    for schema in state.routine_schemas_missing_execute:
        out.append(
            build(
                "grant_routines",
                in_database=db,
                schema=sql.Identifier(schema),
                grantee=sql.Identifier(model.role("app").name),
            )
        )
    return out
