"""Policy tests: rules that hold for EVERY resource the prod program declares.

They iterate over the whole recorded program, not a hand-picked few, so a resource added
later that breaks a rule (a public IP, a basic role, an unprotected stateful resource, a
bucket without retention, a secret readable by the wrong account) fails here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from infra import naming
from infra.config import StackConfig
from infra.platforms.gcp import backup_job, identities, names, rabbitmq_cluster
from tests.unit.gcp_program import ProdRun, run_prod
from tests.unit.pulumi_mocks import Declared, stack_config

PROJECT_ID = "example-project"  # Pulumi.prod.yaml's placeholder gcp:project
BASIC_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}
SQL = "gcp:sql/databaseInstance:DatabaseInstance"
VALKEY = "gcp:memorystore/instance:Instance"
VM = "gcp:compute/instance:Instance"
DISK = "gcp:compute/disk:Disk"
BUCKET = "gcp:storage/bucket:Bucket"
SECRET = "gcp:secretmanager/secret:Secret"
SECRET_READER = "gcp:secretmanager/secretIamMember:SecretIamMember"
JOB = "gcp:cloudscheduler/job:Job"
WORKFLOW = "gcp:workflows/workflow:Workflow"

# Resources that hold data a rebuild cannot recreate: protect=True, plus the resource's own
# deletion-protection flag where the API has one (input path -> required value).
STATEFUL: dict[str, dict[str, Any]] = {
    SQL: {"deletionProtection": True, "settings.deletionProtectionEnabled": True},
    VALKEY: {"deletionProtectionEnabled": True},
    VM: {"deletionProtection": True},
    DISK: {},
    BUCKET: {"forceDestroy": False},
}
# Every other GCP type the program may declare, reviewed against these rules. A new type
# must be added here (or to STATEFUL) deliberately.
STATELESS = {
    "gcp:compute/network:Network",
    "gcp:compute/subnetwork:Subnetwork",
    "gcp:compute/globalAddress:GlobalAddress",
    "gcp:compute/address:Address",
    "gcp:compute/router:Router",
    "gcp:compute/routerNat:RouterNat",
    "gcp:compute/firewall:Firewall",
    "gcp:compute/resourcePolicy:ResourcePolicy",
    # The RabbitMQ cluster's internal load balancer: configuration only, rebuilt from code.
    "gcp:compute/instanceGroup:InstanceGroup",
    "gcp:compute/regionHealthCheck:RegionHealthCheck",
    "gcp:compute/regionBackendService:RegionBackendService",
    "gcp:compute/forwardingRule:ForwardingRule",
    "gcp:servicenetworking/connection:Connection",
    # Which subnet Memorystore may put its Private Service Connect endpoints in.
    "gcp:networkconnectivity/serviceConnectionPolicy:ServiceConnectionPolicy",
    # Valkey's ACL users, rendered from the config and the passwords like dev's users.acl.
    "gcp:memorystore/aclPolicy:AclPolicy",
    "gcp:dns/managedZone:ManagedZone",
    "gcp:dns/recordSet:RecordSet",
    "gcp:sql/user:User",
    "gcp:serviceaccount/account:Account",
    "gcp:projects/iAMMember:IAMMember",
    "gcp:projects/iAMCustomRole:IAMCustomRole",
    "gcp:storage/bucketIAMMember:BucketIAMMember",
    SECRET,
    "gcp:secretmanager/secretVersion:SecretVersion",
    SECRET_READER,
    WORKFLOW,
    JOB,
    # Images are rebuilt from this repository at every deploy; nothing in it is only there.
    "gcp:artifactregistry/repository:Repository",
    "gcp:cloudrunv2/job:Job",
    "gcp:cloudrunv2/jobIamMember:JobIamMember",
    "gcp:logging/metric:Metric",
    "gcp:monitoring/alertPolicy:AlertPolicy",
    "gcp:monitoring/notificationChannel:NotificationChannel",
}


def with_replicas() -> dict[str, str]:
    """Pulumi.prod.yaml with two read replicas and a disaster-recovery replica: every rule
    here holds for them too."""
    config = stack_config("prod")
    for key, changes in (
        ("persistence:postgres", {"replicas": 2}),
        ("persistence:gcp", {"dr_replica_region": "europe-north1"}),
    ):
        config[key] = json.dumps({**json.loads(config.get(key, "{}")), **changes})
    return config


@pytest.fixture(scope="module", params=["stack file", "with replicas"])
def prod(request: pytest.FixtureRequest) -> ProdRun:
    return run_prod(with_replicas() if request.param == "with replicas" else None)


def gcp_resources(prod: ProdRun) -> list[Declared]:
    return [r for r in prod.run if r.type.startswith("gcp:")]


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted path, value) pair inside a resource's inputs."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]")


def dig(inputs: dict[str, Any], dotted: str) -> Any:
    value: Any = inputs
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def sa_member(base: str) -> str:
    """The member of the prod stack's account with this stack-free base id."""
    return f"serviceAccount:{names.account_id('prod', base)}@{PROJECT_ID}.iam.gserviceaccount.com"


