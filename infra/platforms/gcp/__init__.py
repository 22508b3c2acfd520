"""The prod stack on Google Cloud, as one ComponentResource (``persistence:gcp:Platform``).

Each module declares one part (network, identities, Cloud SQL, Memorystore for Valkey, the
RabbitMQ VM, secrets, DNS, the backup bucket, the verified backup job and its image, the
Memorystore export, the alerts); this component wires them in dependency order, in named
steps, keeps each part as an attribute (``self.sql``, ``self.network``...), parents everything
to itself and exports what a deployer needs.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_gcp as gcp

from infra.credentials import credentials_json
from infra.live.resource import LiveConfig
from infra.platforms.backup_key import stack_backup_key
from infra.platforms.component import PlatformComponent
from infra.platforms.gcp import (
    alerts,
    backup_job,
    backup_jobs,
    buckets,
    dns,
    identities,
    legacy_redis,
    network,
    rabbitmq_cluster,
    rabbitmq_vm,
    registry,
    secrets,
    sql,
    sql_replicas,
    valkey,
    verify_instance,
)
from infra.platforms.gcp.backup_job import BackupJob
from infra.platforms.gcp.context import GcpContext, context_for
from infra.platforms.gcp.identities import Identities
from infra.platforms.gcp.legacy_redis import LegacyRedis
from infra.platforms.gcp.network import Network
from infra.platforms.gcp.rabbitmq_cluster import RabbitmqCluster
from infra.platforms.gcp.rabbitmq_vm import RabbitmqVm
from infra.platforms.gcp.registry import Registry
from infra.platforms.gcp.secrets import Secrets
from infra.platforms.gcp.sql import SqlInstance
from infra.platforms.gcp.sql_replicas import Replicas
from infra.platforms.gcp.valkey import Valkey
from infra.provisioning import ServiceDatabase
from infra.pulumi_credentials import StackPasswords, generated_passwords
from infra.render import endpoints
from infra.render.services import redis_url

TYPE_TOKEN = "persistence:gcp:Platform"  # noqa: S105 - a type token, not a password


class GcpPlatform(PlatformComponent):
    """Cloud SQL, Memorystore for Valkey and RabbitMQ on Compute Engine, private and backed up."""

    type_token = TYPE_TOKEN
    ctx: GcpContext
    passwords: StackPasswords
    network: Network
    identities: Identities
    sql: SqlInstance
    sql_replicas: Replicas
    databases: dict[str, ServiceDatabase]
    valkey: Valkey
    memorystore_agent: pulumi.Output[str]
    legacy_redis: LegacyRedis | None
    secrets: Secrets
    rabbitmq: RabbitmqVm | RabbitmqCluster
    rabbitmq_live: LiveConfig
    dns_zone: gcp.dns.ManagedZone
    bucket: gcp.storage.Bucket
    export_workflow: gcp.workflows.Workflow
    export_schedule: gcp.cloudscheduler.Job
    registry: Registry
    verify_instance: SqlInstance | None
    backup_job: BackupJob
    alert_policies: list[gcp.monitoring.AlertPolicy]

    def declare(self) -> dict[str, Any]:
        self.ctx = context_for(self.config, self)
        self.passwords = generated_passwords(self.config, parent=self, pacer=self.ctx.pacer)
        self.network = network.declare(self.ctx)
        self.identities = identities.declare(self.ctx)
        self.bucket = buckets.declare(self.ctx)
        self._declare_servers()
        self._declare_service_access()
        self._declare_backups()
        self.alert_policies = alerts.declare(
            self.ctx,
            backup_job=self.backup_job.job,
            sql_instance=sql.instance_name(self.ctx),
            sql_replicas=sql_replicas.names(self.ctx),
            valkey_instance=self.valkey.instance,
            rabbitmq=self.rabbitmq.instances,
        )
        return self._outputs()

    def _declare_servers(self) -> None:
        """Cloud SQL with each service's database, Valkey, the broker VM, their names."""
        ctx, net = self.ctx, self.network
        self.sql = sql.declare(ctx, net, self.passwords.postgres_admin)
        self.databases = sql.declare_service_databases(ctx, self.sql, self.passwords)
        self.sql_replicas = sql_replicas.declare(ctx, net, self.sql)
        # Valkey's service agent reads the RDB files it imports (a migrating stack's data).
        self.memorystore_agent = valkey.service_agent(ctx)
        import_grants = buckets.grant_object_read(
            ctx,
            self.bucket,
            "memorystore-valkey-agent",
            self.memorystore_agent,
            ctx.config.gcp.valkey_import_uris,
        )
        self.valkey = valkey.declare(ctx, net, self.passwords, import_grants)
        self.legacy_redis = (
            legacy_redis.declare(ctx, net, self.identities) if legacy_redis.kept(ctx) else None
        )
        # The name services use: the old instance's until the stack switches.
        legacy = self.legacy_redis
        serving = (
            legacy.instance.host
            if legacy is not None and legacy_redis.serves(ctx)
            else self.valkey.host
        )
        broker_account = self.identities.rabbitmq
        if ctx.config.rabbitmq_nodes > 1:
            cluster = rabbitmq_cluster.declare(ctx, net, broker_account, self.passwords)
            self.rabbitmq = cluster
            self.rabbitmq_live = rabbitmq_cluster.live_config(ctx, cluster, self.passwords)
        else:
            single = rabbitmq_vm.declare(ctx, net, broker_account, self.passwords)
            self.rabbitmq = single
            self.rabbitmq_live = rabbitmq_vm.live_config(ctx, single, self.passwords)
        readers: list[pulumi.Input[str]] = [r.private_ip_address for r in self.sql_replicas.readers]
        self.dns_zone = dns.declare(
            ctx,
            net,
            {
                "postgres": self.sql.instance.private_ip_address,
                # The read-only logins' host, when there are replicas to read from.
                **({endpoints.REPLICAS_LABEL: readers} if readers else {}),
                "redis": serving,
                # The single VM, or the cluster's load balancer: services' one endpoint.
                "rabbitmq": self.rabbitmq.endpoint_ip,
                **self.rabbitmq.dns_records(),
            },
        )

    def _declare_service_access(self) -> None:
        """Each service's connection URLs in Secret Manager, readable by its own account."""
        self.secrets = secrets.declare(self.ctx, self.identities, self.passwords)

    def _declare_backups(self) -> None:
        """The bucket, the Memorystore export, the backup job's image and the job itself."""
        ctx = self.ctx
        # Memorystore's service agents write RDB exports (Valkey's backups; the old instance's,
        # by hand, while it is kept); the databases' backups are the job's (its own,
        # prefix-scoped grant).
        writers: dict[str, pulumi.Input[str]] = {"memorystore-valkey-agent": self.memorystore_agent}
        if self.legacy_redis is not None:
            writers["memorystore-agent"] = self.legacy_redis.instance.persistence_iam_identity
        buckets.grant_object_create(ctx, self.bucket, writers)
        self.export_workflow, self.export_schedule = backup_jobs.declare(
            ctx,
            valkey_instance=valkey.instance_name(ctx),
            bucket=buckets.bucket_name(ctx),
            service_account=self.identities.backup,
        )
        self.registry = registry.declare(ctx)
        self.verify_instance = verify_instance.declare(
            ctx, self.network, self.passwords.postgres_admin
        )
        verifier = self.verify_instance
        self.backup_job = backup_job.declare(
            ctx,
            network=self.network,
            bucket=self.bucket,
            image=self.registry.reference,
            admin_password=self.passwords.postgres_admin,
            sql_instances=[sql.instance_name(ctx)]
            + ([verify_instance.instance_name(ctx)] if verifier else []),
            verify_host=verifier.instance.private_ip_address if verifier else None,
            backup_key=stack_backup_key(),
        )

    def _outputs(self) -> dict[str, Any]:
        ctx, config, passwords = self.ctx, self.config, self.passwords
        legacy = self.legacy_redis
        stack_endpoints = endpoints.for_stack(config)
        instance = self.sql.instance
        return {
            "platform": "gcp",
            "project": ctx.project,
            "region": ctx.region,
            "network": self.network.vpc.name,
            "postgres_instance": instance.name,
            "postgres_connection_name": instance.connection_name,
            "postgres_host": stack_endpoints.postgres_host,
            "postgres_port": stack_endpoints.postgres_port,
            "postgres_private_ip": instance.private_ip_address,
            "postgres_readonly_host": stack_endpoints.postgres_address("readonly")[0],
            "postgres_replicas": [
                {"instance": replica.name, "zone": zone, "private_ip": replica.private_ip_address}
                for replica, zone in zip(
                    self.sql_replicas.readers, sql_replicas.replica_zones(ctx), strict=True
                )
            ],
            "postgres_dr_replica": (
                dr.name if (dr := self.sql_replicas.disaster_recovery) is not None else None
            ),
            "postgres_admin_user": config.postgres.admin_user,
            "postgres_admin_password": passwords.postgres_admin,
            "provisioning_endpoint": {
                "host": config.gcp.provisioning_host,
                "port": config.gcp.provisioning_port,
            },
            "redis_host": stack_endpoints.redis_host,
            "redis_port": stack_endpoints.redis_port,
            "redis_private_ip": self.valkey.host,
            "redis_ca_certificates": self.valkey.ca_certificates,
            "redis_instance": self.valkey.instance.instance_id,
            "redis_acl_policy": self.valkey.acl_policy.acl_policy_id,
            "redis_migration": config.gcp.redis_migration,
            "legacy_redis_private_ip": legacy.instance.host if legacy else None,
            "legacy_redis_auth_secret": legacy.auth_secret if legacy else None,
            "redis_admin_url": passwords.redis_admin.apply(
                lambda password: redis_url(stack_endpoints, config.redis.admin_user, password)
            ),
            "rabbitmq_host": stack_endpoints.amqp_host,
            "rabbitmq_port": stack_endpoints.amqp_port,
            "rabbitmq_private_ip": self.rabbitmq.endpoint_ip,
            # The first node (the single VM): what an older tunnel script reads.
            "rabbitmq_instance": self.rabbitmq.instances[0].name,
            "rabbitmq_zone": self.rabbitmq.instances[0].zone,
            "rabbitmq_nodes": [
                {"instance": i.name, "zone": i.zone} for i in self.rabbitmq.instances
            ],
            "rabbitmq_admin_user": config.rabbitmq.admin_user,
            "rabbitmq_admin_password": passwords.rabbitmq_admin,
            "service_accounts": {
                svc: account.email for svc, account in self.identities.services.items()
            },
            "service_secrets": self.secrets.by_service,
            "backup_bucket": self.bucket.name,
            "backup_workflow": self.export_workflow.name,
            "backup_schedule": self.export_schedule.name,
            "backup_service_account": self.identities.backup.email,
            # The drift job's `db plan --check` logs in as each service to spot a changed
            # password, so it needs the passwords Pulumi generated (a secret, KMS-encrypted).
            "credentials": passwords.everything.apply(credentials_json),
            "backup_job": self.backup_job.job.name,
            "backup_job_schedule": self.backup_job.scheduler.name,
            "backup_job_service_account": self.backup_job.account.email,
            "backup_job_image": self.registry.reference,
            "backup_job_bucket_url": self.bucket.name.apply(
                lambda b: f"gs://{b}/{backup_job.JOB_PREFIX}"
            ),
            "verify_instance": self.verify_instance.instance.name if self.verify_instance else None,
        }
