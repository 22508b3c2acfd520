"""The prod stack under Pulumi mocks: each resource carries the properties the issue asks for.

Resources are matched by full type token; every message names the resource that failed.
"""

from __future__ import annotations

import json

import pytest

from infra import naming
from infra.config import StackConfig
from infra.platforms.gcp import rabbitmq_vm
from infra.render import endpoints, rabbitmq
from tests.unit.gcp_program import ProdRun, run_prod
from tests.unit.pulumi_mocks import Declared
from tests.unit.test_gcp_rabbitmq_single_node import single_node_config

REGION = "europe-west1"  # Pulumi.prod.yaml's placeholder gcp:region
PROJECT_ID = "example-project"


@pytest.fixture(scope="module")
def prod() -> ProdRun:
    return run_prod()


@pytest.fixture(scope="module")
def single() -> ProdRun:
    """The prod stack with ``rabbitmq.nodes: 1``: one broker VM (a stack from before the
    cluster)."""
    return run_prod(single_node_config())


def one(prod: ProdRun, token: str, name: str | None = None) -> Declared:
    return prod.run.one(token, name)


def test_vpc_is_custom_mode_with_one_private_subnet(prod: ProdRun) -> None:
    vpc = one(prod, "gcp:compute/network:Network")
    assert vpc.inputs["autoCreateSubnetworks"] is False, f"{vpc}: must be custom mode"
    subnet = one(prod, "gcp:compute/subnetwork:Subnetwork")
    assert subnet.inputs["network"] == f"{vpc.name}-id", f"{subnet}: not on the VPC"
    assert subnet.inputs["region"] == REGION, f"{subnet}"
    assert subnet.inputs["privateIpGoogleAccess"] is True, f"{subnet}"


def test_private_services_access(prod: ProdRun) -> None:
    reserved = one(prod, "gcp:compute/globalAddress:GlobalAddress")
    assert reserved.inputs["purpose"] == "VPC_PEERING", f"{reserved}"
    assert reserved.inputs["addressType"] == "INTERNAL", f"{reserved}"
    peering = one(prod, "gcp:servicenetworking/connection:Connection")
    assert peering.inputs["service"] == "servicenetworking.googleapis.com", f"{peering}"
    assert peering.inputs["reservedPeeringRanges"] == [reserved.inputs["name"]], f"{peering}"


def test_cloud_nat_serves_only_the_subnet(prod: ProdRun) -> None:
    nat = one(prod, "gcp:compute/routerNat:RouterNat")
    assert nat.inputs["sourceSubnetworkIpRangesToNat"] == "LIST_OF_SUBNETWORKS", f"{nat}"
    assert len(nat.inputs["subnetworks"]) == 1, f"{nat}"


def test_amqp_is_reachable_only_from_the_subnet(single: ProdRun, prod_config: StackConfig) -> None:
    """The single VM's rules (a cluster's: test_gcp_rabbitmq_cluster)."""
    prod = single
    amqp_rules = [
        r
        for r in prod.run.of_type("gcp:compute/firewall:Firewall")
        for allow in r.inputs.get("allows", [])
        if str(endpoints.AMQP_PORT) in allow.get("ports", [])
    ]
    assert len(amqp_rules) == 1, f"AMQP rules: {[str(r) for r in amqp_rules]}"
    rule = amqp_rules[0]
    assert rule.inputs["sourceRanges"] == [prod_config.gcp.subnet_cidr], f"{rule}"
    assert rule.inputs["targetTags"] == ["rabbitmq"], f"{rule}"
    ports = {
        port
        for r in prod.run.of_type("gcp:compute/firewall:Firewall")
        for allow in r.inputs.get("allows", [])
        for port in allow.get("ports", [])
    }
    assert ports == {"5672", "22", str(endpoints.MANAGEMENT_PORT)}, (
        f"only AMQP, IAP SSH and IAP management may be opened, found {ports}"
    )


