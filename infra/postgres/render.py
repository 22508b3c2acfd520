"""Turns a diff's values into statements, in the one order both ``plan`` and ``apply`` use.

``STEPS`` is that order: roles, memberships and the database over the admin's connection,
then what lives inside the service's database. Privileges on one object for one grantee become
one GRANT or REVOKE with all of them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

from psycopg import sql

from infra import naming
from infra.postgres import values as v
from infra.postgres.model import ServiceModel
from infra.postgres.statements import Statement, build, fill, grantee, keyword, privileges

DEFAULT_OBJECTS = {"r": "TABLES", "S": "SEQUENCES", "f": "FUNCTIONS", "n": "SCHEMAS"}
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
    "database_is_template",
    "reset_database_settings",
    "database_connection_limit",
    "reset_role_setting_in_database",
    "set_role_setting_in_database",
    "register_database",
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


def _create_role(model: ServiceModel, name: str) -> Statement:
    role = next(spec for spec in model.roles if spec.name == name)
    return build(
        "create_role",
        role=sql.Identifier(name),
        login=keyword("LOGIN" if role.login else "NOLOGIN"),
        limit=sql.Literal(role.connection_limit),
        password=role.password,
    )


def _role_value(model: ServiceModel, value: v.RoleAttribute) -> tuple[str, Statement]:
    """Password and comment statements; plain attributes are gathered per role instead."""
    ident = sql.Identifier(value.role)
    if value.name == "password":
        role = next(spec for spec in model.roles if spec.name == value.role)
        return "set_password", build("set_password", role=ident, password=role.password)
    return "comment_role", build("comment_role", role=ident, comment=sql.Literal(value.value))


def _setting(value: v.RoleSetting, grant: bool) -> tuple[str, Statement]:
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


def _database_value(model: ServiceModel, value: v.DatabaseAttribute) -> tuple[str, Statement]:
    database = sql.Identifier(value.database)
    if value.name == "owner":
        step = "alter_database_owner"
        return step, build(step, database=database, owner=sql.Identifier(value.value))
    if value.name == "registered":  # in the tooling database's registry, by OID
        step = "register_database"
        return step, build(
            step,
            in_database=naming.TOOLING_DATABASE,
            database=sql.Literal(value.database),
            service=sql.Literal(model.service),
            purpose=sql.Literal(value.value),
        )
    if value.name == "is_template":
        step = "database_is_template"
        return step, build(step, database=database, template=sql.Literal(value.value == "true"))
    if value.name == "connection_limit":
        step = "database_connection_limit"
        return step, build(step, database=database, limit=sql.Literal(int(value.value)))
    step = "allow_connections"
    return step, build(step, database=database, allowed=sql.Literal(value.value == "true"))


def _privilege_statements(
    model: ServiceModel, values: Iterable[v.Privilege], grant: bool
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


def _handover(model: ServiceModel, value: v.Owns, admin: str) -> list[Statement]:
    """Everything a service login owns goes to the owner role (the admin joins the login for
    the one statement, in the same transaction)."""
    member, group = sql.Identifier(admin), sql.Identifier(value.role)
    db = model.database
    return [
        build("grant_membership", in_database=db, group=group, member=member),
        build("reassign_owned", in_database=db, role=group, owner=sql.Identifier(model.owner)),
        build("revoke_membership", in_database=db, group=group, member=member),
    ]


def render(changes: v.Changes, model: ServiceModel, admin: str) -> list[Statement]:
    """The statements for ``changes``, in the order of ``STEPS``."""
    steps: dict[str, list[Statement]] = defaultdict(list)
    attributes: dict[str, dict[str, str]] = defaultdict(dict)
    revoked_privileges: list[v.Privilege] = []
    granted_privileges: list[v.Privilege] = []
    for value, grant in [(x, False) for x in changes.revoke] + [(x, True) for x in changes.grant]:
        if isinstance(value, v.Privilege):
            (granted_privileges if grant else revoked_privileges).append(value)
        elif isinstance(value, v.Role):
            steps["create_role"].append(_create_role(model, value.name))
        elif isinstance(value, v.RoleAttribute) and value.name in ATTRIBUTE_WORDS:
            attributes[value.role][value.name] = value.value
        elif isinstance(value, v.RoleAttribute):
            step, statement = _role_value(model, value)
            steps[step].append(statement)
        elif isinstance(value, v.RoleSetting):
            step, statement = _setting(value, grant)
            steps[step].append(statement)
        elif isinstance(value, v.Membership):
            step = "grant_membership" if grant else "revoke_membership"
            group, member = sql.Identifier(value.group), sql.Identifier(value.member)
            steps[step].append(build(step, group=group, member=member))
        elif isinstance(value, v.Database):
            steps["create_database"].append(
                build(
                    "create_database",
                    database=sql.Identifier(value.database),
                    owner=sql.Identifier(model.owner),
                    transactional=False,
                )
            )
        elif isinstance(value, v.DatabaseAttribute):
            step, statement = _database_value(model, value)
            steps[step].append(statement)
        elif isinstance(value, v.DatabaseSetting) and not steps["reset_database_settings"]:
            steps["reset_database_settings"].append(
                build("reset_database_settings", database=sql.Identifier(value.database))
            )
        elif isinstance(value, v.Extension):
            steps["create_extension"].append(
                build(
                    "create_extension",
                    in_database=model.database,
                    extension=sql.Identifier(value.name),
                )
            )
        elif isinstance(value, v.Owns):
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
