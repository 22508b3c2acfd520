"""``plan`` and ``apply``: converge every service's database and roles on one server.

Each run reads the catalog, computes only the differences (``converge``), and applies each
service in its own transactions: roles first (admin's database), then CREATE DATABASE (which
cannot run in a transaction), then everything inside the service's database, read and written
in one transaction. Nothing is remembered between runs, so an interrupted apply is finished by
the next one, and an apply right after an apply executes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from infra import naming
from infra.config.model import ServiceSpec, StackConfig
from infra.credentials import Credentials
from infra.errors import ServerError, UsageError
from infra.postgres.catalog import (
    ClusterState,
    fresh_database,
    fresh_database_row,
    managed_services,
    read_cluster,
    read_database,
)
from infra.postgres.converge import (
    database_cluster_statements,
    database_statements,
    foreign_objects,
    ownership_statements,
    role_statements,
)
from infra.postgres.driver import connect, password_rejected, scrub
from infra.postgres.model import ServiceModel, service_model
from infra.postgres.statements import Statement

Connection = psycopg.Connection[tuple[Any, ...]]
StatementHook = Callable[[Statement], None]


@dataclass(frozen=True)
class ServicePlan:
    """What one service needs; ``problems`` are changes only a superuser can make."""

    service: str
    statements: tuple[Statement, ...]
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """Every selected service's statements, and managed services no longer in the config."""

    services: tuple[ServicePlan, ...]
    unmanaged: tuple[str, ...]

    @property
    def statements(self) -> tuple[Statement, ...]:
        return tuple(stmt for service in self.services for stmt in service.statements)

    @property
    def problems(self) -> tuple[str, ...]:
        return tuple(problem for service in self.services for problem in service.problems)


@dataclass(frozen=True)
class ApplyReport:
    """The statements executed (passwords redacted), and the services they changed."""

    executed: tuple[str, ...]
    changed: tuple[str, ...]


def _models(
    config: StackConfig, credentials: Credentials, services: Sequence[str] | None
) -> list[ServiceModel]:
    specs: list[ServiceSpec] = list(config.services)
    if services is not None:
        known = {spec.name for spec in specs}
        unknown = [name for name in services if name not in known]
        if unknown:
            raise UsageError(
                f"unknown service(s) {', '.join(unknown)}; "
                f"the stack has: {', '.join(sorted(known))}"
            )
        specs = [spec for spec in specs if spec.name in services]
    models = []
    for spec in specs:
        if spec.name not in credentials.services:
            raise UsageError(f"no credentials for service {spec.name!r} in the secrets")
        models.append(service_model(spec, credentials.for_service(spec.name)))
    return models


def _read_cluster(conn: Connection, models: Sequence[ServiceModel]) -> ClusterState:
    roles = [name for model in models for name in model.role_names]
    return read_cluster(conn, roles, [model.database for model in models])


def _check_admin(conn: Connection) -> str:
    """The admin this tool expects: CREATEROLE, not a superuser; named otherwise, up front."""
    row = conn.execute(
        "SELECT current_user, rolsuper, rolcreaterole FROM pg_catalog.pg_roles "
        "WHERE rolname = current_user"
    ).fetchone()
    assert row is not None
    admin, superuser, createrole = str(row[0]), bool(row[1]), bool(row[2])
    if superuser:
        raise ServerError(
            f"admin {admin} is a superuser: use a non-superuser admin with CREATEROLE and "
            "CREATEDB (templates/postgres/init-admin.sql.j2); nothing was changed"
        )
    if not createrole:
        raise ServerError(
            f"admin {admin} lacks CREATEROLE, which it needs to manage service roles "
            f"(as a superuser: ALTER ROLE {admin} CREATEROLE); nothing was changed"
        )
    return admin


def _refuse_unavailable_extensions(conn: Connection, models: Sequence[ServiceModel]) -> None:
    """An extension the server does not ship stops plan and apply before anything changes."""
    wanted = {name for model in models for name in model.extensions}
    if not wanted:
        return
    rows = conn.execute(
        "SELECT name FROM pg_catalog.pg_available_extensions WHERE name = ANY(%s)",
        (sorted(wanted),),
    ).fetchall()
    available = {str(row[0]) for row in rows}
    lines = [
        f"service {model.service}: extension {name!r} is not available on this server "
        "(pg_available_extensions); install it there or remove it from the stack"
        for model in models
        for name in model.extensions
        if name not in available
    ]
    if lines:
        raise ServerError("\n".join(lines))


def _refuse_foreign(models: Sequence[ServiceModel], cluster: ClusterState) -> None:
    """Stop before anything changes when one of our names is taken by something we did not make."""
    found = [line for model in models for line in foreign_objects(model, cluster)]
    if found:
        raise ServerError("\n".join(found))


def _role_settings_in(cluster: ClusterState, model: ServiceModel) -> dict[str, dict[str, str]]:
    """Each of the service's roles' settings inside its database."""
    return {
        role.name: cluster.settings_of(role.name, model.database)
        for role in model.roles
        if cluster.settings_of(role.name, model.database)
    }


def _logins(model: ServiceModel) -> list[str]:
    """Roles that must own nothing in the service's database: its logins and the tool login."""
    return [role.name for role in model.logins] + [naming.tool_login(model.service)]


