"""RabbitMQ on Compute Engine: a shielded VM with no external IP and its own data disk.

The broker gets the same rendered ``rabbitmq.conf`` and ``enabled_plugins`` as the dev
container and the tests, and the *boot* definitions (the admin user only), delivered as instance
metadata and installed by a startup script at every boot. Nothing in the instance's inputs
depends on the service list: adding a service changes neither the metadata nor the startup
script, so the VM is neither recreated nor restarted (and a metadata change would only be an
in-place update anyway; the script runs at boot only). The services' vhosts, users, queues and
policies are applied to the running broker through its management API by ``live_config``, from
the deploying runner, through an IAP tunnel to the management port
(``gcp.rabbitmq_management_port``, ``make broker-tunnel-start``); they live in the broker's
node database on the persistent data disk, so a reboot keeps them. The definitions hold only
password hashes, but they derive from secrets, so that metadata value is a secret Output.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.live.resource import LiveConfig
from infra.platforms.gcp.context import GcpContext
from infra.platforms.gcp.network import RABBITMQ_TAG, Network
from infra.pulumi_credentials import StackPasswords
from infra.render import rabbitmq, without_services
from infra.render.environment import render

IMAGE = "debian-cloud/debian-12"
DATA_DEVICE = "rabbitmq-data"
DATA_DIR = "/var/lib/rabbitmq"
CONF_KEY = "rabbitmq-conf"
PLUGINS_KEY = "rabbitmq-enabled-plugins"
DEFINITIONS_KEY = "rabbitmq-definitions"
# A cluster node's own metadata (``rabbitmq_cluster``); the single VM has none of these.
NODENAME_KEY = "rabbitmq-nodename"
COOKIE_SECRET_KEY = "rabbitmq-cookie-secret"  # noqa: S105 - a metadata key
OPS_AGENT_KEY = "rabbitmq-ops-agent-config"
SNAPSHOT_START_TIME = "02:00"  # UTC


def broker_ip(subnet_cidr: str) -> str:
    """A fixed address in the subnet, so the DNS record and firewall never chase a new IP.

    Google reserves the first two and the last two addresses of every subnet.
    """
    network = ipaddress.IPv4Network(subnet_cidr)
    return str(network[10] if network.num_addresses > 16 else network[2])


@dataclass(frozen=True)
class RabbitmqVm:
    """The VM and the private address services reach it on."""

    instance: gcp.compute.Instance
    address: gcp.compute.Address
    data_disk: gcp.compute.Disk

    @property
    def instances(self) -> list[gcp.compute.Instance]:
        return [self.instance]

    @property
    def endpoint_ip(self) -> pulumi.Output[str]:
        """Where ``rabbitmq.<zone>`` points: the VM itself."""
        return self.address.address

    def dns_records(self) -> dict[str, pulumi.Input[str]]:
        """No name of its own beyond ``rabbitmq.<zone>``."""
        return {}


def startup_script(*, cluster: bool = False) -> str:
    """The boot script; static apart from paths and metadata keys. A cluster node's also sets
    its node name, fetches the Erlang cookie and runs the Ops Agent (the single VM's script
    is exactly what it always was)."""
    return render(
        "gcp/rabbitmq-startup.sh.j2",
        data_device=DATA_DEVICE,
        data_dir=DATA_DIR,
        config_dir=rabbitmq.CONFIG_DIR,
        conf_key=CONF_KEY,
        plugins_key=PLUGINS_KEY,
        definitions_key=DEFINITIONS_KEY,
        cluster=cluster,
        nodename_key=NODENAME_KEY,
        cookie_secret_key=COOKIE_SECRET_KEY,
        ops_agent_key=OPS_AGENT_KEY,
    )


def metadata(ctx: GcpContext, passwords: StackPasswords) -> dict[str, pulumi.Input[str]]:
    """Instance metadata: the broker's files, the boot script, OS Login instead of SSH keys.

    The boot definitions hold the admin user only (no service), so a service never changes them.
    """
    boot = without_services(ctx.config)
    definitions = passwords.admins.apply(lambda c: rabbitmq.definitions_json(boot, c))
    return {
        CONF_KEY: rabbitmq.rabbitmq_conf(ctx.config),
        PLUGINS_KEY: rabbitmq.enabled_plugins(),
        DEFINITIONS_KEY: pulumi.Output.secret(definitions),
        "startup-script": startup_script(),
        "enable-oslogin": "TRUE",
        "block-project-ssh-keys": "TRUE",
    }


def declare(
    ctx: GcpContext,
    network: Network,
    service_account: gcp.serviceaccount.Account,
    passwords: StackPasswords,
) -> RabbitmqVm:
    """Declare the address, the snapshotted data disk and the VM."""
    gcp_settings = ctx.config.gcp
    address = gcp.compute.Address(
        "rabbitmq-address",
        name=ctx.name("rabbitmq"),
        address=broker_ip(gcp_settings.subnet_cidr),
        address_type="INTERNAL",
        purpose="GCE_ENDPOINT",
        subnetwork=network.subnet.id,
        region=ctx.region,
        labels=ctx.labels,
        opts=ctx.opts(),
    )
    _, data_disk = snapshotted_disk(ctx, "rabbitmq", ctx.zone)
    instance = broker_instance(
        ctx,
        "rabbitmq",
        zone=ctx.zone,
        network=network,
        address=address,
        disk=data_disk,
        service_account=service_account,
        metadata=metadata(ctx, passwords),
        opts=ctx.opts(protect=True),
    )
    return RabbitmqVm(instance=instance, address=address, data_disk=data_disk)


def live_config(ctx: GcpContext, vm: RabbitmqVm, passwords: StackPasswords) -> LiveConfig:
    """The services' definitions, imported into the running broker over the management API."""
    config = ctx.config
    return LiveConfig.broker(
        "rabbitmq-live-config",
        server_id=vm.instance.id,
        management_url=f"http://127.0.0.1:{config.gcp.rabbitmq_management_port}",
        admin_user=config.rabbitmq.admin_user,
        admin_password=passwords.rabbitmq_admin,
        definitions=passwords.everything.apply(lambda c: rabbitmq.definitions(config, c)),
        opts=ctx.opts(depends_on=[vm.instance]),
    )


