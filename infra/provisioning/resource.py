"""``ServiceDatabase``: one service's database and roles as a Pulumi resource.

Both platforms declare one per service, depending on the PostgreSQL server they target. The
admin password and the service's passwords go in as secrets and come back out as secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic

from infra import naming
from infra.config.model import ServiceSpec
from infra.credentials import ServiceCredentials
from infra.provisioning.provider import ServiceDatabaseProvider, outputs_for

SECRET_OUTPUTS = ["admin_password", "passwords"]


@dataclass(frozen=True)
class AdminEndpoint:
    """How the provider reaches the server: the non-superuser admin login."""

    host: pulumi.Input[str]
    port: pulumi.Input[int]
    user: str
    password: pulumi.Input[str]
    sslmode: str = "prefer"


def service_inputs(service: ServiceSpec) -> dict[str, Any]:
    """The parts of a ServiceSpec the engine uses (everything else is not its business)."""
    limits = service.connection_limits
    return {
        "extensions": list(service.extensions),
        "connection_limits": {kind: getattr(limits, kind) for kind in naming.LOGIN_SUFFIXES},
        "statement_timeout_ms": service.statement_timeout_ms,
        "idle_in_transaction_session_timeout_ms": service.idle_in_transaction_session_timeout_ms,
        "migrator_statement_timeout_ms": service.migrator_statement_timeout_ms,
    }


class ServiceDatabase(pulumi.dynamic.Resource):
    """A service's database and its owner/migrator/app/readonly roles, converged on apply."""

    database: pulumi.Output[str]
    owner_role: pulumi.Output[str]
    migrator_role: pulumi.Output[str]
    app_role: pulumi.Output[str]
    readonly_role: pulumi.Output[str]
    statements_executed: pulumi.Output[int]
    pending_statements: pulumi.Output[int]

    def __init__(
        self,
        resource_name: str,
        *,
        service: ServiceSpec,
        admin: AdminEndpoint,
        credentials: pulumi.Output[ServiceCredentials],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        passwords = credentials.apply(lambda c: c.postgres_passwords())
        props: dict[str, Any] = {
            "service_name": service.name,
            "service": service_inputs(service),
            "admin_host": admin.host,
            "admin_port": admin.port,
            "admin_user": admin.user,
            "admin_password": pulumi.Output.secret(admin.password),
            "sslmode": admin.sslmode,
            "passwords": pulumi.Output.secret(passwords),
            # Not a secret: bumping it in the stack config is how Pulumi runs rotate.
            "password_version": pulumi.Output.unsecret(credentials.apply(lambda c: c.version)),
            **dict.fromkeys(outputs_for(service.name)),
            "statements_executed": None,
            "pending_statements": None,  # set by `pulumi refresh` when drift is found
        }
        own = pulumi.ResourceOptions(
            delete_before_replace=True, additional_secret_outputs=SECRET_OUTPUTS
        )
        super().__init__(
            ServiceDatabaseProvider(),
            resource_name,
            props,
            pulumi.ResourceOptions.merge(own, opts),
        )