def test_cloud_sql_instance(prod: ProdRun) -> None:
    """What the instance must be whatever the settings (test_gcp_settings_wiring: that each
    setting reaches it)."""
    sql = one(prod, "gcp:sql/databaseInstance:DatabaseInstance")
    inputs = sql.inputs
    settings = inputs["settings"]
    assert inputs["databaseVersion"] == "POSTGRES_15", f"{sql}: dev runs PostgreSQL 15"
    assert inputs["region"] == REGION
    assert inputs["deletionProtection"] is True, f"{sql}"
    assert settings["availabilityType"] == "REGIONAL", f"{sql}: HA is regional"
    assert settings["diskAutoresize"] is True, f"{sql}"
    assert settings["deletionProtectionEnabled"] is True, f"{sql}"
    ip = settings["ipConfiguration"]
    assert ip["ipv4Enabled"] is False, f"{sql}: private IP only"
    assert ip["privateNetwork"], f"{sql}: private IP only"
    assert ip["sslMode"] in ("ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"), f"{sql}"
    backup = settings["backupConfiguration"]
    assert backup["enabled"] is True, f"{sql}: automated backups off"
    assert backup["pointInTimeRecoveryEnabled"] is True, f"{sql}: PITR off"
    assert backup["location"] != REGION, f"{sql}: backups in the main region"
    assert 1 <= backup["transactionLogRetentionDays"] <= 7, f"{sql}: PITR window"
    retention = backup["backupRetentionSettings"]
    assert retention["retentionUnit"] == "COUNT", f"{sql}"
    assert retention["retainedBackups"] >= 1, f"{sql}: no automated backups kept"
    assert settings["maintenanceWindow"]["updateTrack"] == "stable", f"{sql}"
    assert settings["insightsConfig"]["queryInsightsEnabled"] is True, f"{sql}"
    flags = {f["name"]: f["value"] for f in settings["databaseFlags"]}
    assert int(flags["log_min_duration_statement"]) > 0, f"{sql}: slow statements unlogged"
    assert flags["cloudsql.iam_authentication"] == "on", f"{sql}: flags {flags}"
    assert flags["pg_stat_statements.track"] == "all", f"{sql}: flags {flags}"


def test_admin_is_a_built_in_user(prod: ProdRun, prod_config: StackConfig) -> None:
    admin = one(prod, "gcp:sql/user:User")
    assert admin.inputs["name"] == prod_config.postgres.admin_user, f"{admin}"
    assert admin.inputs["type"] == "BUILT_IN", f"{admin}"


def test_valkey(prod: ProdRun, prod_config: StackConfig) -> None:
    valkey = one(prod, "gcp:memorystore/instance:Instance")
    inputs = valkey.inputs
    assert inputs["engineVersion"] == "VALKEY_8_0", f"{valkey}"
    # One primary, cluster mode off (the client semantics of dev's server), replicas in other
    # zones with failover.
    assert inputs["mode"] == "CLUSTER_DISABLED", f"{valkey}"
    assert inputs["shardCount"] == 1, f"{valkey}"
    assert inputs["replicaCount"] == prod_config.gcp.valkey_replicas >= 1, f"{valkey}"
    assert inputs["zoneDistributionConfig"] == {"mode": "MULTI_ZONE"}, f"{valkey}"
    assert inputs["nodeType"] == prod_config.gcp.valkey_node_type, f"{valkey}"
    assert inputs["transitEncryptionMode"] == "SERVER_AUTHENTICATION", f"{valkey}"
    assert inputs["persistenceConfig"] == {
        "mode": "AOF",
        "aofConfig": {"appendFsync": "EVERY_SEC"},
    }, f"{valkey}"
    retention = prod_config.backup.retention_days * 86_400
    assert inputs["automatedBackupConfig"]["retention"] == f"{retention}s", f"{valkey}"
    assert inputs["deletionProtectionEnabled"] is True, f"{valkey}"
    assert valkey.protect, f"{valkey}: not protected"
    # Private Service Connect in the stack's own VPC, in the subnet the policy names.
    policy = one(prod, "gcp:networkconnectivity/serviceConnectionPolicy:ServiceConnectionPolicy")
    assert policy.inputs["serviceClass"] == "gcp-memorystore", f"{policy}"
    subnet = one(prod, "gcp:compute/subnetwork:Subnetwork")
    assert policy.inputs["pscConfig"]["subnetworks"] == [f"{subnet.name}-id"], f"{policy}"
    (endpoint,) = inputs["desiredAutoCreatedEndpoints"]
    assert endpoint["network"] == policy.inputs["network"], f"{valkey}"
    assert policy.urn in valkey.dependencies, "the endpoint needs the policy first"
    # The ACL policy is attached; maintenance_day 7 (Pulumi.prod.yaml's default) is SUNDAY.
    acl = one(prod, "gcp:memorystore/aclPolicy:AclPolicy")
    assert inputs["aclPolicy"] == f"{acl.name}-id", f"{valkey}"
    window = inputs["maintenancePolicy"]["weeklyMaintenanceWindows"][0]
    assert window["day"] == "SUNDAY", f"{valkey}: {window}"
    assert inputs["engineConfigs"] == {"maxmemory-policy": prod_config.redis.maxmemory_policy}, (
        f"{valkey}"
    )


