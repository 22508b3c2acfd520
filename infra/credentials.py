"""The generated credentials of a stack: admin logins and every service's logins.

Outside Pulumi these live in a secrets file (``infra.secrets_file``); inside Pulumi they are
``RandomPassword`` secrets. Either way the rest of the code sees this one shape.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from infra import naming
from infra.config.model import StackConfig

PASSWORD_BYTES = 32  # 256 bits of entropy, URL-safe text


def new_password() -> str:
    """A fresh random password, safe inside URLs and config files without escaping."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


@dataclass(frozen=True)
class ServiceCredentials:
    """One service's passwords; ``version`` counts rotations."""

    migrator: str
    app: str
    readonly: str
    redis: str
    rabbitmq: str
    version: int = 1

    @classmethod
    def generate(cls, version: int) -> ServiceCredentials:
        return cls(
            migrator=new_password(),
            app=new_password(),
            readonly=new_password(),
            redis=new_password(),
            rabbitmq=new_password(),
            version=version,
        )

    def postgres_password(self, kind: str) -> str:
        """The password of one PostgreSQL login kind (``naming.LOGIN_SUFFIXES``)."""
        if kind not in naming.LOGIN_SUFFIXES:
            raise KeyError(kind)
        return str(getattr(self, kind))

    def postgres_passwords(self) -> dict[str, str]:
        """Every PostgreSQL login's password, by login kind."""
        return {kind: self.postgres_password(kind) for kind in naming.LOGIN_SUFFIXES}


@dataclass(frozen=True)
class Credentials:
    """Every password a stack needs."""

    postgres_superuser: str
    postgres_admin: str
    redis_admin: str
    rabbitmq_admin: str
    services: dict[str, ServiceCredentials] = field(default_factory=dict)
    # The connection pooler's console login (``db pools``); empty in a file written before the
    # pooler existed, and filled in by ``completed_for``.
    pooler_admin: str = ""
    # The dev replicas' streaming login (``postgres.replicas``); filled in like pooler_admin.
    postgres_replication: str = ""

    @classmethod
    def generate(cls) -> Credentials:
        return cls(
            postgres_superuser=new_password(),
            postgres_admin=new_password(),
            redis_admin=new_password(),
            rabbitmq_admin=new_password(),
            pooler_admin=new_password(),
            postgres_replication=new_password(),
        )

    def for_service(self, name: str) -> ServiceCredentials:
        return self.services[name]

    def completed_for(self, config: StackConfig) -> Credentials:
        """Fill in missing services and logins, and rotate those whose ``password_version``
        went up."""
        services = dict(self.services)
        for spec in config.services:
            current = services.get(spec.name)
            if current is None or current.version < spec.password_version:
                services[spec.name] = ServiceCredentials.generate(spec.password_version)
        return replace(
            self,
            services=services,
            pooler_admin=self.pooler_admin or new_password(),
            postgres_replication=self.postgres_replication or new_password(),
        )

    def rotated(self, service: str, keep: Collection[str] = ()) -> Credentials:
        """New passwords for one service, one version up: the old ones stop working on apply.

        ``keep`` names logins (``redis``, ``rabbitmq``) whose password stays: one that cannot be
        pushed to its server now must not be replaced in the file by one the server refuses.
        """
        current = self.services[service]
        fresh = ServiceCredentials.generate(current.version + 1)
        services = dict(self.services)
        services[service] = replace(fresh, **{login: getattr(current, login) for login in keep})
        return replace(self, services=services)


def credentials_json(credentials: Credentials) -> str:
    """The one text form of credentials: secrets files, the backup container, stack outputs."""
    return json.dumps(asdict(credentials), indent=2, sort_keys=True) + "\n"


def credentials_from_json(text: str) -> Credentials:
    """Parse ``credentials_json`` output; ValueError/TypeError/KeyError on anything else."""
    data: dict[str, Any] = json.loads(text)
    services = {name: ServiceCredentials(**values) for name, values in data.pop("services").items()}
    return Credentials(**data, services=services)
