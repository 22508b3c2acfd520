"""Where services reach each server, per platform: the hosts and ports in their env files."""

from __future__ import annotations

from dataclasses import dataclass

from infra import naming
from infra.config.model import StackConfig


@dataclass(frozen=True)
class Endpoints:
    """Host and port of each server as the services see them."""

    postgres_host: str
    postgres_port: int
    redis_host: str
    redis_port: int
    redis_tls: bool
    amqp_host: str
    amqp_port: int
    # Where a client can reach the broker when the first is gone: every node's AMQP port, the
    # first being ``amqp_host:amqp_port``. Empty when services have one endpoint only (a single
    # node, or prod's load balancer in front of a cluster).
    amqp_nodes: tuple[tuple[str, int], ...] = ()
    # The connection pooler in front of PostgreSQL (``postgres.pooler``); None: no pooler, every
    # login connects to PostgreSQL itself.
    pooler_host: str | None = None
    pooler_port: int | None = None
    # Where the read-only login reads when it has servers of its own (prod's Cloud SQL read
    # replicas, ``postgres.replicas``); None: the same place as the app login.
    readonly_host: str | None = None
    readonly_port: int | None = None
    # dev with read replicas: the read-only login asks the pooler for the service's database on
    # the replicas (``naming.replicas_alias``), which PgBouncer spreads over them.
    readonly_via_replicas: bool = False

    def postgres_address(self, kind: str | None) -> tuple[str, int]:
        """Where login ``kind`` connects: the read replicas for the read-only login when it
        has its own servers, the pooler for the pooled logins when there is one, otherwise (and
        always for the migrator) PostgreSQL itself."""
        if kind == "readonly" and self.readonly_host is not None and self.readonly_port is not None:
            return self.readonly_host, self.readonly_port
        if kind in POOLED_LOGINS and self.pooler_host is not None and self.pooler_port is not None:
            return self.pooler_host, self.pooler_port
        return self.postgres_host, self.postgres_port

    def postgres_database(self, kind: str | None, service: str) -> str:
        """The database login ``kind`` asks for: in dev with replicas, the read-only login asks
        the pooler for the service's database on them; every other login, the database."""
        if kind == "readonly" and self.readonly_via_replicas:
            return naming.replicas_alias(service)
        return naming.database_name(service)


# The logins that go through the pooler when there is one (DATABASE_URL and
# READONLY_DATABASE_URL). The migrator's stays direct: migrations need session features
# (advisory locks, SET, LISTEN) that transaction pooling does not keep.
POOLED_LOGINS = frozenset({"app", "readonly"})


# Ports the servers listen on inside their container or VM.
POSTGRES_PORT = 5432
POOLER_PORT = 6432
REDIS_PORT = 6379
AMQP_PORT = 5672
MANAGEMENT_PORT = 15672
PROMETHEUS_PORT = 15692
# Memorystore for Valkey's endpoints: TLS on Valkey's usual port.
MEMORYSTORE_TLS_PORT = 6379
# Cloud SQL Managed Connection Pooling's port on the instance's own address (5432 stays the
# direct one): https://cloud.google.com/sql/docs/postgres/managed-connection-pooling
MANAGED_POOLER_PORT = 6432
# The private DNS name (in the stack's zone) of prod's in-region read replicas.
REPLICAS_LABEL = "postgres-replicas"


def rabbitmq_node_host(config: StackConfig, index: int) -> str:
    """Node ``index``'s (1-based) host name in a cluster, its Erlang node name's host part.

    dev: the container's hostname on the stack's network (``rabbitmq-2``); prod: the VM's name
    in the stack's private DNS zone (``rabbitmq-2.persistence.internal``). The platforms place
    nodes under these names and ``render`` writes them into rabbitmq.conf, so both agree.
    """
    if config.platform == "docker":
        return f"rabbitmq-{index}"
    return f"rabbitmq-{index}.{config.gcp.dns_zone.rstrip('.')}"


def rabbitmq_node_hosts(config: StackConfig) -> tuple[str, ...]:
    """Every node's host name, node 1 first; empty for a single node (it is not a cluster)."""
    count = config.rabbitmq_nodes
    if count <= 1:
        return ()
    return tuple(rabbitmq_node_host(config, i) for i in range(1, count + 1))


def for_stack(config: StackConfig) -> Endpoints:
    """dev: the loopback ports Docker publishes; prod: names in the stack's private DNS zone,
    the pooled endpoint on the Cloud SQL instance when ``postgres.pooler.enabled``, and the
    read replicas' name for the read-only login when ``postgres.replicas`` > 0."""
    if config.platform == "docker":
        host = config.docker.bind_address
        nodes = config.docker_rabbitmq_ports()
        return Endpoints(
            postgres_host=host,
            postgres_port=config.docker.ports.postgres,
            redis_host=host,
            redis_port=config.docker.ports.redis,
            redis_tls=False,
            amqp_host=host,
            amqp_port=config.docker.ports.amqp,
            amqp_nodes=tuple((host, amqp) for amqp, _ in nodes) if len(nodes) > 1 else (),
            pooler_host=host if config.postgres.pooler.enabled else None,
            pooler_port=config.docker.ports.pooler if config.postgres.pooler.enabled else None,
            readonly_via_replicas=config.postgres.pooler.enabled and config.postgres.replicas > 0,
        )
    zone = config.gcp.dns_zone.rstrip(".")
    pooled = config.postgres.pooler.enabled
    replicas = config.postgres.replicas > 0
    return Endpoints(
        postgres_host=f"postgres.{zone}",
        postgres_port=POSTGRES_PORT,
        # Managed Connection Pooling listens on the instance's own address: same name.
        pooler_host=f"postgres.{zone}" if pooled else None,
        pooler_port=MANAGED_POOLER_PORT if pooled else None,
        # Every in-region replica's address under one name (A records: clients spread over
        # them), PostgreSQL's own port: Managed Connection Pooling is not documented for read
        # replicas, so the read-only URL does not go through it there.
        readonly_host=f"{REPLICAS_LABEL}.{zone}" if replicas else None,
        readonly_port=POSTGRES_PORT if replicas else None,
        redis_host=f"redis.{zone}",
        redis_port=MEMORYSTORE_TLS_PORT,
        redis_tls=True,
        amqp_host=f"rabbitmq.{zone}",
        amqp_port=AMQP_PORT,
    )
