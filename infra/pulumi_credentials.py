"""Credentials inside a Pulumi run: RandomPassword secrets instead of the secrets file.

Each service's passwords are keyed on its ``password_version``: bumping it in the stack config
replaces exactly that service's passwords (the rotation path for Pulumi runs).

Each service's passwords are their own Output (``StackPasswords.service``), and each admin
password is its own too. A resource takes the ones it uses, so it depends on those passwords
only: the dependency edges the engine stores (and the program's time and memory) grow linearly
with the number of services. Only what really holds every password (the servers' files, the
``credentials`` output) takes them all at once (``StackPasswords.everything``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pulumi
import pulumi_random as random

from infra import naming
from infra.config.model import StackConfig
from infra.credentials import Credentials, ServiceCredentials
from infra.platforms.pacing import Pacer, track
from infra.render import has_pooler_files

PASSWORD_LENGTH = 40  # letters and digits only: ~238 bits, safe in URLs and config files
SERVICE_LOGINS = (*naming.LOGIN_SUFFIXES, "redis", "rabbitmq")
ADMIN_LOGINS = (
    "postgres_superuser",
    "postgres_admin",
    "redis_admin",
    "rabbitmq_admin",
    "pooler_admin",
    "postgres_replication",
)


@dataclass(frozen=True)
class StackPasswords:
    """Every generated password of a stack, each a secret Output of its own."""

    postgres_superuser: pulumi.Output[str]
    postgres_admin: pulumi.Output[str]
    redis_admin: pulumi.Output[str]
    rabbitmq_admin: pulumi.Output[str]
    pooler_admin: pulumi.Output[str]
    postgres_replication: pulumi.Output[str]
    services: Mapping[str, pulumi.Output[ServiceCredentials]]

    def service(self, name: str) -> pulumi.Output[ServiceCredentials]:
        """One service's passwords: depends on that service's RandomPasswords only."""
        return self.services[name]

    @cached_property
    def everything(self) -> pulumi.Output[Credentials]:
        """All passwords as one ``Credentials``, for what holds every service's at once."""
        services = pulumi.Output.from_input(dict(self.services))
        admins = [getattr(self, login) for login in ADMIN_LOGINS]

        def assemble(values: list[Any]) -> Credentials:
            *admin_passwords, by_service = values
            fields = dict(zip(ADMIN_LOGINS, admin_passwords, strict=True))
            return Credentials(**fields, services=dict(by_service))

        return pulumi.Output.secret(pulumi.Output.all(*admins, services).apply(assemble))

    @cached_property
    def admins(self) -> pulumi.Output[Credentials]:
        """The admin passwords only (no service's), for what a server boots with.

        It must not depend on any service's passwords: during the preview of a new service
        those are unknown, and a server input built from them would be unknown too, which the
        engine shows (and applies) as a replacement of the server.
        """
        admins = [getattr(self, login) for login in ADMIN_LOGINS]

        def assemble(values: list[Any]) -> Credentials:
            return Credentials(**dict(zip(ADMIN_LOGINS, values, strict=True)))

        return pulumi.Output.secret(pulumi.Output.all(*admins).apply(assemble))


def _password(
    name: str,
    parent: pulumi.Resource | None,
    keepers: dict[str, str],
    pacer: Pacer | None = None,
) -> pulumi.Output[str]:
    password = random.RandomPassword(
        name,
        length=PASSWORD_LENGTH,
        special=False,
        keepers=keepers,
        # Declared at the stack's top level before the platform components parented them: the
        # alias keeps those stacks' passwords (a new URN alone would generate new ones).
        opts=pulumi.ResourceOptions(
            parent=parent, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]
        ),
    )
    return pulumi.Output.secret(track(pacer, password).result)


def _service_passwords(
    service: str, version: int, parent: pulumi.Resource | None, pacer: Pacer | None
) -> pulumi.Output[ServiceCredentials]:
    keepers = {"password_version": str(version)}
    logins = {
        login: _password(f"{service}-{login}", parent, keepers, pacer) for login in SERVICE_LOGINS
    }
    credentials = pulumi.Output.all(**logins).apply(
        lambda values: ServiceCredentials(**values, version=version)
    )
    return pulumi.Output.secret(credentials)


def generated_passwords(
    config: StackConfig, parent: pulumi.Resource | None, pacer: Pacer | None = None
) -> StackPasswords:
    """Declare every password of the stack under ``parent``; ``pacer`` tracks the services'
    (``infra.platforms.pacing``: the engine generates a password at once)."""
    # Only a stack that runs PgBouncer has its console login (prod's pooler is Cloud SQL's).
    unused = set() if has_pooler_files(config) else {"pooler_admin"}
    # Only the dev server streams to replicas of its own (prod's are Cloud SQL's).
    if config.platform != "docker":
        unused.add("postgres_replication")
    admins = {
        login: pulumi.Output.secret("")
        if login in unused
        else _password(login.replace("_", "-"), parent, {})
        for login in ADMIN_LOGINS
    }
    services = {
        spec.name: _service_passwords(spec.name, spec.password_version, parent, pacer)
        for spec in config.services
    }
    return StackPasswords(**admins, services=services)
