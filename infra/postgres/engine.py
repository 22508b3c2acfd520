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
    create_database_statement,
    database_statements,
    role_statements,
)
from infra.postgres.driver import connect, scrub
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


def _current_user(conn: Connection) -> str:
    row = conn.execute("SELECT current_user").fetchone()
    assert row is not None
    return str(row[0])


def plan(
    admin_url: str,
    config: StackConfig,
    credentials: Credentials,
    services: Sequence[str] | None = None,
) -> Plan:
    """What ``apply`` would execute now, without changing anything."""
    models = _models(config, credentials, services)
    with connect(admin_url, autocommit=True) as conn:
        admin = _current_user(conn)
        cluster = _read_cluster(conn, models)
        configured = {spec.name for spec in config.services}
        unmanaged = tuple(name for name in managed_services(conn) if name not in configured)
    planned = []
    for model in models:
        statements, problems = role_statements(model, cluster, admin)
        create = create_database_statement(model, cluster)
        migrator = model.role("migrator").name
        if create is not None:
            statements.append(create)
            row = fresh_database_row(model.database, model.owner)
            state = fresh_database(model.owner)
            settings: dict[str, str] = {}
        else:
            row = cluster.databases[model.database]
            settings = cluster.settings_of(migrator, model.database)
            try:
                with connect(admin_url, dbname=model.database, autocommit=True) as db:
                    state = read_database(db, model.owner, model.role("app").name)
            except ServerError as error:
                problems.append(f"{model.database}: not inspected ({error}); apply fixes access")
                planned.append(ServicePlan(model.service, tuple(statements), tuple(problems)))
                continue
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
        admin = _current_user(conn)
        cluster = _read_cluster(conn, models)
        for model in models:
            before = len(executed)
            found = _apply_service(admin_url, conn, admin, cluster, model, on_statement, executed)
            problems += found
            if len(executed) > before:
                changed.append(model.service)
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
    statements, problems = role_statements(model, cluster, admin)
    if problems:
        return problems
    if statements:
        with conn.transaction():
            for statement in statements:
                _execute(conn, statement, model.service, hook, executed)
    create = create_database_statement(model, cluster)
    if create is not None:
        _execute(conn, create, model.service, hook, executed)
    migrator = model.role("migrator").name
    with connect(admin_url, dbname=model.database, autocommit=True) as db, db.transaction():
        here = read_cluster(db, [migrator], [model.database])
        state = read_database(db, model.owner, model.role("app").name)
        for statement in database_statements(
            model,
            here.databases[model.database],
            here.settings_of(migrator, model.database),
            state,
        ):
            _execute(db, statement, model.service, hook, executed)
    return []
