"""The dev stack: PostgreSQL, Redis and RabbitMQ as containers on a private Docker network."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_docker as docker

from infra.config.model import StackConfig
from infra.credentials import Credentials, ServiceCredentials, credentials_json
from infra.platforms.docker import containers
from infra.platforms.docker.backup import backup_bucket_url, backup_container
from infra.provisioning import AdminEndpoint, ServiceDatabase
from infra.render import render_all
from infra.render.endpoints import for_stack
from infra.render.services import postgres_url, redis_url

TYPE_TOKEN = "persistence:docker:Platform"  # noqa: S105 - a Pulumi type token, not a secret
STATEFUL_SERVERS = ("postgres", "redis", "rabbitmq")


class DockerPlatform(pulumi.ComponentResource):
    """Every server container of the dev stack, and each service's database and roles."""

    exports: dict[str, Any]

    def __init__(
        self,
        name: str,
        *,
        config: StackConfig,
        credentials: pulumi.Output[Credentials],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = f"persistence-{pulumi.get_stack()}"

        network = docker.Network(
            "network",
            name=f"{prefix}-net",
            driver="bridge",
            attachable=False,
            labels=[docker.NetworkLabelArgs(label="persistence.stack", value=prefix)],
            opts=child,
        )
        volumes = {
            server: docker.Volume(
                f"{server}-data",
                name=f"{prefix}-{server}-data",
                labels=[docker.VolumeLabelArgs(label="persistence.stack", value=prefix)],
                # Data outlives `pulumi destroy` mistakes: remove the volume by hand if you mean it.
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
            for server in STATEFUL_SERVERS
        }
        shared = containers.Shared(
            config=config,
            prefix=prefix,
            network=network,
            files=credentials.apply(lambda c: render_all(config, c)),
            secrets=credentials.apply(
                lambda c: {"postgres_superuser": c.postgres_superuser, "redis_admin": c.redis_admin}
            ),
            parent=self,
        )
        self.postgres = containers.postgres(shared, volumes["postgres"])
        self.redis = containers.redis(shared, volumes["redis"])
        self.rabbitmq = containers.rabbitmq(shared, volumes["rabbitmq"])
        self.backup = backup_container(
            shared, credentials, [self.postgres, self.redis, self.rabbitmq]
        )

        endpoints = for_stack(config)
        admin = AdminEndpoint(
            host=endpoints.postgres_host,
            port=endpoints.postgres_port,
            user=config.postgres.admin_user,
            password=credentials.apply(_postgres_admin),  # secret, like everything derived from it
        )
        self.databases = [
            ServiceDatabase(
                f"{spec.name}-database",
                service=spec,
                admin=admin,
                credentials=service_credentials(credentials, spec.name),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.postgres]),
            )
            for spec in config.services
        ]

        service_envs = shared.files.apply(
            lambda files: {
                spec.name: files[f"services/{spec.name}.env"].content for spec in config.services
            }
        )
        self.exports = {
            "platform": "docker",
            "network": network.name,
            "postgres_admin_url": pulumi.Output.secret(
                credentials.apply(
                    lambda c: postgres_url(
                        endpoints, config.postgres.admin_user, c.postgres_admin, "postgres"
                    )
                )
            ),
            "redis_admin_url": pulumi.Output.secret(
                credentials.apply(
                    lambda c: redis_url(endpoints, config.redis.admin_user, c.redis_admin)
                )
            ),
            "rabbitmq_management_url": (
                f"http://{config.docker.bind_address}:{config.docker.ports.management}/"
            ),
            "service_env": pulumi.Output.secret(service_envs),
            # What `python -m infra rebuild` needs to restore after a disaster.
            "backup_bucket": backup_bucket_url(config, pulumi.get_stack()),
            "credentials": pulumi.Output.secret(credentials.apply(credentials_json)),
        }
        self.register_outputs(self.exports)


def _postgres_admin(credentials: Credentials) -> str:
    return credentials.postgres_admin


def service_credentials(
    credentials: pulumi.Output[Credentials], service: str
) -> pulumi.Output[ServiceCredentials]:
    """One service's passwords, still secret."""

    def pick(all_credentials: Credentials) -> ServiceCredentials:
        return all_credentials.for_service(service)

    return credentials.apply(pick)