def snapshotted_disk(
    ctx: GcpContext, base: str, zone: str
) -> tuple[gcp.compute.ResourcePolicy, gcp.compute.Disk]:
    """A broker node's pd-ssd data disk (``<base>-data``) and its daily snapshot schedule,
    whose snapshots outlive the disk; the disk is protected."""
    gcp_settings = ctx.config.gcp
    snapshots = gcp.compute.ResourcePolicy(
        f"{base}-data-snapshots",
        name=ctx.name(f"{base}-data-snapshots"),
        region=ctx.region,
        snapshot_schedule_policy=gcp.compute.ResourcePolicySnapshotSchedulePolicyArgs(
            schedule=gcp.compute.ResourcePolicySnapshotSchedulePolicyScheduleArgs(
                daily_schedule=gcp.compute.ResourcePolicySnapshotSchedulePolicyScheduleDailyScheduleArgs(
                    days_in_cycle=1, start_time=SNAPSHOT_START_TIME
                )
            ),
            retention_policy=gcp.compute.ResourcePolicySnapshotSchedulePolicyRetentionPolicyArgs(
                max_retention_days=ctx.config.backup.retention_days,
                on_source_disk_delete="KEEP_AUTO_SNAPSHOTS",
            ),
            snapshot_properties=gcp.compute.ResourcePolicySnapshotSchedulePolicySnapshotPropertiesArgs(
                storage_locations=gcp_settings.backup_region,
                labels=ctx.labels,
            ),
        ),
        opts=ctx.opts(),
    )
    disk = gcp.compute.Disk(
        f"{base}-data",
        name=ctx.name(f"{base}-data"),
        zone=zone,
        type="pd-ssd",
        size=gcp_settings.rabbitmq_disk_size_gb,
        resource_policies=[snapshots.id],
        labels=ctx.labels,
        opts=ctx.opts(protect=True),
    )
    return snapshots, disk


def broker_instance(
    ctx: GcpContext,
    base: str,
    *,
    zone: str,
    network: Network,
    address: gcp.compute.Address,
    disk: gcp.compute.Disk,
    service_account: gcp.serviceaccount.Account,
    metadata: Mapping[str, pulumi.Input[str]],
    opts: pulumi.ResourceOptions,
    hostname: str | None = None,
) -> gcp.compute.Instance:
    """A shielded broker VM on its fixed private address with no external IP (packages come
    through Cloud NAT), its data disk attached, running as the broker's service account."""
    return gcp.compute.Instance(
        base,
        name=ctx.name(base),
        zone=zone,
        hostname=hostname,
        machine_type=ctx.config.gcp.rabbitmq_machine_type,
        tags=[RABBITMQ_TAG],
        labels=ctx.labels,
        boot_disk=gcp.compute.InstanceBootDiskArgs(
            auto_delete=True,
            initialize_params=gcp.compute.InstanceBootDiskInitializeParamsArgs(
                image=IMAGE, size=20, type="pd-balanced"
            ),
        ),
        attached_disks=[
            gcp.compute.InstanceAttachedDiskArgs(
                source=disk.id, device_name=DATA_DEVICE, mode="READ_WRITE"
            )
        ],
        network_interfaces=[
            gcp.compute.InstanceNetworkInterfaceArgs(
                subnetwork=network.subnet.id, network_ip=address.address
            )
        ],
        shielded_instance_config=gcp.compute.InstanceShieldedInstanceConfigArgs(
            enable_secure_boot=True, enable_vtpm=True, enable_integrity_monitoring=True
        ),
        service_account=gcp.compute.InstanceServiceAccountArgs(
            email=service_account.email, scopes=["cloud-platform"]
        ),
        metadata=dict(metadata),
        deletion_protection=True,
        allow_stopping_for_update=True,
        opts=opts,
    )
