"""``services/<service>.env``: every connection setting a service needs, for its own logins."""

from __future__ import annotations

from urllib.parse import quote

from infra import naming
from infra.config.model import ServiceSpec
from infra.credentials import ServiceCredentials
from infra.render.endpoints import Endpoints
from infra.render.environment import render


def postgres_url(
    endpoints: Endpoints, user: str, password: str, database: str, *, kind: str | None = None
) -> str:
    """A libpq URL for service login ``kind`` (the pooler for the app and read-only logins
    when there is one, see ``Endpoints.postgres_address``; no kind: PostgreSQL itself); every
    part is percent-encoded."""
    host, port = endpoints.postgres_address(kind)
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

    def pg(kind: str) -> str:
        role = naming.role_name(service.name, kind)
        password = credentials.postgres_password(kind)
        database = endpoints.postgres_database(kind, service.name)
        return postgres_url(endpoints, role, password, database, kind=kind)

    user, vhost = naming.rabbitmq_user(service.name), naming.rabbitmq_vhost(service.name)
    return render(
        "services/service.env.j2",
        service=service.name,
        database_url=pg("app"),
        migration_database_url=pg("migrator"),
        readonly_database_url=pg("readonly"),
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
