"""The dev stack: PostgreSQL, Redis and RabbitMQ as containers on a private Docker network."""

from __future__ import annotations

from functools import partial
from typing import Any

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from infra.credentials import credentials_json
from infra.live.resource import LiveConfig
from infra.platforms.backup_key import stack_backup_key
from infra.platforms.component import PlatformComponent
from infra.platforms.docker import containers
from infra.platforms.docker.backup import (
    backup_bucket_url,
    backup_container,
    backup_live_config,
    tooling_image,
)
from infra.platforms.docker.router import router_container
from infra.provisioning import AdminEndpoint, ServiceDatabase
from infra.pulumi_credentials import StackPasswords, generated_passwords
from infra.render import boot_files, has_pooler_files, pgbouncer, server_files
from infra.render import postgres as pg_files
from infra.render.endpoints import for_stack, rabbitmq_node_hosts
from infra.render.services import postgres_url, redis_url, service_env

TYPE_TOKEN = "persistence:docker:Platform"  # noqa: S105 - a Pulumi type token, not a secret


class DockerPlatform(PlatformComponent):
    """Every server container of the dev stack, and each service's database and roles."""

    type_token = TYPE_TOKEN
    passwords: StackPasswords
    network: docker.Network
    volumes: dict[str, docker.Volume]
    postgres: docker.Container  # the primary member (postgres.primary; member 0 until a failover)
    postgres_members: list[docker.Container]  # member 0 (`postgres`), then each replica
    router: docker.Container  # postgres-primary: the primary's one address
    redis: docker.Container
    rabbitmq: docker.Container  # a cluster's node 1
    rabbitmq_nodes: list[docker.Container]  # every broker container, the single one or a cluster's
    erlang_cookie: random.RandomPassword | None  # a cluster's nodes share it
    pooler: docker.Container | None  # PgBouncer, unless postgres.pooler.enabled is false
    backup: docker.Container
    live: dict[str, LiveConfig]
    databases: dict[str, ServiceDatabase]

    def declare(self) -> dict[str, Any]:
        self.passwords = generated_passwords(self.config, parent=self)
        shared = self._declare_network()
        image = tooling_image(shared)
        self._declare_servers(shared, image)
        self.live = containers.live_config(
            shared, self.postgres_members, self.redis, self.rabbitmq_nodes, self.pooler
        )
        self.backup = backup_container(
            shared,
            image,
            [self.router, *self.postgres_members, self.redis, *self.rabbitmq_nodes],
            stack_backup_key(),
        )
        self.live["backup"] = backup_live_config(shared, self.backup)
        self._declare_databases()
        return self._outputs()

    def _declare_network(self) -> containers.Shared:
        """The private bridge network, and what every container is attached to."""
        prefix = f"persistence-{pulumi.get_stack()}"
        self.network = docker.Network(
            "network",
            name=f"{prefix}-net",
            driver="bridge",
            attachable=False,
            labels=[docker.NetworkLabelArgs(label="persistence.stack", value=prefix)],
            opts=pulumi.ResourceOptions(parent=self),
        )
        config = self.config
        return containers.Shared(
            config=config,
            prefix=prefix,
            network=self.network,
            files=self.passwords.admins.apply(lambda c: boot_files(config, c)),
            live_files=self.passwords.everything.apply(lambda c: server_files(config, c)),
            passwords=self.passwords,
            parent=self,
        )

    def _declare_servers(self, shared: containers.Shared, image: docker.RemoteImage) -> None:
        """One retained named volume and one container per server (per node, for a cluster),
        and PostgreSQL's router."""
        nodes = self.config.rabbitmq_nodes
        brokers = list(rabbitmq_node_hosts(self.config)) or ["rabbitmq"]
        replicas = list(pg_files.replica_hosts(self.config))
        self.volumes = {
            server: self._volume(shared, server)
            for server in ("postgres", *replicas, "redis", *brokers)
        }
        self._declare_postgres(shared, image, replicas)
        self.redis = containers.redis(shared, self.volumes["redis"])
        self.pooler = (
            containers.pooler(shared, self.postgres, self.postgres_socket)
            if has_pooler_files(self.config)
            else None
        )
        self.erlang_cookie = None
        if nodes == 1:
            self.rabbitmq_nodes = [containers.rabbitmq(shared, self.volumes["rabbitmq"])]
        else:
            # Letters and digits only: the cookie file holds it as is (as prod's secret does).
            self.erlang_cookie = random.RandomPassword(
                "rabbitmq-erlang-cookie",
                length=48,
                special=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.rabbitmq_nodes = containers.rabbitmq_cluster(
                shared,
                [self.volumes[broker] for broker in brokers],
                pulumi.Output.secret(self.erlang_cookie.result),
            )
        self.rabbitmq = self.rabbitmq_nodes[0]

    def _declare_postgres(
        self, shared: containers.Shared, image: docker.RemoteImage, replicas: list[str]
    ) -> None:
        """The members and the router. A standby seeds through the router, so the router comes
        first, except after the bootstrap server: stacks made before routers existed had member
        0 publish the host port the router now takes, so member 0 is replaced first."""
        self.postgres_socket = self._socket_volume(shared)
        pg_image = containers.postgres_image(shared)
        socket, volumes = self.postgres_socket, self.volumes
        if pg_files.bootstraps(self.config):
            first = containers.postgres_member(shared, 0, pg_image, volumes["postgres"], socket, [])
            self.router = router_container(shared, image, after=[first])
        else:  # member 0 is a standby too: it seeds through the router
            self.router = router_container(shared, image, after=[])
            first = containers.postgres_member(
                shared, 0, pg_image, volumes["postgres"], socket, [self.router]
            )
        self.postgres_members = [first] + [
            containers.postgres_member(
                shared, index, pg_image, volumes[host], socket, [self.router]
            )
            for index, host in enumerate(replicas, start=1)
        ]
        self.postgres = self.postgres_members[pg_files.primary_index(self.config)]

    def _volume(self, shared: containers.Shared, server: str) -> docker.Volume:
        return docker.Volume(
            f"{server}-data",
            name=f"{shared.prefix}-{server}-data",
            labels=[docker.VolumeLabelArgs(label="persistence.stack", value=shared.prefix)],
            # Data outlives `pulumi destroy` mistakes: remove the volume by hand if you mean it.
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
        )

    def _socket_volume(self, shared: containers.Shared) -> docker.Volume:
        """PostgreSQL's socket directory, shared with the pooler: a tmpfs (nothing in it outlives
        the server, no stale lock file), owned by the server's uid 999, readable by others (the
        pooler connects; the socket's own permissions and pg_hba.conf decide who logs in)."""
        return docker.Volume(
            "postgres-socket",
            name=f"{shared.prefix}-postgres-socket",
            driver="local",
            driver_opts={
                "type": "tmpfs",
                "device": "tmpfs",
                "o": f"uid={containers.IMAGE_USER},gid={containers.IMAGE_USER},mode=0755,size=1m",
            },
            labels=[docker.VolumeLabelArgs(label="persistence.stack", value=shared.prefix)],
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _declare_databases(self) -> None:
        """Each service's database and roles, each with its own passwords only."""
        endpoints = for_stack(self.config)
        primary = pg_files.replica_host(pg_files.primary_index(self.config))
        admin = AdminEndpoint(
            host=endpoints.postgres_host,
            port=endpoints.postgres_port,
            user=self.config.postgres.admin_user,
            password=self.passwords.postgres_admin,
        )
        self.databases = {
            spec.name: ServiceDatabase(
                f"{spec.name}-database",
                service=spec,
                admin=admin,
                credentials=self.passwords.service(spec.name),
                # After pg_hba.conf lets the service's logins in: the engine proves each
                # login's password by logging in, and a login the hba refuses proves nothing.
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[self.router, self.postgres, self.live[primary]],
                ),
            )
            for spec in self.config.services
        }

    def _outputs(self) -> dict[str, Any]:
        config, passwords = self.config, self.passwords
        endpoints = for_stack(config)
        envs = {
            spec.name: passwords.service(spec.name).apply(
                partial(service_env, spec, endpoints=endpoints)
            )
            for spec in config.services
        }
        admin_url = passwords.postgres_admin.apply(
            lambda password: postgres_url(
                endpoints, config.postgres.admin_user, password, "postgres"
            )
        )
        pooler_console_url = passwords.pooler_admin.apply(
            lambda password: pgbouncer.console_url(endpoints, password)
        )
        redis_admin_url = passwords.redis_admin.apply(
            lambda password: redis_url(endpoints, config.redis.admin_user, password)
        )
        return {
            "platform": "docker",
            "network": self.network.name,
            "postgres_admin_url": admin_url,
            "redis_admin_url": redis_admin_url,
            # PgBouncer's console (``db pools``); empty when the stack runs no pooler.
            "pooler_console_url": pooler_console_url,
            "rabbitmq_management_url": (
                f"http://{config.docker.bind_address}:{config.docker.ports.management}/"
            ),
            "service_env": pulumi.Output.from_input(envs),
            # What `python -m infra rebuild` needs to restore after a disaster.
            "backup_bucket": backup_bucket_url(config, pulumi.get_stack()),
            "credentials": passwords.everything.apply(credentials_json),
        }