def prod_secret_id(base: str) -> str:
    """The prod stack's physical secret id for a stack-free base id."""
    return names.scoped("persistence-prod", base, names.SECRET_ID)


def test_every_gcp_type_is_classified(prod: ProdRun) -> None:
    unknown = sorted({r.type for r in gcp_resources(prod)} - set(STATEFUL) - STATELESS)
    assert not unknown, f"new resource types must be classified in test_gcp_policy: {unknown}"


def test_the_platform_parents_everything(prod: ProdRun) -> None:
    """Every registration but the component itself, of any type (passwords, the provisioning
    resources, GCP and Docker resources), sits below persistence:gcp:Platform."""
    below = {r.urn for r in prod.run.below(prod.component)}
    outside = [str(r) for r in prod.run if r.urn not in below and r is not prod.component]
    assert len(below) == len(prod.run.declared) - 1 > 100
    assert not outside, f"not parented to persistence:gcp:Platform: {outside}"


def test_no_public_ip_anywhere(prod: ProdRun) -> None:
    problems = []
    for resource in gcp_resources(prod):
        for path, value in walk(resource.inputs):
            key = path.rsplit(".", 1)[-1]
            if key.startswith(("accessConfigs", "ipv6AccessConfigs")) and value:
                problems.append(f"{resource}: {path} gives an external IP")
            if key == "ipv4Enabled" and value is not False:
                problems.append(f"{resource}: {path} = {value!r} (public IPv4)")
            if key == "addressType" and value != "INTERNAL":
                problems.append(f"{resource}: {path} = {value!r}")
            if key.startswith("authorizedNetworks") and value:
                problems.append(f"{resource}: {path} opens the instance to networks")
            if key == "connectMode" and value != "PRIVATE_SERVICE_ACCESS":
                problems.append(f"{resource}: {path} = {value!r}")
    for vm in prod.run.of_type(VM):
        for iface in vm.inputs.get("networkInterfaces", []):
            assert not iface.get("accessConfigs"), f"{vm}: network interface has an external IP"
    for sql in prod.run.of_type(SQL):
        ip = sql.inputs["settings"]["ipConfiguration"]
        assert ip["ipv4Enabled"] is False, f"{sql}: public IPv4 must be off"
    assert not problems, "\n".join(problems)


def test_no_ingress_from_the_internet_except_deny(prod: ProdRun) -> None:
    for rule in prod.run.of_type("gcp:compute/firewall:Firewall"):
        inputs = rule.inputs
        if inputs.get("allows"):
            assert "0.0.0.0/0" not in inputs.get("sourceRanges", []), (
                f"{rule}: allows traffic from anywhere"
            )
            sources = ("sourceRanges", "sourceTags", "sourceServiceAccounts")
            assert any(inputs.get(key) for key in sources), (
                f"{rule}: an allow rule needs an explicit source"
            )