def _stale_passwords(admin_url: str, model: ServiceModel, cluster: ClusterState) -> frozenset[str]:
    """Logins (already at the current password version) whose known password is refused.

    The admin cannot read password verifiers (pg_authid), so the only way to see that a login
    changed its own password is to log in with the one we know; only an explicit
    "password authentication failed" counts, never a refused or unreachable connection.
    """
    stale = set()
    for role in model.logins:
        state = cluster.roles.get(role.name)
        if (
            state is None
            or role.password is None
            or not state.login
            or state.comment != model.comment_for(role)
        ):
            continue
        if password_rejected(admin_url, role.name, role.password, model.database):
            stale.add(role.name)
    return frozenset(stale)


# pg_advisory_lock(class, key) held by an apply for its whole run: a second apply waits.
APPLY_LOCK = (0x7E57, 0)


def plan(
    admin_url: str,
    config: StackConfig,
    credentials: Credentials,
    services: Sequence[str] | None = None,
) -> Plan:
    """What ``apply`` would execute now, without changing anything."""
    models = _models(config, credentials, services)
    with connect(admin_url, autocommit=True) as conn:
        admin = _check_admin(conn)
        _refuse_unavailable_extensions(conn, models)
        cluster = _read_cluster(conn, models)
        configured = {spec.name for spec in config.services}
        unmanaged = tuple(name for name in managed_services(conn) if name not in configured)
    _refuse_foreign(models, cluster)
    planned = []
    for model in models:
        stale = _stale_passwords(admin_url, model, cluster)
        statements, problems = role_statements(model, cluster, admin, stale)
        statements += database_cluster_statements(model, cluster)
        settings: dict[str, dict[str, str]] = {}
        if model.database not in cluster.databases:
            row = fresh_database_row(model.database, model.owner)
            state = fresh_database(model.owner)
        else:
            row = cluster.databases[model.database]
            settings = _role_settings_in(cluster, model)
            try:
                with connect(admin_url, dbname=model.database, autocommit=True) as db:
                    state = read_database(db, model.owner, model.role("app").name, _logins(model))
            except ServerError as error:
                problems.append(f"{model.database}: not inspected ({error}); apply fixes access")
                planned.append(ServicePlan(model.service, tuple(statements), tuple(problems)))
                continue
        statements += ownership_statements(model, state, admin)
        statements += database_statements(model, row, settings, state)
        planned.append(ServicePlan(model.service, tuple(statements), tuple(problems)))
    return Plan(tuple(planned), unmanaged)


def _execute(
    conn: Connection,
    statement: Statement,
    service: str,
    hook: StatementHook | None,
    executed: list[str],
) -> None:
    if hook is not None:
        hook(statement)
    try:
        conn.execute(statement.query)
    except psycopg.Error as error:
        message = error.diag.message_primary or scrub(str(error), "")
        raise ServerError(f"service {service}: `{statement.text}` failed: {message}") from None
    executed.append(statement.text)


def apply(
    admin_url: str,
    config: StackConfig,
    credentials: Credentials,
    services: Sequence[str] | None = None,
    *,
    on_statement: StatementHook | None = None,
) -> ApplyReport:
    """Converge the selected services (all by default); return what was executed.

    ``on_statement`` is called before each statement (tests use it to interrupt an apply).
    Services whose roles carry attributes only a superuser can remove are skipped, and reported
    in one ServerError after the others were applied.
    """
    models = _models(config, credentials, services)
    executed: list[str] = []
    changed: list[str] = []
    problems: list[str] = []
    with connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_catalog.pg_advisory_lock(%s, %s)", APPLY_LOCK)
        admin = _check_admin(conn)
        _refuse_unavailable_extensions(conn, models)
        cluster = _read_cluster(conn, models)
        _refuse_foreign(models, cluster)
        for model in models:
            before = len(executed)
            found = _apply_service(admin_url, conn, admin, cluster, model, on_statement, executed)
            problems += found
            if len(executed) > before:
                changed.append(model.service)
                # What this service changed (e.g. revoking another service's login from its
                # roles) must not be done a second time from a stale read.
                cluster = _read_cluster(conn, models)
    if problems:
        raise ServerError("\n".join(problems))
    return ApplyReport(tuple(executed), tuple(changed))


def _apply_service(
    admin_url: str,
    conn: Connection,
    admin: str,
    cluster: ClusterState,
    model: ServiceModel,
    hook: StatementHook | None,
    executed: list[str],
) -> list[str]:
    stale = _stale_passwords(admin_url, model, cluster)
    statements, problems = role_statements(model, cluster, admin, stale)
    if problems:
        return problems
    if statements:
        with conn.transaction():
            for statement in statements:
                _execute(conn, statement, model.service, hook, executed)
    for statement in database_cluster_statements(model, cluster):
        _execute(conn, statement, model.service, hook, executed)
    with connect(admin_url, dbname=model.database, autocommit=True) as db, db.transaction():
        here = read_cluster(db, list(model.role_names), [model.database])
        state = read_database(db, model.owner, model.role("app").name, _logins(model))
        handover = ownership_statements(model, state, admin)
        for statement in handover:
            _execute(db, statement, model.service, hook, executed)
        if handover:
            state = read_database(db, model.owner, model.role("app").name, _logins(model))
        for statement in database_statements(
            model,
            here.databases[model.database],
            _role_settings_in(here, model),
            state,
        ):
            _execute(db, statement, model.service, hook, executed)
    return []
