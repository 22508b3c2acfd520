"""Credentials inside a Pulumi run: RandomPassword secrets instead of the secrets file.

Each service's passwords are keyed on its ``password_version``: bumping it in the stack config
replaces exactly that service's passwords (the rotation path for Pulumi runs).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_random as random

from infra import naming
from infra.config.model import StackConfig
from infra.credentials import Credentials, ServiceCredentials

PASSWORD_LENGTH = 40  # letters and digits only: ~238 bits, safe in URLs and config files
SERVICE_LOGINS = (*naming.LOGIN_SUFFIXES, "redis", "rabbitmq")


def _password(
    name: str, parent: pulumi.Resource | None, keepers: dict[str, str]
) -> pulumi.Output[str]:
    password = random.RandomPassword(
        name,
        length=PASSWORD_LENGTH,
        special=False,
        keepers=keepers,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return pulumi.Output.secret(password.result)


def generated_credentials(
    config: StackConfig, parent: pulumi.Resource | None = None
) -> pulumi.Output[Credentials]:
    """Every password of the stack, as one secret Output."""
    admin = {
        "postgres_superuser": _password("postgres-superuser", parent, {}),
        "postgres_admin": _password("postgres-admin", parent, {}),
        "redis_admin": _password("redis-admin", parent, {}),
        "rabbitmq_admin": _password("rabbitmq-admin", parent, {}),
    }
    services: dict[str, dict[str, Any]] = {}
    for spec in config.services:
        keepers = {"password_version": str(spec.password_version)}
        services[spec.name] = {
            login: _password(f"{spec.name}-{login}", parent, keepers) for login in SERVICE_LOGINS
        }
        services[spec.name]["version"] = spec.password_version

    def assemble(values: dict[str, Any]) -> Credentials:
        return Credentials(
            postgres_superuser=values["admin"]["postgres_superuser"],
            postgres_admin=values["admin"]["postgres_admin"],
            redis_admin=values["admin"]["redis_admin"],
            rabbitmq_admin=values["admin"]["rabbitmq_admin"],
            services={
                name: ServiceCredentials(**fields) for name, fields in values["services"].items()
            },
        )

    everything = pulumi.Output.from_input({"admin": admin, "services": services})
    return pulumi.Output.secret(everything.apply(assemble))
