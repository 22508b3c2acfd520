"""Dropping a removed service's database and roles: the only path that deletes data.

Never called by ``apply`` or by the Pulumi provider's ``delete``; only by
``python -m infra db drop --service S --confirm S``, and only for roles carrying our marker.
"""

from __future__ import annotations

from psycopg import sql

from infra import naming
from infra.errors import UsageError
from infra.postgres import registry
from infra.postgres.catalog import read_cluster
from infra.postgres.driver import execute, session
from infra.postgres.model import MARKER
from infra.postgres.statements import build


def drop_service(admin_url: str, service: str) -> list[str]:
    """Drop the service's database (terminating its sessions), then its four roles."""
    roles = [naming.role_name(service, kind) for kind in reversed(naming.ROLE_SUFFIXES)]
    database = naming.database_name(service)
    executed: list[str] = []
    with session(admin_url, autocommit=True) as conn:
        cluster = read_cluster(conn, roles, [database])
        owner_name = naming.owner_role(service)
        owner = cluster.roles.get(owner_name)
        if owner is None or not owner.comment.startswith(MARKER):
            raise UsageError(
                f"service {service!r} has no role {owner_name} managed by "
                "this tool on the server; nothing dropped"
            )
        foreign = [
            r
            for r in roles
            if r in cluster.roles and not cluster.roles[r].comment.startswith(MARKER)
        ]
        row = cluster.databases.get(database)
        if row is not None and not registry.is_ours(admin_url, database, service):
            foreign.append(f"database {database} (owner {row.owner}, not in its registry)")
        if foreign:
            raise UsageError(
                f"service {service!r}: {', '.join(foreign)} not created by this tool; nothing "
                "dropped"
            )
        statements = []
        if row is not None and row.is_template:  # a template cannot be dropped
            statements.append(
                build(
                    "database_is_template",
                    database=sql.Identifier(database),
                    template=sql.Literal(False),
                )
            )
        statements.append(build("drop_database", database=sql.Identifier(database)))
        statements += [build("drop_role", role=sql.Identifier(role)) for role in roles]
        for statement in statements:
            execute(conn, statement)
            executed.append(statement.text)
    return executed
