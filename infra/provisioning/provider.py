"""The dynamic provider behind ``ServiceDatabase``: the CLI's engine, for one service.

Pulumi pickles the provider object into the state file, so it holds nothing: no credential, no
connection, no config. Every method builds what it needs from its inputs and connects inside
the call. ``delete`` never drops data: removing a service keeps its database and roles until
``python -m infra db drop`` is run on purpose.
"""

from __future__ import annotations

from typing import Any

from psycopg.conninfo import make_conninfo
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from infra import naming
from infra.config import rules
from infra.config.model import ConnectionLimits, ServiceSpec
from infra.errors import ServerError
from infra.postgres.model import ServiceModel, service_model
from infra.provisioning.unknowns import is_unknown, known, plain

# Inputs whose change re-runs the engine; the service name is fixed (a rename is a replace).
TRACKED = (
    "service",
    "admin_host",
    "admin_port",
    "admin_user",
    "admin_password",
    "sslmode",
    "passwords",
    "password_version",
)
PASSWORD_KINDS = naming.LOGIN_SUFFIXES
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def check_inputs(news: dict[str, Any]) -> list[CheckFailure]:
    """Every problem with the inputs, one per property, instead of raising."""
    failures = []
    name = plain(news.get("service_name"))
    if is_unknown(name):
        pass  # checked again at apply time, when it is known
    elif not isinstance(name, str) or not name:
        failures.append(CheckFailure("service_name", "a service name is required, e.g. 'users'"))
    elif (problem := rules.service_name(name)) is not None:
        failures.append(CheckFailure("service_name", problem))
    port = plain(news.get("admin_port"))
    if known(port) and not (isinstance(port, int | float) and 0 < int(port) < 65536):
        failures.append(CheckFailure("admin_port", f"{port!r} is not a TCP port (1-65535)"))
    for key in ("admin_host", "admin_user", "admin_password"):
        if known(news.get(key)) and not plain(news.get(key)):
            failures.append(CheckFailure(key, f"{key} must not be empty"))
    sslmode = plain(news.get("sslmode"))
    if not is_unknown(sslmode) and sslmode not in SSL_MODES:
        failures.append(
            CheckFailure("sslmode", f"{sslmode!r} is not one of {', '.join(SSL_MODES)}")
        )
    passwords = plain(news.get("passwords"))
    complete = isinstance(passwords, dict) and all(passwords.get(k) for k in PASSWORD_KINDS)
    if known(passwords) and not complete:
        failures.append(
            CheckFailure("passwords", f"needs non-empty {', '.join(PASSWORD_KINDS)} passwords")
        )
    return failures


def spec_from_inputs(props: dict[str, Any]) -> ServiceSpec:
    """The ServiceSpec fields the engine uses, rebuilt from the resource's plain inputs."""
    service = props["service"]
    return ServiceSpec(
        name=props["service_name"],
        extensions=tuple(service["extensions"]),
        connection_limits=ConnectionLimits(
            **{k: int(v) for k, v in service["connection_limits"].items()}
        ),
        statement_timeout_ms=int(service["statement_timeout_ms"]),
        idle_in_transaction_session_timeout_ms=int(
            service["idle_in_transaction_session_timeout_ms"]
        ),
        migrator_statement_timeout_ms=int(service["migrator_statement_timeout_ms"]),
        password_version=int(props["password_version"]),
    )


def _engine_inputs(props: dict[str, Any]) -> tuple[str, ServiceModel]:
    """The admin URL and the service's model, from the resource's inputs."""
    spec = spec_from_inputs(props)
    passwords = {kind: str(props["passwords"][kind]) for kind in naming.LOGIN_SUFFIXES}
    admin_url = make_conninfo(
        host=str(props["admin_host"]),
        port=int(props["admin_port"]),
        user=str(props["admin_user"]),
        password=str(props["admin_password"]),
        dbname="postgres",
        sslmode=str(props["sslmode"]),
    )
    return admin_url, service_model(spec, passwords, spec.password_version)


def converge(props: dict[str, Any]) -> dict[str, Any]:
    """Run the engine for this one service and return the resource's outputs."""
    from infra.postgres import engine

    admin_url, model = _engine_inputs(props)
    report = engine.converge(admin_url, [model]).report()
    return {
        **props,
        **outputs_for(model.service),
        "statements_executed": len(report.executed),
        "pending_statements": 0,
    }


def pending(props: dict[str, Any]) -> int:
    """How many statements the service needs now (drift made by hand, a lost database)."""
    from infra.postgres import engine

    admin_url, model = _engine_inputs(props)
    result = engine.converge(admin_url, [model], dry_run=True)
    # A refusal (a name this tool did not create) counts: preview must not say "no change"
    # for a service the next up will refuse.
    return sum(len(service.statements) + len(service.problems) for service in result.services)


def outputs_for(service: str) -> dict[str, str]:
    """The names a service's database and roles get (stable, derived from the name)."""
    return {
        "database": naming.database_name(service),
        **{f"{kind}_role": naming.role_name(service, kind) for kind in naming.ROLE_SUFFIXES},
    }


class ServiceDatabaseProvider(ResourceProvider):
    """Create/update converge the service; delete keeps its data. Holds no state."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, check_inputs(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = ["service_name"] if olds.get("service_name") != news.get("service_name") else []
        drifted = bool(olds.get("pending_statements"))  # found by `pulumi refresh`
        changed = (
            bool(replaces) or drifted or any(olds.get(key) != news.get(key) for key in TRACKED)
        )
        return DiffResult(
            changes=changed,
            replaces=replaces,
            stables=["database", "owner_role", "migrator_role", "app_role", "readonly_role"],
            # Role and database names are fixed: the old resource must go before the new one.
            delete_before_replace=True,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        # Convergent: a failed create leaves only what the next create finishes, never a
        # half-made object the engine cannot recognise.
        return CreateResult(id_=str(props["service_name"]), outs=converge(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=converge(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """``pulumi refresh``: record drift as pending statements, so the next ``up`` converges.

        A server that cannot be reached (a lost container, a disaster) forgets the resource:
        the next ``up`` creates it again, and create is a convergence that keeps any data.
        """
        try:
            count = pending(props)
        except ServerError:
            return ReadResult(id_=None, outs={})
        return ReadResult(id_=id_, outs={**props, "pending_statements": count})

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Deliberately keeps the database and roles (drop: ``python -m infra db drop``)."""
        return
