"""The prod stack on Google Cloud, as one ComponentResource (``persistence:gcp:Platform``).

Each module declares one part (network, identities, Cloud SQL, Memorystore, the RabbitMQ VM,
secrets, DNS, the backup bucket, the verified backup job and its image, the Memorystore
export, the alerts); this component wires them in dependency order, parents everything to
itself and exports what a deployer needs.
"""

from __future__ import annotations

from typing import Any

import pulumi

from infra.config.model import StackConfig
from infra.credentials import Credentials, credentials_json
from infra.platforms.gcp import (
    alerts,
    backup_job,
    backup_jobs,
    buckets,
    dns,
    identities,
    network,
    rabbitmq_vm,
    redis,
    registry,
    secrets,
    sql,
    verify_instance,
)
from infra.platforms.gcp.context import context_for
from infra.render import endpoints

TYPE_TOKEN = "persistence:gcp:Platform"  # noqa: S105 - a type token, not a password


class GcpPlatform(pulumi.ComponentResource):
    """Cloud SQL, Memorystore and RabbitMQ on Compute Engine, private and backed up."""

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
        ctx = context_for(config, self)
        net = network.declare(ctx)
        accounts = identities.declare(ctx)

        database = sql.declare(ctx, net, credentials)
        sql.declare_service_databases(ctx, database, credentials)
        cache = redis.declare(ctx, net)
        auth_string: pulumi.Output[str] = pulumi.Output.secret(cache.auth_string)
        stored = secrets.declare(ctx, accounts, credentials, auth_string)
        broker = rabbitmq_vm.declare(ctx, net, accounts.rabbitmq, credentials)

        dns.declare(
            ctx,
            net,
            {
                "postgres": database.instance.private_ip_address,
                "redis": cache.host,
                "rabbitmq": broker.address.address,
            },
        )

        bucket = buckets.declare(ctx)
        buckets.grant_object_create(
            ctx,
            bucket,
            # Memorystore's service agent writes the RDB export; the databases' backups are
            # the job's (its own, prefix-scoped grant).
            {"memorystore-agent": cache.persistence_iam_identity},
        )
        workflow, job = backup_jobs.declare(
            ctx,
            redis_instance=redis.instance_name(ctx),
            bucket=buckets.bucket_name(ctx),
            service_account=accounts.backup,
        )
        images = registry.declare(ctx)
        verifier = verify_instance.declare(ctx, net, credentials)
        backups = backup_job.declare(
            ctx,
            network=net,
            bucket=bucket,
            image=images.reference,
            credentials=credentials,
            sql_instances=[sql.instance_name(ctx)]
            + ([verify_instance.instance_name(ctx)] if verifier else []),
            verify_host=verifier.instance.private_ip_address if verifier else None,
        )
        alerts.declare(
            ctx,
            backup_job=backups.job,
            sql_instance=sql.instance_name(ctx),
            redis_instance=cache,
            rabbitmq=broker.instance,
        )

        stack_endpoints = endpoints.for_stack(config)
        self.exports = {
            "platform": "gcp",
            "project": ctx.project,
            "region": ctx.region,
            "network": net.vpc.name,
            "postgres_instance": database.instance.name,
            "postgres_connection_name": database.instance.connection_name,
            "postgres_host": stack_endpoints.postgres_host,
            "postgres_port": stack_endpoints.postgres_port,
            "postgres_private_ip": database.instance.private_ip_address,
            "postgres_admin_user": config.postgres.admin_user,
            "postgres_admin_password": pulumi.Output.secret(
                credentials.apply(lambda c: c.postgres_admin)
            ),
            "provisioning_endpoint": {
                "host": config.gcp.provisioning_host,
                "port": config.gcp.provisioning_port,
            },
            "redis_host": stack_endpoints.redis_host,
            "redis_port": stack_endpoints.redis_port,
            "redis_private_ip": cache.host,
            "redis_ca_certificates": cache.server_ca_certs.apply(_certificates),
            "redis_auth_string": auth_string,
            "redis_auth_secret": stored.redis_auth,
            "rabbitmq_host": stack_endpoints.amqp_host,
            "rabbitmq_port": stack_endpoints.amqp_port,
            "rabbitmq_private_ip": broker.address.address,
            "rabbitmq_admin_user": config.rabbitmq.admin_user,
            "rabbitmq_admin_password": pulumi.Output.secret(
                credentials.apply(lambda c: c.rabbitmq_admin)
            ),
            "service_accounts": {svc: account.email for svc, account in accounts.services.items()},
            "service_secrets": stored.by_service,
            "backup_bucket": bucket.name,
            "backup_workflow": workflow.name,
            "backup_schedule": job.name,
            "backup_service_account": accounts.backup.email,
            # The drift job's `db plan --check` logs in as each service to spot a changed
            # password, so it needs the passwords Pulumi generated (a secret, KMS-encrypted).
            "credentials": pulumi.Output.secret(credentials.apply(credentials_json)),
            "backup_job": backups.job.name,
            "backup_job_schedule": backups.scheduler.name,
            "backup_job_service_account": backups.account.email,
            "backup_job_image": images.reference,
            "backup_job_bucket_url": bucket.name.apply(
                lambda b: f"gs://{b}/{backup_job.JOB_PREFIX}"
            ),
            "verify_instance": verifier.instance.name if verifier else None,
        }
        self.register_outputs(self.exports)


def _certificates(certs: Any) -> list[str]:
    """PEM text of Memorystore's server CAs (typed objects from the engine, mappings in tests)."""
    pems = []
    for cert in certs or []:
        pem = cert.get("cert") if isinstance(cert, dict) else getattr(cert, "cert", None)
        if pem:
            pems.append(str(pem))
    return pems