def test_no_basic_roles_granted(prod: ProdRun) -> None:
    problems = []
    for resource in gcp_resources(prod):
        for path, value in walk(resource.inputs):
            key = path.rsplit(".", 1)[-1]
            if key == "role" and value in BASIC_ROLES:
                problems.append(f"{resource}: grants {value}")
            if key == "policyData" and isinstance(value, str):
                for binding in json.loads(value).get("bindings", []):
                    if binding.get("role") in BASIC_ROLES:
                        problems.append(f"{resource}: policy grants {binding['role']}")
    assert not problems, "\n".join(problems)


def test_no_authoritative_iam_policies(prod: ProdRun) -> None:
    """Authoritative policies would silently remove grants others rely on; only members."""
    authoritative = [
        str(r)
        for r in gcp_resources(prod)
        if r.type.split(":")[-1].lower().endswith(("iampolicy", "iambinding"))
    ]
    assert not authoritative, f"use *IAMMember resources: {authoritative}"


def test_stateful_resources_are_protected_twice(prod: ProdRun) -> None:
    problems = []
    for resource in gcp_resources(prod):
        for path, wanted in STATEFUL.get(resource.type, {}).items():
            actual = dig(resource.inputs, path)
            if actual is not wanted:
                problems.append(f"{resource}: {path} = {actual!r}, expected {wanted!r}")
    for resource in gcp_resources(prod):
        if resource.type in STATEFUL and not resource.protect:
            problems.append(f"{resource}: Pulumi protect is not set")
    assert not problems, "\n".join(problems)
    for token in STATEFUL:
        assert prod.run.of_type(token), f"expected at least one {token}"


def test_service_databases_are_protected(prod: ProdRun, prod_config: StackConfig) -> None:
    databases = {
        r.name: r.protect
        for r in prod.run.of_type("pulumi-python:dynamic:Resource")
        if r.name.endswith("-database")
    }
    assert set(databases) == {f"{s.name}-database" for s in prod_config.services}
    unprotected = [name for name, protect in databases.items() if protect is not True]
    assert not unprotected, f"service databases without protect: {unprotected}"


def test_every_bucket_is_private_retained_and_soft_deleting(
    prod: ProdRun, prod_config: StackConfig
) -> None:
    for bucket in prod.run.of_type(BUCKET):
        inputs = bucket.inputs
        assert inputs["uniformBucketLevelAccess"] is True, f"{bucket}: UBLA off"
        assert inputs["publicAccessPrevention"] == "enforced", f"{bucket}: PAP not enforced"
        soft = inputs.get("softDeletePolicy") or {}
        assert soft.get("retentionDurationSeconds", 0) >= 7 * 86400, f"{bucket}: no soft delete"
        retention = inputs.get("retentionPolicy") or {}
        assert int(retention.get("retentionPeriod", 0)) > 0, f"{bucket}: no retention policy"
        assert not (inputs.get("versioning") or {}).get("enabled"), (
            f"{bucket}: GCS rejects versioning together with a retention policy"
        )
        assert inputs["location"].lower() != "europe-west1", f"{bucket}: in the main region"
        assert inputs["location"].lower() == prod_config.gcp.backup_region, (
            f"{bucket}: not in gcp.backup_region"
        )