def test_rabbitmq_vm(single: ProdRun) -> None:
    prod = single
    vm = one(prod, "gcp:compute/instance:Instance")
    inputs = vm.inputs
    shielded = inputs["shieldedInstanceConfig"]
    assert shielded == {
        "enableSecureBoot": True,
        "enableVtpm": True,
        "enableIntegrityMonitoring": True,
    }, f"{vm}"
    assert inputs["zone"].startswith(f"{REGION}-"), f"{vm}: outside the main region"
    (iface,) = inputs["networkInterfaces"]
    assert "accessConfigs" not in iface or not iface["accessConfigs"], f"{vm}: external IP"
    assert inputs["serviceAccount"]["email"] == (
        f"prod-rabbitmq-vm@{PROJECT_ID}.iam.gserviceaccount.com"
    ), f"{vm}"
    (attached,) = inputs["attachedDisks"]
    disk = one(prod, "gcp:compute/disk:Disk")
    assert attached["source"] == f"{disk.name}-id", f"{vm}: data disk not attached"
    assert disk.inputs["zone"] == inputs["zone"], f"{disk}: not in the VM's zone"
    policy = one(prod, "gcp:compute/resourcePolicy:ResourcePolicy")
    assert disk.inputs["resourcePolicies"] == [f"{policy.name}-id"], f"{disk}: no snapshots"
    retention = policy.inputs["snapshotSchedulePolicy"]["retentionPolicy"]
    assert retention["onSourceDiskDelete"] == "KEEP_AUTO_SNAPSHOTS", f"{policy}"


@pytest.mark.parametrize("nodes", [1, 3])
def test_rabbitmq_vm_account_only_writes_logs_and_metrics(
    nodes: int, prod: ProdRun, single: ProdRun
) -> None:
    """Project-wide, logs and metrics only; a cluster's nodes also read the cookie's secret,
    through a binding on that one secret."""
    run = single if nodes == 1 else prod
    member = f"serviceAccount:prod-rabbitmq-vm@{PROJECT_ID}.iam.gserviceaccount.com"
    grants = [r for r in run.run if r.type.startswith("gcp:") and r.inputs.get("member") == member]
    project = {r.inputs["role"] for r in grants if r.type == "gcp:projects/iAMMember:IAMMember"}
    assert project == {"roles/logging.logWriter", "roles/monitoring.metricWriter"}, project
    secrets = [r for r in grants if r.type != "gcp:projects/iAMMember:IAMMember"]
    expected = [] if nodes == 1 else ["persistence-prod-rabbitmq-erlang-cookie"]
    assert [r.inputs["secretId"] for r in secrets] == expected, [str(r) for r in secrets]


def test_rabbitmq_vm_boots_with_the_rendered_files(
    single: ProdRun, prod_config: StackConfig
) -> None:
    prod = single
    vm = one(prod, "gcp:compute/instance:Instance")
    metadata = vm.inputs["metadata"]
    assert metadata[rabbitmq_vm.CONF_KEY] == rabbitmq.rabbitmq_conf(prod_config)
    assert metadata[rabbitmq_vm.PLUGINS_KEY] == rabbitmq.enabled_plugins()
    definitions = json.loads(metadata[rabbitmq_vm.DEFINITIONS_KEY])
    # The boot definitions hold the admin only: the services' arrive over the management API.
    assert definitions["vhosts"] == []
    users = {u["name"]: u for u in definitions["users"]}
    assert set(users) == {prod_config.rabbitmq.admin_user}
    assert all("password_hash" in u and "password" not in u for u in users.values())
    script = metadata["startup-script"]
    assert script == rabbitmq_vm.startup_script()
    for key in (rabbitmq_vm.CONF_KEY, rabbitmq_vm.PLUGINS_KEY, rabbitmq_vm.DEFINITIONS_KEY):
        assert key in script, f"startup script never fetches {key}"
    assert metadata["enable-oslogin"] == "TRUE"


