"""``converge``, ``plan`` and ``apply``: every service's database and roles on one server.

Each run reads the cluster once (one query), computes only the differences
(``infra.postgres.converge``), and runs each planned statement where its own fields say: the
cluster part over the admin's connection (consecutive transactional statements in one
transaction, CREATE DATABASE alone), then the database part inside the service's database, read
and written in one transaction. The database parts, and the test logins that find a changed
password, run in a small pool of connections. Nothing is remembered between runs, so an
interrupted apply is finished by the next one, and an apply right after an apply executes
nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, replace
from typing import Any

import psycopg

from infra import naming
from infra.config.model import ServiceSpec, StackConfig
from infra.credentials import Credentials
from infra.errors import ServerError, UsageError
from infra.postgres import registry
from infra.postgres.catalog import (
    ClusterState,
    DatabaseState,
    fresh_database,
    managed_services,
    read_cluster,
    read_database,
)
from infra.postgres.converge import (
    cluster_statements,
    database_statements,
    foreign_objects,
    handover_statements,
    superuser_problems,
)
from infra.postgres.driver import execute, password_rejected, session
from infra.postgres.model import RoleSpec, ServiceModel, service_model
from infra.postgres.statements import Statement

Connection = psycopg.Connection[tuple[Any, ...]]
StatementHook = Callable[[Statement], None]
# Connections used at once besides the admin's: enough to hide a proxy's round trips, few
# enough for a small server's connection budget.
POOL_SIZE = 4
# The tooling database's advisory lock an apply holds for its whole run: a second apply waits.
APPLY_LOCK_KEY = "apply"


@dataclass(frozen=True)
class ServicePlan:
    """What one service needs (or ran); ``problems`` are changes only a superuser can make."""

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


@dataclass(frozen=True)
class Converged:
    """What ``converge`` planned (dry run) or executed, per service; ``managed`` (dry run only)
    lists every service whose marked owner role is on the server."""

    services: tuple[ServicePlan, ...]
    managed: tuple[str, ...] = ()

    def report(self) -> ApplyReport:
        return ApplyReport(
            executed=tuple(s.text for service in self.services for s in service.statements),
            changed=tuple(service.service for service in self.services if service.statements),
        )


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
        logins = credentials.for_service(spec.name)
        passwords = {kind: logins.postgres_password(kind) for kind in naming.LOGIN_SUFFIXES}
        models.append(service_model(spec, passwords, logins.version))
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


def _logins(model: ServiceModel) -> list[str]:
    """Roles that must own nothing in the service's database: its logins and the tool login."""
    return [role.name for role in model.logins] + [naming.tool_login(model.service)]


def _read_database(conn: Connection, model: ServiceModel) -> DatabaseState:
    return read_database(conn, model.owner, model.role("app").name, _logins(model))


def _needs_test_login(role: RoleSpec, model: ServiceModel, cluster: ClusterState) -> bool:
    """Only a login already at the current password version can have changed it since."""
    state = cluster.roles.get(role.name)
    return (
        state is not None
        and role.password is not None
        and state.login
        and state.comment == model.comment_for(role)
    )


def _stale_passwords(
    pool: ThreadPoolExecutor, admin_url: str, models: Sequence[ServiceModel], cluster: ClusterState
) -> frozenset[str]:
    """Logins (already at the current password version) whose known password is refused.

    The admin cannot read password verifiers (pg_authid), so the only way to see that a login
    changed its own password is to log in with the one we know; only an explicit
    "password authentication failed" counts, never a refused or unreachable connection. The
    logins run in the pool.
    """
    tries = [
        (role.name, role.password, model.database)
        for model in models
        for role in model.logins
        if _needs_test_login(role, model, cluster)
    ]
    refused = pool.map(lambda t: password_rejected(admin_url, t[0], str(t[1]), t[2]), tries)
    return frozenset(name for (name, _, _), stale in zip(tries, refused, strict=True) if stale)


def _execute(
    conn: Connection,
    database: str | None,
    statements: Sequence[Statement],
    service: str,
    hook: StatementHook | None,
) -> list[Statement]:
    """Run ``statements`` on ``conn`` (connected to ``database``; None: the admin URL's):
    consecutive transactional ones in one transaction (a savepoint if one is open), the others
    (CREATE DATABASE) on their own."""
    misplaced = [s.text for s in statements if s.database != database]
    if misplaced:
        raise RuntimeError(f"statements for another database than {database}: {misplaced}")
    executed: list[Statement] = []
    for transactional, group in itertools.groupby(statements, key=lambda s: s.transactional):
        with conn.transaction() if transactional else nullcontext():
            for statement in group:
                if hook is not None:
                    hook(statement)
                execute(conn, statement, f"service {service}")
                executed.append(statement)
    return executed


def _plan_database(
    admin_url: str, model: ServiceModel, admin: str, exists: bool
) -> tuple[list[Statement], list[str]]:
    """The database part of a plan: from a read of the database, or from a fresh one's state."""
    if not exists:
        return database_statements(model, fresh_database(model.owner), admin), []
    try:
        with session(admin_url, dbname=model.database, autocommit=True) as db:
            state = _read_database(db, model)
    except ServerError as error:
        return [], [f"{model.database}: not inspected ({error}); apply fixes access"]
    return database_statements(model, state, admin), []


def _apply_database(
    admin_url: str, model: ServiceModel, admin: str, hook: StatementHook | None
) -> tuple[list[Statement], list[str]]:
    """Read and converge the service's database in one transaction, ownership first (the
    privileges on what is handed over are computed after it)."""
    executed: list[Statement] = []
    with session(admin_url, dbname=model.database, autocommit=True) as db, db.transaction():
        state = _read_database(db, model)
        if state.owned_by_logins:
            handover = handover_statements(model, state, admin)
            executed += _execute(db, model.database, handover, model.service, hook)
            state = _read_database(db, model)
        planned = database_statements(model, state, admin)
        executed += _execute(db, model.database, planned, model.service, hook)
    return executed, []


