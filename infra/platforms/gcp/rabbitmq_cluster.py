"""RabbitMQ as a cluster on Compute Engine: one VM per node over three zones, behind an internal
load balancer (``rabbitmq.nodes`` 3 or 5; 1 is ``rabbitmq_vm``'s single VM, unchanged).

Each node is today's broker VM (shielded, no external IP, its own snapshotted data disk, OS
Login) with a fixed private address and its own DNS name, ``rabbitmq-<n>.<zone>``; its Erlang
node name is ``rabbit@`` that name. Every node gets the same ``rabbitmq.conf``, listing every
node for classic_config peer discovery with ``pause_minority``: the nodes form the cluster by
themselves at first boot, and a node that comes back rejoins it. Nodes 1, 2, 3 sit in three
different zones of the region; with 5 nodes the zones are reused round-robin (2, 2, 1), so one
zone's loss still leaves a majority.

The Erlang cookie is a random value in a Secret Manager secret that only the broker VMs'
service account may read (an IAM binding on that secret, no project-wide grant); the startup
script fetches it at boot with the VM's own token. It is never in metadata, and the state
holds it as a Pulumi secret.

Services reach the cluster at the one name they always used, ``rabbitmq.<zone>``: it resolves
to an internal passthrough TCP load balancer's address (regional), whose backends are the
nodes, health-checked on AMQP and on the management port. A node that is gone stops passing
its checks and gets no new connections; clients reconnect to the same name and land on a
live node. Why a load balancer rather than node lists in the services' settings: the
services' ``AMQP_URL`` stays one URL (the env-file contract), a node replaced or added never
touches a service's secret, and clients need no multi-host support.

As for the single VM, nothing in an instance's inputs depends on the service list: the
services' vhosts, users and queues (quorum queues with one member per node) go to the
running cluster through the management API (``live_config``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from infra.live.resource import LiveConfig
from infra.platforms.gcp import names, secrets
from infra.platforms.gcp.context import GcpContext
from infra.platforms.gcp.network import RABBITMQ_TAG, Network
from infra.platforms.gcp.rabbitmq_vm import (
    CONF_KEY,
    COOKIE_SECRET_KEY,
    DEFINITIONS_KEY,
    NODENAME_KEY,
    OPS_AGENT_KEY,
    PLUGINS_KEY,
    broker_instance,
    snapshotted_disk,
    startup_script,
)
from infra.pulumi_credentials import StackPasswords
from infra.render import rabbitmq, without_services
from infra.render.endpoints import AMQP_PORT, MANAGEMENT_PORT, PROMETHEUS_PORT, rabbitmq_node_host
from infra.render.environment import render

COOKIE_SECRET_ID = "rabbitmq-erlang-cookie"  # noqa: S105 - a secret's id, not its value
ACCESSOR = "roles/secretmanager.secretAccessor"

# Erlang distribution between the nodes: epmd, the inter-node port (AMQP + 20000) and the
# range the CLI tools (rabbitmqctl, rabbitmq-diagnostics) listen on (AMQP + 30000 onwards).
CLUSTERING_PORTS = ("4369", "25672", "35672-35682")
# Google's health checkers for internal passthrough load balancers probe from these ranges.
HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
HEALTH_CHECKED_PORTS = (AMQP_PORT, MANAGEMENT_PORT)

# A region's zones are not always a, b, c: these have no zone "a". Any other region's three
# first zones are a, b and c. ``gcp.zone_suffix`` (node 1's zone) is always used first.
REGION_ZONE_SUFFIXES = {"europe-west1": ("b", "c", "d"), "us-east1": ("b", "c", "d")}
DEFAULT_ZONE_SUFFIXES = ("a", "b", "c")
ZONES_PER_CLUSTER = 3

# Host offsets in the subnet: the nodes at .11 to .15, the load balancer's address at .20
# (the single VM keeps .10, so a migration from it never collides).
FIRST_NODE_OFFSET = 11
ENDPOINT_OFFSET = 20


def zone_suffixes(region: str, first: str) -> tuple[str, ...]:
    """Three different zone suffixes of ``region``, ``first`` (gcp.zone_suffix) first."""
    known = REGION_ZONE_SUFFIXES.get(region, DEFAULT_ZONE_SUFFIXES)
    return (first, *[s for s in known if s != first])[:ZONES_PER_CLUSTER]


def node_zones(region: str, first: str, count: int) -> list[str]:
    """The zone of each node: three different zones, reused round-robin beyond three nodes."""
    suffixes = zone_suffixes(region, first)
    return [f"{region}-{suffixes[i % len(suffixes)]}" for i in range(count)]


def subnet_host(subnet_cidr: str, offset: int) -> str:
    """A fixed address in the subnet (Google reserves the first two and the last two)."""
    network = ipaddress.IPv4Network(subnet_cidr)
    if offset >= network.num_addresses - 2:
        raise pulumi.RunError(
            f"persistence:gcp.subnet_cidr {subnet_cidr} is too small for a RabbitMQ cluster's "
            "fixed addresses (host .11 to .20); use a /27 or larger, e.g. 10.20.0.0/24"
        )
    return str(network[offset])


def ops_agent_config(job: str) -> str:
    """The Ops Agent's config: scrape the broker's loopback Prometheus endpoint as ``job``."""
    return render(
        "gcp/ops-agent.yaml.j2", job=job, target=f"{rabbitmq.PROMETHEUS_IP}:{PROMETHEUS_PORT}"
    )


@dataclass(frozen=True)
class RabbitmqNode:
    """One node: its VM, data disk, snapshot schedule, address and names."""

    index: int
    zone: str
    host: str
    node_name: str
    instance: gcp.compute.Instance
    address: gcp.compute.Address
    data_disk: gcp.compute.Disk
    snapshots: gcp.compute.ResourcePolicy


@dataclass(frozen=True)
class RabbitmqCluster:
    """The nodes, the load balancer in front of them and the cookie they share."""

    nodes: list[RabbitmqNode]
    endpoint: gcp.compute.Address
    groups: list[gcp.compute.InstanceGroup]
    forwarding_rules: dict[str, gcp.compute.ForwardingRule]
    cookie_secret: gcp.secretmanager.Secret

    @property
    def instances(self) -> list[gcp.compute.Instance]:
        return [node.instance for node in self.nodes]

    @property
    def endpoint_ip(self) -> pulumi.Output[str]:
        """Where ``rabbitmq.<zone>`` points: the load balancer."""
        return self.endpoint.address

    def dns_records(self) -> dict[str, pulumi.Input[str]]:
        """Each node's own name (its Erlang node name's host part)."""
        return {node.host.split(".", 1)[0]: node.address.address for node in self.nodes}


def prometheus_job(ctx: GcpContext) -> str:
    """The scrape job's name: the alerts select the stack's brokers by it."""
    return ctx.name("rabbitmq")


def declare(
    ctx: GcpContext,
    network: Network,
    service_account: gcp.serviceaccount.Account,
    passwords: StackPasswords,
) -> RabbitmqCluster:
    """Declare the cookie, every node, the firewall between nodes and the load balancer."""
    config = ctx.config
    count = config.rabbitmq_nodes
    cookie_secret, cookie_ready = _cookie(ctx, service_account)
    boot = without_services(config)
    definitions: pulumi.Output[str] = passwords.admins.apply(
        lambda c: rabbitmq.definitions_json(boot, c, count)
    )
    shared: dict[str, pulumi.Input[str]] = {
        CONF_KEY: rabbitmq.rabbitmq_conf(config, cluster_nodes=rabbitmq.cluster_node_names(config)),
        PLUGINS_KEY: rabbitmq.enabled_plugins(),
        DEFINITIONS_KEY: pulumi.Output.secret(definitions),
        COOKIE_SECRET_KEY: f"projects/{ctx.project}/secrets/{_cookie_secret_id(ctx)}",
        OPS_AGENT_KEY: ops_agent_config(prometheus_job(ctx)),
        "startup-script": startup_script(cluster=True),
        "enable-oslogin": "TRUE",
        "block-project-ssh-keys": "TRUE",
    }
    zones = node_zones(ctx.region, config.gcp.zone_suffix, count)
    nodes = [
        _node(ctx, network, service_account, shared, index, zone, cookie_ready)
        for index, zone in enumerate(zones, start=1)
    ]
    _firewall(ctx, network, service_account)
    endpoint, groups, rules = _load_balancer(ctx, network, nodes)
    return RabbitmqCluster(
        nodes=nodes,
        endpoint=endpoint,
        groups=groups,
        forwarding_rules=rules,
        cookie_secret=cookie_secret,
    )


def _cookie_secret_id(ctx: GcpContext) -> str:
    return ctx.name(COOKIE_SECRET_ID, names.SECRET_ID)


def _cookie(
    ctx: GcpContext, service_account: gcp.serviceaccount.Account
) -> tuple[gcp.secretmanager.Secret, list[pulumi.Resource]]:
    """The cookie, its secret and the one reader; what a node must wait for before it boots."""
    # Letters and digits only: the cookie file holds it as is, and Erlang reads it as an atom.
    cookie = random.RandomPassword(
        "rabbitmq-erlang-cookie", length=48, special=False, opts=ctx.opts()
    )
    secret = gcp.secretmanager.Secret(
        f"secret-{COOKIE_SECRET_ID}",
        secret_id=_cookie_secret_id(ctx),
        labels=ctx.labels,
        replication=secrets.replication(ctx),
        opts=ctx.opts(),
    )
    version = gcp.secretmanager.SecretVersion(
        f"secret-{COOKIE_SECRET_ID}-version",
        secret=secret.id,
        secret_data=_secret(cookie.result),
        opts=ctx.opts(),
    )
    reader = gcp.secretmanager.SecretIamMember(
        f"secret-{COOKIE_SECRET_ID}-reader-rabbitmq-vm",
        project=ctx.project,
        secret_id=secret.secret_id,
        role=ACCESSOR,
        member=service_account.member,
        opts=ctx.opts(),
    )
    return secret, [version, reader]


def _secret(value: pulumi.Output[str]) -> pulumi.Output[str]:
    secret: pulumi.Output[str] = pulumi.Output.secret(value)
    return secret


def _node(
    ctx: GcpContext,
    network: Network,
    service_account: gcp.serviceaccount.Account,
    shared: dict[str, pulumi.Input[str]],
    index: int,
    zone: str,
    cookie_ready: list[pulumi.Resource],
) -> RabbitmqNode:
    """One node: address, snapshot schedule, data disk and VM (all named ``rabbitmq-<n>``)."""
    gcp_settings = ctx.config.gcp
    base = f"rabbitmq-{index}"
    host = rabbitmq_node_host(ctx.config, index)
    node_name = rabbitmq.node_name(host)
    address = gcp.compute.Address(
        f"{base}-address",
        name=ctx.name(base),
        address=subnet_host(gcp_settings.subnet_cidr, FIRST_NODE_OFFSET + index - 1),
        address_type="INTERNAL",
        purpose="GCE_ENDPOINT",
        subnetwork=network.subnet.id,
        region=ctx.region,
        labels=ctx.labels,
        opts=ctx.opts(),
    )
    snapshots, data_disk = snapshotted_disk(ctx, base, zone)
    instance = broker_instance(
        ctx,
        base,
        zone=zone,
        hostname=host,
        network=network,
        address=address,
        disk=data_disk,
        service_account=service_account,
        metadata={**shared, NODENAME_KEY: node_name},
        # The first boot reads the cookie: its version and its reader exist before the VM.
        opts=ctx.opts(protect=True, depends_on=cookie_ready),
    )
    return RabbitmqNode(
        index=index,
        zone=zone,
        host=host,
        node_name=node_name,
        instance=instance,
        address=address,
        data_disk=data_disk,
        snapshots=snapshots,
    )


def _firewall(
    ctx: GcpContext, network: Network, service_account: gcp.serviceaccount.Account
) -> None:
    """Clustering ports between broker VMs only (by service account, which a VM's tags cannot
    fake), and the health checkers to the checked ports only."""
    logged = gcp.compute.FirewallLogConfigArgs(metadata="INCLUDE_ALL_METADATA")
    gcp.compute.Firewall(
        "allow-rabbitmq-clustering",
        name=ctx.name("allow-rabbitmq-clustering"),
        network=network.vpc.id,
        direction="INGRESS",
        priority=1000,
        source_service_accounts=[service_account.email],
        target_service_accounts=[service_account.email],
        allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=list(CLUSTERING_PORTS))],
        log_config=logged,
        opts=ctx.opts(),
    )
    gcp.compute.Firewall(
        "allow-rabbitmq-health-checks",
        name=ctx.name("allow-rabbitmq-health-checks"),
        network=network.vpc.id,
        direction="INGRESS",
        priority=1000,
        source_ranges=list(HEALTH_CHECK_RANGES),
        target_tags=[RABBITMQ_TAG],
        allows=[
            gcp.compute.FirewallAllowArgs(
                protocol="tcp", ports=[str(port) for port in HEALTH_CHECKED_PORTS]
            )
        ],
        log_config=logged,
        opts=ctx.opts(),
    )


def _load_balancer(
    ctx: GcpContext, network: Network, nodes: list[RabbitmqNode]
) -> tuple[
    gcp.compute.Address, list[gcp.compute.InstanceGroup], dict[str, gcp.compute.ForwardingRule]
]:
    """An internal passthrough TCP load balancer: one address, AMQP and management on it."""
    endpoint = gcp.compute.Address(
        "rabbitmq-endpoint-address",
        name=ctx.name("rabbitmq-endpoint"),
        address=subnet_host(ctx.config.gcp.subnet_cidr, ENDPOINT_OFFSET),
        address_type="INTERNAL",
        # Two forwarding rules (AMQP, management) share it.
        purpose="SHARED_LOADBALANCER_VIP",
        subnetwork=network.subnet.id,
        region=ctx.region,
        labels=ctx.labels,
        opts=ctx.opts(),
    )
    groups = []
    for zone in sorted({node.zone for node in nodes}):
        suffix = zone.rsplit("-", 1)[-1]
        groups.append(
            gcp.compute.InstanceGroup(
                f"rabbitmq-group-{suffix}",
                name=ctx.name(f"rabbitmq-{suffix}"),
                zone=zone,
                network=network.vpc.id,
                instances=[node.instance.self_link for node in nodes if node.zone == zone],
                opts=ctx.opts(),
            )
        )
    rules = {}
    for label, port in (("amqp", AMQP_PORT), ("management", MANAGEMENT_PORT)):
        check = gcp.compute.RegionHealthCheck(
            f"rabbitmq-{label}-health",
            name=ctx.name(f"rabbitmq-{label}"),
            region=ctx.region,
            check_interval_sec=5,
            timeout_sec=5,
            healthy_threshold=2,
            unhealthy_threshold=2,
            tcp_health_check=gcp.compute.RegionHealthCheckTcpHealthCheckArgs(port=port),
            log_config=gcp.compute.RegionHealthCheckLogConfigArgs(enable=True),
            opts=ctx.opts(),
        )
        backend = gcp.compute.RegionBackendService(
            f"rabbitmq-{label}-backend",
            name=ctx.name(f"rabbitmq-{label}"),
            region=ctx.region,
            load_balancing_scheme="INTERNAL",
            protocol="TCP",
            health_checks=check.id,
            # A stopping node's open connections get a few seconds to finish.
            connection_draining_timeout_sec=10,
            backends=[
                gcp.compute.RegionBackendServiceBackendArgs(
                    group=group.self_link, balancing_mode="CONNECTION"
                )
                for group in groups
            ],
            opts=ctx.opts(),
        )
        rules[label] = gcp.compute.ForwardingRule(
            f"rabbitmq-{label}-forwarding",
            name=ctx.name(f"rabbitmq-{label}"),
            region=ctx.region,
            load_balancing_scheme="INTERNAL",
            ip_protocol="TCP",
            ip_address=endpoint.address,
            ports=[str(port)],
            backend_service=backend.id,
            network=network.vpc.id,
            subnetwork=network.subnet.id,
            labels=ctx.labels,
            opts=ctx.opts(),
        )
    return endpoint, groups, rules


def live_config(ctx: GcpContext, cluster: RabbitmqCluster, passwords: StackPasswords) -> LiveConfig:
    """The services' definitions, imported into the running cluster (any node) over the
    management API; quorum queues with one member per node."""
    config = ctx.config
    count = len(cluster.nodes)
    return LiveConfig.broker(
        "rabbitmq-live-config",
        server_id=pulumi.Output.all(*[i.id for i in cluster.instances]).apply(",".join),
        management_url=f"http://127.0.0.1:{config.gcp.rabbitmq_management_port}",
        admin_user=config.rabbitmq.admin_user,
        admin_password=passwords.rabbitmq_admin,
        definitions=passwords.everything.apply(lambda c: rabbitmq.definitions(config, c, count)),
        opts=ctx.opts(depends_on=list[pulumi.Resource](cluster.instances)),
    )
