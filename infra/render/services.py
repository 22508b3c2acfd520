"""``services/<service>.env``: every connection setting a service needs, for its own logins."""

from __future__ import annotations

from urllib.parse import quote

from infra import naming
from infra.config.model import ServiceSpec
from infra.credentials import ServiceCredentials
from infra.render.endpoints import Endpoints
from infra.render.environment import render


def postgres_url(
    endpoints: Endpoints, user: str, password: str, database: str, *, pooled: bool = False
) -> str:
    """A libpq URL; every part is percent-encoded. ``pooled``: through the connection pooler,
    where the stack has one."""
    host, port = endpoints.postgres_host, endpoints.postgres_port
    if pooled and endpoints.pooler_host is not None and endpoints.pooler_port is not None:
        host, port = endpoints.pooler_host, endpoints.pooler_port
    return (
        f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
        f"@{host}:{port}/{quote(database, safe='')}"
    )


def redis_url(endpoints: Endpoints, user: str, password: str) -> str:
    """A redis:// (dev) or rediss:// (Memorystore with in-transit encryption) URL."""
    scheme = "rediss" if endpoints.redis_tls else "redis"
    return (
        f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}"
        f"@{endpoints.redis_host}:{endpoints.redis_port}/0"
    )


def amqp_url(
    endpoints: Endpoints, user: str, password: str, vhost: str, node: tuple[str, int] | None = None
) -> str:
    """An AMQP URL whose path is the service's own vhost (at ``node``, default the endpoint)."""
    host, port = node or (endpoints.amqp_host, endpoints.amqp_port)
    return (
        f"amqp://{quote(user, safe='')}:{quote(password, safe='')}"
        f"@{host}:{port}/{quote(vhost, safe='')}"
    )


def service_env(service: ServiceSpec, credentials: ServiceCredentials, endpoints: Endpoints) -> str:
    """The env file for one service."""
    database = naming.database_name(service.name)

    def pg(kind: str, *, pooled: bool) -> str:
        role = naming.role_name(service.name, kind)
        password = credentials.postgres_password(kind)
        return postgres_url(endpoints, role, password, database, pooled=pooled)

    user, vhost = naming.rabbitmq_user(service.name), naming.rabbitmq_vhost(service.name)
    return render(
        "services/service.env.j2",
        service=service.name,
        # Migrations need session features (advisory locks, SET, long DDL): always direct.
        database_url=pg("app", pooled=True),
        migration_database_url=pg("migrator", pooled=False),
        readonly_database_url=pg("readonly", pooled=True),
        redis_url=(
            redis_url(endpoints, naming.redis_user(service.name), credentials.redis)
            if service.redis
            else ""
        ),
        redis_key_prefix=naming.redis_key_prefix(service.name),
        redis_session_prefix=naming.redis_session_prefix(service.name),
        amqp_url=amqp_url(endpoints, user, credentials.rabbitmq, vhost),
        # Every node's URL, comma-separated (percent-encoding leaves no comma in a URL): a
        # client that loses its node reconnects to the next. Only where the nodes are the
        # endpoints themselves (the dev cluster); a single URL stays AMQP_URL alone.
        amqp_urls=",".join(
            amqp_url(endpoints, user, credentials.rabbitmq, vhost, node)
            for node in endpoints.amqp_nodes
        ),
        amqp_exchange=service.name,
    )