def _execute_cluster(
    conn: Connection,
    tool: Connection | None,
    statements: Sequence[Statement],
    service: str,
    hook: StatementHook | None,
) -> list[Statement]:
    """The cluster part: over the admin's connection, the registry's rows over ``tool``."""
    executed: list[Statement] = []
    for database, group in itertools.groupby(statements, key=lambda s: s.database):
        if database == naming.TOOLING_DATABASE:
            assert tool is not None, "apply holds a tooling connection"
            executed += _execute(tool, database, list(group), service, hook)
        else:
            executed += _execute(conn, database, list(group), service, hook)
    return executed


def _cluster(conn: Connection, admin_url: str, models: Sequence[ServiceModel]) -> ClusterState:
    """The catalog's cluster facts and the tooling database's registry for the services."""
    state = _read_cluster(conn, models)
    found = registry.read(admin_url, [m.service for m in models], [m.database for m in models])
    return replace(state, registry=found)


def _refreshed(
    conn: Connection, admin_url: str, cluster: ClusterState, model: ServiceModel
) -> ClusterState:
    """``cluster`` after ``model``'s statements ran: its names read again, the rest kept (a
    full read per service made converging N services from empty cost N^2)."""
    fresh = _cluster(conn, admin_url, [model])
    return cluster.updated(fresh, model.role_names, [model.database], [model.service])


def _refusals(model: ServiceModel, cluster: ClusterState) -> list[str]:
    """Why this service is left alone this run (the others are converged all the same)."""
    return foreign_objects(model, cluster) or superuser_problems(model, cluster)


def converge(
    admin_url: str,
    models: Sequence[ServiceModel],
    *,
    dry_run: bool = False,
    on_statement: StatementHook | None = None,
) -> Converged:
    """Converge (or, with ``dry_run``, only plan) the given services on the server.

    ``on_statement`` is called before each statement (tests use it to interrupt an apply).
    One service's refusal (a name we did not create, an attribute only a superuser can
    remove) or failure (a statement refused, a lock held past ``lock_timeout``) never stops the
    others: an apply converges the rest, then raises one ApplyFailedError naming each such service.
    Two applies serialize on a lock in the tooling database, where no service can take it.
    """
    planned: list[tuple[ServiceModel, list[Statement], list[str]]] = []
    parts: list[Future[tuple[list[Statement], list[str]]] | None] = []
    with ExitStack() as stack:
        conn = stack.enter_context(session(admin_url, autocommit=True))
        admin = _check_admin(conn)
        _refuse_unavailable_extensions(conn, models)
        tool: Connection | None = None
        if not dry_run:
            tool = stack.enter_context(registry.tooling_session(admin_url))
            registry.lock(tool, APPLY_LOCK_KEY)
        pool = stack.enter_context(ThreadPoolExecutor(POOL_SIZE))
        cluster = _cluster(conn, admin_url, models)
        managed = tuple(managed_services(conn)) if dry_run else ()
        stale = _stale_passwords(pool, admin_url, models, cluster)
        for model in models:
            problems = _refusals(model, cluster)
            if problems:
                planned.append((model, [], problems))
                parts.append(None)
                continue
            exists = model.database in cluster.databases
            statements = cluster_statements(model, cluster, admin, stale)
            if dry_run:
                parts.append(pool.submit(_plan_database, admin_url, model, admin, exists))
            else:
                try:
                    statements = _execute_cluster(
                        conn, tool, statements, model.service, on_statement
                    )
                except ServerError as error:
                    planned.append((model, [], [str(error)]))
                    parts.append(None)
                    continue
                if statements:
                    # What this service changed (e.g. revoking another service's login from its
                    # roles) must not be done a second time from a stale read.
                    cluster = _refreshed(conn, admin_url, cluster, model)
                parts.append(pool.submit(_apply_database, admin_url, model, admin, on_statement))
            planned.append((model, statements, problems))
        services = []
        for (model, statements, problems), part in zip(planned, parts, strict=True):
            try:
                inside, found = part.result() if part is not None else ([], [])
            except ServerError as error:
                inside, found = [], [str(error)]
            services.append(
                ServicePlan(model.service, tuple(statements + inside), tuple(problems + found))
            )
    result = Converged(tuple(services), managed)
    if not dry_run and any(service.problems for service in services):
        raise ApplyFailedError(result)
    return result


class ApplyFailedError(ServerError):
    """Some services could not be converged; the others were. Carries what was executed."""

    def __init__(self, result: Converged) -> None:
        self.result = result
        failed = [service for service in result.services if service.problems]
        lines = [problem for service in failed for problem in service.problems]
        names = ", ".join(service.service for service in failed)
        super().__init__("\n".join([*lines, f"apply failed for {names}; the others converged"]))


def plan(
    admin_url: str,
    config: StackConfig,
    credentials: Credentials,
    services: Sequence[str] | None = None,
) -> Plan:
    """What ``apply`` would execute now, without changing anything."""
    result = converge(admin_url, _models(config, credentials, services), dry_run=True)
    configured = {spec.name for spec in config.services}
    return Plan(result.services, tuple(name for name in result.managed if name not in configured))


def apply(
    admin_url: str,
    config: StackConfig,
    credentials: Credentials,
    services: Sequence[str] | None = None,
    *,
    on_statement: StatementHook | None = None,
) -> ApplyReport:
    """Converge the selected services of the stack (all by default); return what was executed."""
    models = _models(config, credentials, services)
    return converge(admin_url, models, on_statement=on_statement).report()
