"""Memorystore for Valkey 8.0: one ACL user per service, under the same rules as dev.

Cluster mode off (the client semantics of dev's single server), a replica in another zone with
automatic failover, TLS with server authentication, AOF persistence, daily managed backups and
deletion protection. It has no public endpoint: it is reached through a Private Service Connect
endpoint that Memorystore creates in the stack's subnet (the service connection policy allows
exactly that). Who may do what is the ACL policy, rendered by ``infra.render.redis.acl_rules``,
the function that renders dev's ``users.acl``: the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import StackConfig
from infra.credentials import Credentials
from infra.platforms.gcp.context import GcpContext
from infra.platforms.gcp.network import Network
from infra.pulumi_credentials import StackPasswords
from infra.render import redis as redis_rules

ENGINE_VERSION = "VALKEY_8_0"  # the line dev's image and the tests run (Debian's 8.0)
# Private Service Connect endpoints for Memorystore are created under this service class.
SERVICE_CLASS = "gcp-memorystore"
DISCOVERY = "CONNECTION_TYPE_DISCOVERY"
DAY_SECONDS = 86_400


@dataclass(frozen=True)
class Valkey:
    """The instance, its ACL policy and where services reach it."""

    instance: gcp.memorystore.Instance
    acl_policy: gcp.memorystore.AclPolicy
    connection_policy: gcp.networkconnectivity.ServiceConnectionPolicy
    host: pulumi.Output[str]  # the discovery endpoint's private IP in the stack's subnet
    ca_certificates: pulumi.Output[list[str]]  # PEM text of the instance's server CAs


def instance_name(ctx: GcpContext) -> str:
    """The instance's fixed id; alerts and the backup workflow address it by this name."""
    return ctx.name("valkey")


def service_agent(ctx: GcpContext) -> pulumi.Output[str]:
    """Memorystore's service agent (IAM member), which writes a backup's export to the bucket."""
    project = gcp.organizations.get_project_output(project_id=ctx.project)
    return project.number.apply(
        lambda number: f"serviceAccount:service-{number}@gcp-sa-memorystore.iam.gserviceaccount.com"
    )


def policy_rules(
    config: StackConfig, credentials: Credentials
) -> list[gcp.memorystore.AclPolicyRuleArgs]:
    """The ACL policy's rules: dev's ``users.acl`` users, one rule each, in the same order."""
    return [
        gcp.memorystore.AclPolicyRuleArgs(username=name, rule=rule)
        for name, rule in redis_rules.acl_rules(config, credentials).items()
    ]


