"""Computes the statements that take the catalog's current state to a service's role model.

Pure functions of (model, state): ``plan`` and ``apply`` both call these, so what ``plan``
prints is what ``apply`` runs. Only differences produce statements, which is what makes a
re-apply execute nothing and what repairs drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import sql

from infra.postgres.catalog import ClusterState, DatabaseRow, DatabaseState, Grants, privileges_of
from infra.postgres.model import (
    DEFAULT_PRIVILEGES,
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


def role_statements(
    model: ServiceModel, cluster: ClusterState, admin: str
) -> tuple[list[Statement], list[str]]:
    """Roles, attributes, passwords, settings and memberships; plus problems we cannot fix."""
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
        current = cluster.settings_of(role.name)
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


def create_database_statement(model: ServiceModel, cluster: ClusterState) -> Statement | None:
    """CREATE DATABASE, outside any transaction, when the database is missing."""
    if model.database in cluster.databases:
        return None
    return build(
        "create_database",
        database=sql.Identifier(model.database),
        owner=sql.Identifier(model.owner),
        transactional=False,
    )


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


def database_statements(
    model: ServiceModel,
    row: DatabaseRow,
    migrator_settings: Mapping[str, str],
    state: DatabaseState,
) -> list[Statement]:
    """Ownership, CONNECT, extensions, schema, default and object privileges in the database."""
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
    logins = {role.name for role in model.logins}
    grantees = {who for who, _ in row.grants} | logins
    for who in sorted(grantees - {row.owner, model.owner}):
        wanted = frozenset({"CONNECT"}) if who in logins else frozenset()
        out += _grant_diff(
            row.grants, who, wanted, "grant_database", "revoke_database", db, database=on_db
        )
    migrator = model.role("migrator").name
    if migrator_settings.get("role") != model.owner:
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