def test_cluster_nodes_boot_with_the_rendered_files(
    prod: ProdRun, prod_config: StackConfig
) -> None:
    vms = prod.run.of_type("gcp:compute/instance:Instance")
    zone = prod_config.gcp.dns_zone.rstrip(".")
    names = [f"rabbit@rabbitmq-{n}.{zone}" for n in (1, 2, 3)]
    for vm in vms:
        metadata = vm.inputs["metadata"]
        conf = rabbitmq.rabbitmq_conf(prod_config, cluster_nodes=names)
        assert metadata[rabbitmq_vm.CONF_KEY] == conf, f"{vm}"
        assert metadata[rabbitmq_vm.NODENAME_KEY] == f"rabbit@{vm.inputs['hostname']}", f"{vm}"
        assert metadata[rabbitmq_vm.COOKIE_SECRET_KEY] == (
            f"projects/{PROJECT_ID}/secrets/persistence-prod-rabbitmq-erlang-cookie"
        ), f"{vm}"
        definitions = json.loads(metadata[rabbitmq_vm.DEFINITIONS_KEY])
        assert definitions["vhosts"] == [], f"{vm}: services in the boot definitions"
        script = metadata["startup-script"]
        assert script == rabbitmq_vm.startup_script(cluster=True)
        for key in (
            rabbitmq_vm.CONF_KEY,
            rabbitmq_vm.DEFINITIONS_KEY,
            rabbitmq_vm.NODENAME_KEY,
            rabbitmq_vm.COOKIE_SECRET_KEY,
            rabbitmq_vm.OPS_AGENT_KEY,
        ):
            assert key in script, f"startup script never fetches {key}"
    assert sorted(vm.inputs["hostname"] for vm in vms) == [n.split("@")[1] for n in names]


def test_the_cluster_startup_script_keeps_the_cookie_out_of_logs_and_arguments() -> None:
    """The cookie goes from Secret Manager's answer into a 0400 file owned by rabbitmq, before
    the node starts; the token reaches curl on stdin (a header argument shows in ps)."""
    script = rabbitmq_vm.startup_script(cluster=True)
    assert "set -x" not in script
    assert 'curl -fsS -H @- "https://secretmanager.googleapis.com/v1/' in script
    assert "Bearer $" not in script.replace("Bearer %s", "")
    cookie = script.index('mv -f "$COOKIE_FILE.new" "$COOKIE_FILE"')
    assert script.index('chmod 0400 "$COOKIE_FILE.new"') < cookie
    assert script.index('chown rabbitmq:rabbitmq "$COOKIE_FILE.new"') < cookie
    assert cookie < script.index("systemctl restart rabbitmq-server")
    assert "USE_LONGNAME=true" in script
    assert rabbitmq_vm.startup_script() == rabbitmq_vm.startup_script(cluster=False)
    assert "COOKIE" not in rabbitmq_vm.startup_script()


def test_private_dns_names_match_the_service_endpoints(
    single: ProdRun, prod_config: StackConfig
) -> None:
    prod = single
    zone = one(prod, "gcp:dns/managedZone:ManagedZone")
    assert zone.inputs["visibility"] == "private", f"{zone}"
    assert zone.inputs["privateVisibilityConfig"]["networks"], f"{zone}: not on the VPC"
    records = prod.run.of_type("gcp:dns/recordSet:RecordSet")
    names = {r.inputs["name"]: r.inputs["rrdatas"] for r in records}
    stack = endpoints.for_stack(prod_config)
    assert names == {
        f"{stack.postgres_host}.": ["10.30.0.3"],
        f"{stack.redis_host}.": ["10.30.1.4"],
        f"{stack.amqp_host}.": [rabbitmq_vm.broker_ip(prod_config.gcp.subnet_cidr)],
    }


def test_cluster_dns_names_the_endpoint_and_every_node(
    prod: ProdRun, prod_config: StackConfig
) -> None:
    records = prod.run.of_type("gcp:dns/recordSet:RecordSet")
    names = {r.inputs["name"]: r.inputs["rrdatas"] for r in records}
    stack = endpoints.for_stack(prod_config)
    zone = prod_config.gcp.dns_zone
    assert names == {
        f"{stack.postgres_host}.": ["10.30.0.3"],
        f"{stack.redis_host}.": ["10.30.1.4"],
        # The internal load balancer's address, then each node's own.
        f"{stack.amqp_host}.": ["10.20.0.20"],
        f"rabbitmq-1.{zone}": ["10.20.0.11"],
        f"rabbitmq-2.{zone}": ["10.20.0.12"],
        f"rabbitmq-3.{zone}": ["10.20.0.13"],
    }


def test_one_service_account_per_service(prod: ProdRun, prod_config: StackConfig) -> None:
    ids = {a.inputs["accountId"] for a in prod.run.of_type("gcp:serviceaccount/account:Account")}
    for spec in prod_config.services:
        wanted = f"prod-{naming.service_account_base(spec.name)}"
        assert wanted in ids, f"no account {wanted} for {spec.name}"


