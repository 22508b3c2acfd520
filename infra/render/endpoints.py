"""Where services reach each server, per platform: the hosts and ports in their env files."""

from __future__ import annotations

from dataclasses import dataclass

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


# Ports the servers listen on inside their container or VM.
POSTGRES_PORT = 5432
REDIS_PORT = 6379
AMQP_PORT = 5672
MANAGEMENT_PORT = 15672
PROMETHEUS_PORT = 15692
MEMORYSTORE_TLS_PORT = 6378


def for_stack(config: StackConfig) -> Endpoints:
    """dev: the loopback ports Docker publishes; prod: names in the stack's private DNS zone."""
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
        )
    zone = config.gcp.dns_zone.rstrip(".")
    return Endpoints(
        postgres_host=f"postgres.{zone}",
        postgres_port=POSTGRES_PORT,
        redis_host=f"redis.{zone}",
        redis_port=MEMORYSTORE_TLS_PORT,
        redis_tls=True,
        amqp_host=f"rabbitmq.{zone}",
        amqp_port=AMQP_PORT,
    )
