"""The role model of one service: what must be true on the server, derived from the config.

Owner (NOLOGIN) owns the database and its objects; the migrator logs in and acts as the owner in
that database; app has data access only; readonly has SELECT only. Names come from infra.naming.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from infra import naming
from infra.config.model import ServiceSpec

MARKER = "managed-by=persistence"

# Privileges per role kind, on objects owned by the owner role (existing and future ones).
TABLE_PRIVILEGES = {
    "app": frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"}),
    "readonly": frozenset({"SELECT"}),
}
SEQUENCE_PRIVILEGES = {"app": frozenset({"USAGE", "SELECT"}), "readonly": frozenset()}
SCHEMA_PRIVILEGES = {"app": frozenset({"USAGE"}), "readonly": frozenset({"USAGE"})}
# Default privileges (pg_default_acl.defaclobjtype -> kind -> privileges). Functions: only the
# app's EXECUTE is managed (PUBLIC keeps PostgreSQL's default EXECUTE on functions).
DEFAULT_PRIVILEGES = {
    "r": TABLE_PRIVILEGES,
    "S": SEQUENCE_PRIVILEGES,
    "f": {"app": frozenset({"EXECUTE"})},
    "n": SCHEMA_PRIVILEGES,
}


# Recorded with the password version: the login's verifier is ``hashes.postgres_login_verifier``
# (the pooler's: its salt derived from the password, 1024 iterations). A login set before (a
# random salt) reads as not current, so the next apply sets its password once more.
VERIFIER_SCHEME = "verifier=derived-salt-1024"


def role_comment(version: int | None) -> str:
    """The marker comment; login roles also record the password version applied."""
    if version is None:
        return MARKER
    return f"{MARKER} password-version={version} {VERIFIER_SCHEME}"


@dataclass(frozen=True)
class RoleSpec:
    """One role as the model wants it."""

    kind: str
    name: str
    login: bool
    connection_limit: int
    settings: dict[str, str]
    password: str | None  # plaintext, only ever turned into a verifier client side


@dataclass(frozen=True)
class ServiceModel:
    """The desired state of one service."""

    service: str
    database: str
    roles: tuple[RoleSpec, ...]
    extensions: tuple[str, ...]
    password_version: int

    def role(self, kind: str) -> RoleSpec:
        return next(role for role in self.roles if role.kind == kind)

    @property
    def owner(self) -> str:
        return self.role("owner").name

    @property
    def logins(self) -> tuple[RoleSpec, ...]:
        return tuple(role for role in self.roles if role.login)

    @property
    def role_names(self) -> tuple[str, ...]:
        return tuple(role.name for role in self.roles)

    def comment_for(self, role: RoleSpec) -> str:
        return role_comment(self.password_version if role.login else None)


def service_model(spec: ServiceSpec, passwords: Mapping[str, str], version: int) -> ServiceModel:
    """Turn a ServiceSpec and its logins' passwords (``version`` of them) into the four roles
    and their settings. ``passwords`` maps each of naming.LOGIN_SUFFIXES to its password."""
    limits = spec.connection_limits
    idle = str(spec.idle_in_transaction_session_timeout_ms)

    def login(kind: str, limit: int, statement_timeout: int) -> RoleSpec:
        return RoleSpec(
            kind=kind,
            name=naming.role_name(spec.name, kind),
            login=True,
            connection_limit=limit,
            settings={
                "statement_timeout": str(statement_timeout),
                "idle_in_transaction_session_timeout": idle,
            },
            password=passwords[kind],
        )

    owner = RoleSpec(
        kind="owner",
        name=naming.owner_role(spec.name),
        login=False,
        connection_limit=-1,
        settings={},
        password=None,
    )
    return ServiceModel(
        service=spec.name,
        database=naming.database_name(spec.name),
        roles=(
            owner,
            login("migrator", limits.migrator, spec.migrator_statement_timeout_ms),
            login("app", limits.app, spec.statement_timeout_ms),
            login("readonly", limits.readonly, spec.statement_timeout_ms),
        ),
        extensions=spec.extensions,
        password_version=version,
    )
