"""Secret Manager: one secret per login, each readable only by its own service's account.

PostgreSQL logins, the Valkey ACL user and the RabbitMQ user hold the connection URL the service
uses (the same URLs as a dev ``services/<name>.env``). Nothing a service can read holds another
service's password or an admin's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra import naming
from infra.credentials import ServiceCredentials
from infra.platforms.gcp import names
from infra.platforms.gcp.context import GcpContext
from infra.platforms.gcp.identities import Identities
from infra.platforms.pacing import Pacer, track
from infra.pulumi_credentials import StackPasswords
from infra.render import endpoints
from infra.render.services import amqp_url, postgres_url, redis_url

ACCESSOR = "roles/secretmanager.secretAccessor"


@dataclass(frozen=True)
class Secrets:
    """Secret ids by service (``kind``, ``redis`` or ``rabbitmq`` -> id)."""

    by_service: dict[str, dict[str, pulumi.Output[str]]]


def declare(ctx: GcpContext, identities: Identities, passwords: StackPasswords) -> Secrets:
    """Declare every secret, its current version and its one accessor binding.

    Each service's secrets take that service's passwords only (``passwords.service``), and are
    paced (``ctx.pacer``): they register in seconds."""
    stack_endpoints = endpoints.for_stack(ctx.config)
    by_service: dict[str, dict[str, pulumi.Output[str]]] = {}
    for spec in ctx.config.services:
        name = spec.name
        member = identities.services[name].member
        database = naming.database_name(name)
        own = passwords.service(name)
        ids: dict[str, pulumi.Output[str]] = {}
        for kind in naming.LOGIN_SUFFIXES:
            role = naming.role_name(name, kind)
            url = own.apply(_postgres_url(stack_endpoints, kind, role, database))
            login_id = naming.postgres_secret_id(name, kind)
            ids[kind] = declare_secret(ctx, login_id, url, {name: member}, pacer=ctx.pacer)
        if spec.redis:
            redis = own.apply(_redis_url(stack_endpoints, name))
            redis_id = naming.redis_secret_id(name)
            ids["redis"] = declare_secret(ctx, redis_id, redis, {name: member}, pacer=ctx.pacer)
        amqp = own.apply(_amqp_url(stack_endpoints, name))
        amqp_id = naming.rabbitmq_secret_id(name)
        ids["rabbitmq"] = declare_secret(ctx, amqp_id, amqp, {name: member}, pacer=ctx.pacer)
        by_service[name] = ids
    return Secrets(by_service=by_service)


def _postgres_url(
    stack_endpoints: endpoints.Endpoints, kind: str, role: str, database: str
) -> Callable[[ServiceCredentials], str]:
    """The URL of one PostgreSQL login (pooled or direct by ``kind``), once the service's
    passwords are known."""
    return lambda c: postgres_url(
        stack_endpoints, role, c.postgres_password(kind), database, kind=kind
    )


def _redis_url(
    stack_endpoints: endpoints.Endpoints, service: str
) -> Callable[[ServiceCredentials], str]:
    """The service's TLS URL for its own Valkey ACL user, once its passwords are known."""
    return lambda c: redis_url(stack_endpoints, naming.redis_user(service), c.redis)


def _amqp_url(
    stack_endpoints: endpoints.Endpoints, service: str
) -> Callable[[ServiceCredentials], str]:
    """The service's AMQP URL with its own vhost, once its passwords are known."""
    return lambda c: amqp_url(
        stack_endpoints,
        naming.rabbitmq_user(service),
        c.rabbitmq,
        naming.rabbitmq_vhost(service),
    )


def replication(ctx: GcpContext) -> gcp.secretmanager.SecretReplicationArgs:
    """A secret's copies: the stack's region and the backup region (a regional outage leaves
    the other readable), never Google's automatic choice of places."""
    return gcp.secretmanager.SecretReplicationArgs(
        user_managed=gcp.secretmanager.SecretReplicationUserManagedArgs(
            replicas=[
                gcp.secretmanager.SecretReplicationUserManagedReplicaArgs(location=region)
                for region in (ctx.region, ctx.config.gcp.backup_region)
            ]
        )
    )


def declare_secret(
    ctx: GcpContext,
    secret_id: str,
    value: pulumi.Output[str],
    readers: dict[str, pulumi.Output[str]],
    *,
    pacer: Pacer | None = None,
) -> pulumi.Output[str]:
    """One secret replicated to the main and the backup region; ``readers`` by service name.

    ``secret_id`` is the stack-free base: the physical id carries the stack (``ctx.name``).
    ``pacer`` tracks the secret, its version and bindings (only when ``value`` is quick to
    resolve: the pacer waits for them).
    """
    secret_data: pulumi.Output[str] = pulumi.Output.secret(value)
    secret = gcp.secretmanager.Secret(
        f"secret-{secret_id}",
        secret_id=ctx.name(secret_id, names.SECRET_ID),
        labels=ctx.labels,
        replication=replication(ctx),
        opts=ctx.opts(),
    )
    track(pacer, secret)
    track(
        pacer,
        gcp.secretmanager.SecretVersion(
            f"secret-{secret_id}-version",
            secret=secret.id,
            secret_data=secret_data,
            opts=ctx.opts(),
        ),
    )
    for service, member in readers.items():
        track(
            pacer,
            gcp.secretmanager.SecretIamMember(
                f"secret-{secret_id}-reader-{service}",
                project=ctx.project,
                secret_id=secret.secret_id,
                role=ACCESSOR,
                member=member,
                opts=ctx.opts(),
            ),
        )
    return secret.secret_id