def declare(
    ctx: GcpContext,
    network: Network,
    passwords: StackPasswords,
    import_grants: Sequence[pulumi.Resource] = (),
) -> Valkey:
    """Declare the PSC policy, the ACL policy and the instance, protected from deletion.

    With ``gcp.valkey_import_uris`` the instance loads those RDB files when it is created (the
    old instance's data: README, prod); ``import_grants`` (its agent's read access to them) come
    first. The source is read at creation only, so a later change to it is ignored rather than
    replacing the instance."""
    settings = ctx.config.gcp
    connection_policy = gcp.networkconnectivity.ServiceConnectionPolicy(
        "valkey-connection-policy",
        name=ctx.name("memorystore-psc"),
        location=ctx.region,
        network=network.vpc.id,
        service_class=SERVICE_CLASS,
        description="Memorystore endpoints in the stack's subnet, private IPs only",
        psc_config=gcp.networkconnectivity.ServiceConnectionPolicyPscConfigArgs(
            subnetworks=[network.subnet.id]
        ),
        labels=ctx.labels,
        opts=ctx.opts(),
    )
    config = ctx.config
    # The rules hold the users' password hashes: a secret in the state like the passwords.
    rules: pulumi.Output[list[gcp.memorystore.AclPolicyRuleArgs]] = pulumi.Output.secret(
        passwords.everything.apply(lambda c: policy_rules(config, c))
    )
    acl_policy = gcp.memorystore.AclPolicy(
        "valkey-acl-policy",
        acl_policy_id=ctx.name("valkey-acl"),
        location=ctx.region,
        rules=rules,
        opts=ctx.opts(),
    )
    instance = gcp.memorystore.Instance(
        "valkey",
        instance_id=instance_name(ctx),
        location=ctx.region,
        mode="CLUSTER_DISABLED",
        shard_count=1,
        replica_count=settings.valkey_replicas,
        node_type=settings.valkey_node_type,
        engine_version=ENGINE_VERSION,
        zone_distribution_config=gcp.memorystore.InstanceZoneDistributionConfigArgs(
            mode="MULTI_ZONE"
        ),
        acl_policy=acl_policy.id,
        transit_encryption_mode="SERVER_AUTHENTICATION",
        desired_auto_created_endpoints=[
            gcp.memorystore.InstanceDesiredAutoCreatedEndpointArgs(
                network=network.vpc.id, project_id=ctx.project
            )
        ],
        engine_configs={"maxmemory-policy": config.redis.maxmemory_policy},
        persistence_config=gcp.memorystore.InstancePersistenceConfigArgs(
            mode="AOF",
            aof_config=gcp.memorystore.InstancePersistenceConfigAofConfigArgs(
                append_fsync="EVERY_SEC"
            ),
        ),
        automated_backup_config=gcp.memorystore.InstanceAutomatedBackupConfigArgs(
            fixed_frequency_schedule=gcp.memorystore.InstanceAutomatedBackupConfigFixedFrequencyScheduleArgs(
                start_time=gcp.memorystore.InstanceAutomatedBackupConfigFixedFrequencyScheduleStartTimeArgs(
                    hours=settings.maintenance_hour
                )
            ),
            retention=f"{config.backup.retention_days * DAY_SECONDS}s",
        ),
        maintenance_policy=gcp.memorystore.InstanceMaintenancePolicyArgs(
            weekly_maintenance_windows=[
                gcp.memorystore.InstanceMaintenancePolicyWeeklyMaintenanceWindowArgs(
                    day=ctx.maintenance_day_name,
                    start_time=gcp.memorystore.InstanceMaintenancePolicyWeeklyMaintenanceWindowStartTimeArgs(
                        hours=settings.maintenance_hour, minutes=0, seconds=0, nanos=0
                    ),
                )
            ]
        ),
        gcs_source=(
            gcp.memorystore.InstanceGcsSourceArgs(uris=list(settings.valkey_import_uris))
            if settings.valkey_import_uris
            else None
        ),
        deletion_protection_enabled=True,
        labels=ctx.labels,
        opts=ctx.opts(
            protect=True,
            depends_on=[connection_policy, *import_grants],
            ignore_changes=["gcsSource"],
        ),
    )
    return Valkey(
        instance=instance,
        acl_policy=acl_policy,
        connection_policy=connection_policy,
        host=instance.endpoints.apply(discovery_address),
        ca_certificates=instance.managed_server_cas.apply(certificates),
    )


def discovery_address(
    endpoints: Sequence[gcp.memorystore.outputs.InstanceEndpoint] | None,
) -> str:
    """The private IP clients connect to: the auto-created discovery endpoint's address."""
    for endpoint in endpoints or []:
        for connection in endpoint.connections or []:
            auto = connection.psc_auto_connection
            if auto is not None and auto.connection_type == DISCOVERY:
                return str(auto.ip_address)
    return ""


def certificates(
    cas: Sequence[gcp.memorystore.outputs.InstanceManagedServerCa] | None,
) -> list[str]:
    """PEM text of every server CA certificate the instance reports."""
    pems: list[str] = []
    for ca in cas or []:
        for cert in ca.ca_certs or []:
            pems.extend(str(pem) for pem in cert.certificates or [])
    return pems
