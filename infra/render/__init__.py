"""Every rendered file of a stack, as relative path -> (content, mode).

The command line writes them to a directory; the Pulumi program places the same strings
into containers and VMs, so what the tests start real servers from is what gets deployed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from infra.config.model import StackConfig
from infra.credentials import Credentials
from infra.render import endpoints, pgbouncer, postgres, rabbitmq, redis, services

PUBLIC_MODE = 0o644
PRIVATE_MODE = 0o600


@dataclass(frozen=True)
class RenderedFile:
    """One file's text and the permission bits it must have on disk."""

    content: str
    mode: int = PUBLIC_MODE


def render_all(config: StackConfig, credentials: Credentials) -> dict[str, RenderedFile]:
    """All server and service files for ``config``; the contract's paths are the keys."""
    stack_endpoints = endpoints.for_stack(config)
    files = server_files(config, credentials)
    for spec in config.services:
        files[f"services/{spec.name}.env"] = RenderedFile(
            services.service_env(spec, credentials.for_service(spec.name), stack_endpoints),
            PRIVATE_MODE,
        )
    return files


def server_files(config: StackConfig, credentials: Credentials) -> dict[str, RenderedFile]:
    """The servers' own files (configs, users, definitions), without the services' env files."""
    return _servers(config, credentials) | _pooler(config, credentials) | _replicas(config)


def _replicas(config: StackConfig) -> dict[str, RenderedFile]:
    """Each dev member's settings as a standby (prod's replicas are Cloud SQL's, with no files
    of ours): member 0's too, which streams once a failover made another member the primary."""
    if config.platform != "docker":
        return {}
    members = postgres.members(config) if config.postgres.replicas else ()
    return {
        f"postgres/replica-{index}.conf": RenderedFile(postgres.replica_conf(index))
        for index in members
    } | {"postgres/replication.conf": RenderedFile(postgres.replication_conf(config))}


def has_pooler_files(config: StackConfig) -> bool:
    """The dev stack runs PgBouncer; prod's pooler is Cloud SQL's own, with no files of ours."""
    return config.platform == "docker" and config.postgres.pooler.enabled


def _pooler(config: StackConfig, credentials: Credentials) -> dict[str, RenderedFile]:
    if not has_pooler_files(config):
        return {}
    return {
        "pgbouncer/pgbouncer.ini": RenderedFile(pgbouncer.pgbouncer_ini(config)),
        "pgbouncer/userlist.txt": RenderedFile(
            pgbouncer.userlist_txt(config, credentials), PRIVATE_MODE
        ),
    }


def _servers(config: StackConfig, credentials: Credentials) -> dict[str, RenderedFile]:
    return {
        "postgres/postgresql.conf": RenderedFile(postgres.postgresql_conf(config)),
        "postgres/pg_hba.conf": RenderedFile(postgres.pg_hba_conf(config)),
        "postgres/init-admin.sql": RenderedFile(
            postgres.init_admin_sql(config, credentials), PRIVATE_MODE
        ),
        "postgres/sync-admin.sql": RenderedFile(
            postgres.sync_admin_sql(config, credentials), PRIVATE_MODE
        ),
        "redis/redis.conf": RenderedFile(redis.redis_conf(config)),
        "redis/users.acl": RenderedFile(redis.users_acl(config, credentials), PRIVATE_MODE),
        # A cluster's nodes all read the same file, listing every node (as the platforms
        # place them), and the same definitions, with one quorum queue member per node.
        "rabbitmq/rabbitmq.conf": RenderedFile(
            rabbitmq.rabbitmq_conf(config, cluster_nodes=rabbitmq.cluster_node_names(config))
        ),
        "rabbitmq/enabled_plugins": RenderedFile(rabbitmq.enabled_plugins()),
        "rabbitmq/definitions.json": RenderedFile(
            rabbitmq.definitions_json(config, credentials, config.rabbitmq_nodes), PRIVATE_MODE
        ),
    }


def without_services(config: StackConfig) -> StackConfig:
    """``config`` with no services: what a server's boot files hold (see ``boot_files``)."""
    return replace(config, services=())


def boot_files(config: StackConfig, credentials: Credentials) -> dict[str, RenderedFile]:
    """The servers' files as their containers (and the prod VM) are created with.

    They do not depend on the service list, so adding, changing or removing a service never
    changes a container's inputs: the per-service part (ACL users, vhosts, pg_hba lines) is
    delivered to the running servers by ``infra.live`` instead.
    """
    return server_files(without_services(config), credentials)