def test_each_secret_is_readable_by_exactly_its_services(
    prod: ProdRun, prod_config: StackConfig
) -> None:
    readers: dict[str, set[str]] = {}
    for binding in prod.run.of_type(SECRET_READER):
        inputs = binding.inputs
        role = inputs["role"]
        assert role == "roles/secretmanager.secretAccessor", f"{binding}: {role}"
        readers.setdefault(inputs["secretId"], set()).add(inputs["member"])
    expected: dict[str, set[str]] = {}
    for spec in prod_config.services:
        own = {sa_member(naming.service_account_base(spec.name))}
        for kind in naming.LOGIN_SUFFIXES:
            expected[prod_secret_id(naming.postgres_secret_id(spec.name, kind))] = own
        expected[prod_secret_id(naming.rabbitmq_secret_id(spec.name))] = own
        if spec.redis:
            expected[prod_secret_id(naming.redis_secret_id(spec.name))] = own
    for job_secret in (backup_job.ADMIN_SECRET, backup_job.STACK_SECRET):
        expected[prod_secret_id(job_secret)] = {sa_member("backup-job")}
    if prod_config.rabbitmq_nodes > 1:
        # The cluster's Erlang cookie: the broker VMs only.
        expected[prod_secret_id(rabbitmq_cluster.COOKIE_SECRET_ID)] = {sa_member("rabbitmq-vm")}
    declared = {s.inputs["secretId"] for s in prod.run.of_type(SECRET)}
    assert declared == set(expected), f"secrets: {sorted(declared ^ set(expected))}"
    for secret_id, members in expected.items():
        assert readers.get(secret_id) == members, (
            f"secret {secret_id}: readers {sorted(readers.get(secret_id, []))}, "
            f"expected {sorted(members)}"
        )


def test_no_project_wide_secret_access(prod: ProdRun) -> None:
    for grant in prod.run.of_type("gcp:projects/iAMMember:IAMMember"):
        assert "secretmanager" not in grant.inputs["role"], (
            f"{grant}: secrets are granted per secret, never project-wide"
        )


def test_every_secret_value_is_a_pulumi_secret(prod: ProdRun) -> None:
    versions = prod.run.of_type("gcp:secretmanager/secretVersion:SecretVersion")
    assert versions
    for version in versions:
        assert version.input_is_secret("secretData"), f"{version}: secretData is not secret"
    for user in prod.run.of_type("gcp:sql/user:User"):
        assert user.input_is_secret("password"), f"{user}: password is not secret"
    for vm in prod.run.of_type(VM):
        assert vm.input_is_secret("metadata"), f"{vm}: metadata holds definitions; must be secret"


def test_scheduler_jobs_and_workflows_run_as_their_own_accounts(prod: ProdRun) -> None:
    """The workflow's trigger runs as the export account; the backup job's as its trigger."""
    expected = {
        "workflowexecutions.googleapis.com": identities.BACKUP_ACCOUNT_ID,
        "run.googleapis.com": "backup-trigger",
    }
    email = sa_member(identities.BACKUP_ACCOUNT_ID).removeprefix("serviceAccount:")
    jobs = prod.run.of_type(JOB)
    workflows = prod.run.of_type(WORKFLOW)
    assert len(jobs) == 2, "expected the export's and the backup job's Cloud Scheduler jobs"
    assert workflows, "expected a Cloud Workflows workflow"
    for job in jobs:
        target = job.inputs["httpTarget"]
        api = target["uri"].split("/")[2]
        token = target.get("oauthToken") or target.get("oidcToken") or {}
        wanted = sa_member(expected[api]).removeprefix("serviceAccount:")
        assert token.get("serviceAccountEmail") == wanted, f"{job}: runs as {token}"
    for workflow in workflows:
        assert workflow.inputs["serviceAccount"] == email, f"{workflow}: runs as another account"


def test_export_account_holds_only_its_custom_role(prod: ProdRun) -> None:
    member = sa_member(identities.BACKUP_ACCOUNT_ID)
    grants = [
        r
        for r in gcp_resources(prod)
        if any(k.endswith("member") and v == member for k, v in walk(r.inputs))
    ]
    roles = {g.inputs.get("role") for g in grants}
    role = prod.run.one("gcp:projects/iAMCustomRole:IAMCustomRole", "backup-export-role")
    assert roles == {f"projects/{PROJECT_ID}/roles/{role.inputs['roleId']}"}, (
        f"export account grants: {roles}"
    )
    permissions = role.inputs["permissions"]
    assert sorted(permissions) == sorted(identities.BACKUP_PERMISSIONS), f"{role}: {permissions}"
    assert not any("*" in p or p.endswith((".setIamPolicy", ".delete")) for p in permissions)