def test_secrets_hold_the_service_urls(prod: ProdRun, prod_config: StackConfig) -> None:
    versions = {
        v.inputs["secret"]: v.inputs["secretData"]
        for v in prod.run.of_type("gcp:secretmanager/secretVersion:SecretVersion")
    }
    stack = endpoints.for_stack(prod_config)
    for spec in prod_config.services:
        app = versions[f"secret-{naming.postgres_secret_id(spec.name, 'app')}-id"]
        assert app.startswith(f"postgresql://{naming.role_name(spec.name, 'app')}:"), spec.name
        # Through the pooled endpoint (test_gcp_pooler has the pooled/direct split).
        host, port = stack.postgres_address("app")
        assert app.endswith(f"@{host}:{port}/{naming.database_name(spec.name)}")
        amqp = versions[f"secret-{naming.rabbitmq_secret_id(spec.name)}-id"]
        assert amqp.endswith(f"/{naming.rabbitmq_vhost(spec.name)}"), spec.name
        redis = versions.get(f"secret-{naming.redis_secret_id(spec.name)}-id")
        if not spec.redis:
            assert redis is None, f"{spec.name} has no Redis user, so no REDIS_URL"
            continue
        assert isinstance(redis, str), spec.name
        # TLS, the service's own ACL user, the private name.
        user = naming.redis_user(spec.name)
        assert redis.startswith(f"rediss://{user}:"), spec.name
        assert redis.endswith(f"@{stack.redis_host}:{stack.redis_port}/0"), spec.name


def test_backup_bucket_lifecycle(prod: ProdRun) -> None:
    """Objects move to Coldline before they are deleted, and never before retention ends."""
    bucket = one(prod, "gcp:storage/bucket:Bucket")
    rules = {r["action"]["type"]: r for r in bucket.inputs["lifecycleRules"]}
    assert rules["SetStorageClass"]["action"]["storageClass"] == "COLDLINE", f"{bucket}"
    coldline = rules["SetStorageClass"]["condition"]["age"]
    delete = rules["Delete"]["condition"]["age"]
    retention_days = int(bucket.inputs["retentionPolicy"]["retentionPeriod"]) // 86400
    assert 0 < coldline < delete, f"{bucket}: deleted before it goes cold"
    assert delete >= retention_days > 0, f"{bucket}: lifecycle deletes before retention ends"


def test_scheduler_starts_the_workflow_on_the_stack_schedule(prod: ProdRun) -> None:
    job = one(prod, "gcp:cloudscheduler/job:Job", "backup-schedule")
    workflow = one(prod, "gcp:workflows/workflow:Workflow")
    assert job.inputs["timeZone"] == "Etc/UTC", f"{job}"
    assert job.inputs["retryConfig"]["retryCount"] >= 1, f"{job}: no retries"
    uri = job.inputs["httpTarget"]["uri"]
    assert uri == (
        "https://workflowexecutions.googleapis.com/v1/projects/"
        f"{PROJECT_ID}/locations/{REGION}/workflows/{workflow.inputs['name']}/executions"
    ), f"{job}: {uri}"
    assert job.inputs["httpTarget"]["httpMethod"] == "POST"


def test_outputs_a_deployer_needs(prod: ProdRun) -> None:
    exports = prod.run.exports
    for key in (
        "postgres_connection_name",
        "postgres_host",
        "redis_host",
        "rabbitmq_host",
        "backup_bucket",
        "backup_workflow",
        "service_secrets",
        "service_accounts",
    ):
        assert exports.get(key), f"missing output {key}"
    assert exports["redis_port"] == endpoints.MEMORYSTORE_TLS_PORT


def test_service_databases_are_provisioned_through_the_auth_proxy(
    prod: ProdRun, prod_config: StackConfig
) -> None:
    declared = {
        r.name: r
        for r in prod.run.of_type("pulumi-python:dynamic:Resource")
        if r.name.endswith("-database")
    }
    assert set(declared) == {f"{s.name}-database" for s in prod_config.services}
    for name, resource in declared.items():
        inputs = resource.inputs
        assert inputs["admin_host"] == prod_config.gcp.provisioning_host, name
        assert inputs["admin_port"] == prod_config.gcp.provisioning_port, name
        assert inputs["admin_user"] == prod_config.postgres.admin_user, name
        assert inputs["sslmode"] == prod_config.gcp.provisioning_sslmode, name
        assert resource.input_is_secret("admin_password"), f"{name}: admin password not secret"
        assert resource.input_is_secret("passwords"), f"{name}: passwords not secret"