def test_bucket_grants_are_object_level_and_the_job_is_confined_to_its_prefix(
    prod: ProdRun,
) -> None:
    """Writers may only create objects; the backup job's custom role is bound on its prefix."""
    grants = prod.run.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    members = {g.inputs["member"] for g in grants}
    job_member = sa_member("backup-job")
    for grant in grants:
        if grant.inputs["member"] == job_member:
            condition = grant.inputs.get("condition") or {}
            assert f"/objects/{backup_job.JOB_PREFIX}/" in condition.get("expression", ""), (
                f"{grant}: the job's grant must be limited to its prefix"
            )
            role = prod.run.one(
                "gcp:projects/iAMCustomRole:IAMCustomRole", "backup-job-objects-role"
            )
            assert grant.inputs["role"].endswith(f"/roles/{role.inputs['roleId']}"), f"{grant}"
            assert sorted(role.inputs["permissions"]) == sorted(backup_job.OBJECT_PERMISSIONS)
            assert all(p.startswith("storage.objects.") for p in role.inputs["permissions"])
        else:
            assert grant.inputs["role"] == "roles/storage.objectCreator", f"{grant}"
    agent = "serviceAccount:service-123456789@gcp-sa-memorystore.iam.gserviceaccount.com"
    assert agent in members, f"Memorystore agent missing: {members}"
    assert job_member in members, f"backup job missing: {members}"
    assert not any("gcp-sa-cloud-sql" in m for m in members), "Cloud SQL exports are gone"


def test_secret_exports_are_marked_secret(prod: ProdRun) -> None:
    sensitive = {k for k in prod.run.exports if "password" in k or k.endswith("admin_url")}
    assert "redis_admin_url" in sensitive, "expected admin passwords and URLs in the outputs"
    assert sensitive <= prod.run.secret_exports, (
        f"not secret: {sorted(sensitive - prod.run.secret_exports)}"
    )
    for key, value in prod.run.exports.items():
        if key in prod.run.secret_exports:
            continue
        text = json.dumps(value, default=str)
        assert "postgresql://" not in text, f"{key} leaks a URL"
        assert "amqp://" not in text, f"{key} leaks a URL"
        assert "rediss://" not in text, f"{key} leaks a URL"


def test_every_database_and_cache_requires_encryption_and_keeps_backups(prod: ProdRun) -> None:
    for sql in prod.run.of_type(SQL):
        settings = sql.inputs["settings"]
        assert settings["ipConfiguration"]["sslMode"] in (
            "ENCRYPTED_ONLY",
            "TRUSTED_CLIENT_CERTIFICATE_REQUIRED",
        ), f"{sql}: unencrypted connections allowed"
        if sql.inputs.get("masterInstanceName"):
            # A read replica: Cloud SQL backs up its primary, which must be one of ours.
            primaries = {p.inputs["name"] for p in prod.run.of_type(SQL)}
            assert sql.inputs["masterInstanceName"] in primaries, f"{sql}: replica of what?"
            assert not settings.get("backupConfiguration"), f"{sql}: replicas take no backups"
            continue
        backup = settings["backupConfiguration"]
        assert backup["enabled"] is True, f"{sql}: automated backups off"
        assert backup["pointInTimeRecoveryEnabled"] is True, f"{sql}: point-in-time recovery off"
    for valkey in prod.run.of_type(VALKEY):
        inputs = valkey.inputs
        assert inputs["aclPolicy"], f"{valkey}: no ACL policy"
        assert inputs["transitEncryptionMode"] == "SERVER_AUTHENTICATION", f"{valkey}: no TLS"
        assert inputs["persistenceConfig"]["mode"] == "AOF", f"{valkey}: no persistence"
        assert inputs["automatedBackupConfig"]["retention"], f"{valkey}: no backups"
    for disk in prod.run.of_type(DISK):
        assert disk.inputs.get("resourcePolicies"), f"{disk}: no snapshot schedule"
