"""The prod backup job under mocks: registry, pushed image, Cloud Run job, its identities, its
trigger, and the optional verification instance. Inputs are checked against what they must
point at (the declared VPC, secret, account, job), so a wrong wire fails, not only a typo."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest

from infra.backup import crypto
from infra.commands.backup import (
    ADMIN_PASSWORD_ENV,
    ADMIN_URL_ENV,
    BUCKET_ENV,
    VERIFY_ADMIN_URL_ENV,
)
from infra.config import StackConfig
from infra.platforms.docker.backup import DOCKERFILE, REPO_ROOT
from infra.platforms.gcp import backup_job, names
from tests.unit.gcp_program import ProdRun, run_prod
from tests.unit.pulumi_mocks import Declared, stack_config

PROJECT_ID = "example-project"
REGION = "europe-west1"
RUN_JOB = "gcp:cloudrunv2/job:Job"
SCHEDULER = "gcp:cloudscheduler/job:Job"
ACCOUNT = "gcp:serviceaccount/account:Account"


@pytest.fixture(scope="module")
def prod() -> ProdRun:
    return run_prod()


def member(base: str) -> str:
    return f"serviceAccount:{names.account_id('prod', base)}@{PROJECT_ID}.iam.gserviceaccount.com"


def container(job: Declared) -> dict[str, Any]:
    (only,) = job.inputs["template"]["template"]["containers"]
    return dict(only)


def envs(job: Declared) -> dict[str, Any]:
    return {e["name"]: e for e in container(job)["envs"]}


def grants_of(prod: ProdRun, who: str) -> list[Declared]:
    """Every resource that names ``who`` as its member: the account's whole authority."""
    return [r for r in prod.run if r.type.startswith("gcp:") and r.inputs.get("member") == who]


def test_registry_is_a_docker_repository_in_the_main_region(prod: ProdRun) -> None:
    repository = prod.run.one("gcp:artifactregistry/repository:Repository")
    assert repository.inputs["format"] == "DOCKER", f"{repository}"
    assert repository.inputs["location"] == REGION, f"{repository}"
    assert repository.inputs["dockerConfig"]["immutableTags"] is True, f"{repository}"


def test_the_backup_image_is_built_from_a_public_postgres_image_and_pushed_there(
    prod: ProdRun, prod_config: StackConfig
) -> None:
    repository = prod.run.one("gcp:artifactregistry/repository:Repository")
    built = prod.run.one("docker:index/remoteImage:RemoteImage", "backup-job-image-build")
    pushed = prod.run.one("docker:index/registryImage:RegistryImage")
    path = f"{REGION}-docker.pkg.dev/{PROJECT_ID}/{repository.inputs['repositoryId']}/backup:"
    assert built.inputs["name"].startswith(path), f"{built}: {built.inputs['name']}"
    assert pushed.inputs["name"] == built.inputs["name"], f"{pushed}: pushes another image"
    build = built.inputs["build"]
    assert build["buildArgs"]["BASE_IMAGE"] == prod_config.gcp.backup_base_image
    assert prod_config.gcp.backup_base_image.startswith("postgres:"), "a public postgres image"
    assert build["dockerfile"] == str(DOCKERFILE.relative_to(REPO_ROOT)), f"{built}"
    assert build["platform"] == "linux/amd64", f"{built}: Cloud Run runs x86-64"
    auth = pushed.inputs["authConfig"]
    assert auth["address"] == f"{REGION}-docker.pkg.dev", f"{pushed}"
    assert auth["username"] == "oauth2accesstoken", f"{pushed}"
    assert pushed.raw_inputs["authConfig"] is not None
    assert "mock-oauth-access-token" not in json.dumps(
        {k: v for k, v in pushed.raw_inputs.items() if k != "authConfig"}
    )


def test_the_job_runs_the_pushed_image_by_digest(prod: ProdRun) -> None:
    job = prod.run.one(RUN_JOB)
    pushed = prod.run.one("docker:index/registryImage:RegistryImage")
    image = container(job)["image"]
    repository_path = pushed.inputs["name"].rsplit(":", 1)[0]
    assert image.startswith(f"{repository_path}@sha256:"), f"{job}: runs {image}"
    assert container(job)["args"] == [
        "backup-run",
        "--stack",
        backup_job.stack_file_path_for("prod"),
    ]


def test_the_job_has_direct_vpc_egress_into_the_declared_vpc(prod: ProdRun) -> None:
    job = prod.run.one(RUN_JOB)
    vpc = prod.run.one("gcp:compute/network:Network")
    subnet = prod.run.one("gcp:compute/subnetwork:Subnetwork")
    access = job.inputs["template"]["template"]["vpcAccess"]
    assert access["egress"] == "ALL_TRAFFIC", f"{job}: {access}"
    assert "connector" not in access, f"{job}: Direct VPC egress, no connector"
    (interface,) = access["networkInterfaces"]
    assert interface["network"] == f"{vpc.name}-id", f"{job}: {interface}"
    assert interface["subnetwork"] == f"{subnet.name}-id", f"{job}: {interface}"


def test_the_job_reads_its_admin_password_from_secret_manager_never_plaintext(
    prod: ProdRun,
) -> None:
    job = prod.run.one(RUN_JOB)
    env = envs(job)
    ref = env[ADMIN_PASSWORD_ENV]["valueSource"]["secretKeyRef"]
    admin_secret = prod.run.one(
        "gcp:secretmanager/secret:Secret", f"secret-{backup_job.ADMIN_SECRET}"
    )
    assert ref["secret"] == admin_secret.inputs["secretId"], f"{job}: {ref}"
    assert "value" not in env[ADMIN_PASSWORD_ENV], f"{job}: plaintext password"
    assert "mockpw" not in json.dumps(job.inputs), f"{job}: a password in the job's inputs"
    assert env[ADMIN_URL_ENV]["value"].startswith("postgresql://platform_admin@postgres.")
    assert "sslmode=require" in env[ADMIN_URL_ENV]["value"]
    bucket = prod.run.one("gcp:storage/bucket:Bucket")
    assert env[BUCKET_ENV]["value"] == f"gs://{bucket.inputs['name']}/{backup_job.JOB_PREFIX}"
    assert VERIFY_ADMIN_URL_ENV not in env, "verification defaults to the main instance"
    version = prod.run.one(
        "gcp:secretmanager/secretVersion:SecretVersion",
        f"secret-{backup_job.ADMIN_SECRET}-version",
    )
    assert version.input_is_secret("secretData"), f"{version}"


def test_the_job_reads_the_backup_key_from_a_secret_only_its_account_may_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The deploy passes PERSISTENCE_BACKUP_KEY; the job gets it from Secret Manager."""
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    monkeypatch.setenv(crypto.KEY_ENV, key)
    monkeypatch.delenv(crypto.KEY_FILE_ENV, raising=False)
    keyed = run_prod()
    job = keyed.run.one(RUN_JOB)
    ref = envs(job)[crypto.KEY_ENV]["valueSource"]["secretKeyRef"]
    secret = keyed.run.one("gcp:secretmanager/secret:Secret", f"secret-{backup_job.KEY_SECRET}")
    assert ref == {"secret": secret.inputs["secretId"], "version": "latest"}, f"{job}: {ref}"
    assert key not in json.dumps(job.inputs), f"{job}: the key in the job's inputs"
    version = keyed.run.one(
        "gcp:secretmanager/secretVersion:SecretVersion", f"secret-{backup_job.KEY_SECRET}-version"
    )
    assert version.input_is_secret("secretData"), f"{version}"
    assert version.inputs["secretData"] == key
    readers = [
        r.inputs["member"]
        for r in keyed.run.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
        if r.inputs["secretId"] == secret.inputs["secretId"]
    ]
    assert readers == [member("backup-job")], f"who may read the backup key: {readers}"


def test_without_a_key_the_job_has_none_and_the_program_still_evaluates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)
    monkeypatch.delenv(crypto.KEY_FILE_ENV, raising=False)
    unkeyed = run_prod()
    assert crypto.KEY_ENV not in envs(unkeyed.run.one(RUN_JOB))
    secrets = [s.name for s in unkeyed.run.of_type("gcp:secretmanager/secret:Secret")]
    assert f"secret-{backup_job.KEY_SECRET}" not in secrets


def test_the_job_runs_as_its_own_account_with_exactly_its_grants(
    prod: ProdRun, prod_config: StackConfig
) -> None:
    job = prod.run.one(RUN_JOB)
    own = member("backup-job")
    email = own.removeprefix("serviceAccount:")
    assert job.inputs["template"]["template"]["serviceAccount"] == email, f"{job}"
    grants = {
        (g.type.split(":")[-1], g.inputs["role"].rsplit("/", 1)[-1]) for g in grants_of(prod, own)
    }
    assert grants == {
        ("SecretIamMember", "secretmanager.secretAccessor"),
        ("BucketIAMMember", "persistenceBackupJob_prod"),
        ("IAMMember", "cloudsql.client"),
    }, grants
    secrets = {
        g.inputs["secretId"]
        for g in grants_of(prod, own)
        if g.type == "gcp:secretmanager/secretIamMember:SecretIamMember"
    }
    assert secrets == {
        names.scoped("persistence-prod", backup_job.ADMIN_SECRET, names.SECRET_ID),
        names.scoped("persistence-prod", backup_job.STACK_SECRET, names.SECRET_ID),
    }, secrets
    (sql_client,) = [g for g in grants_of(prod, own) if g.type.endswith("iAMMember:IAMMember")]
    sql = prod.run.one("gcp:sql/databaseInstance:DatabaseInstance")
    expression = sql_client.inputs["condition"]["expression"]
    assert f'"projects/{PROJECT_ID}/instances/{sql.inputs["name"]}"' in expression, expression


def test_the_scheduler_may_only_run_this_job(prod: ProdRun, prod_config: StackConfig) -> None:
    job = prod.run.one(RUN_JOB)
    scheduler = prod.run.one(SCHEDULER, "backup-job-schedule")
    assert scheduler.inputs["schedule"] == prod_config.backup.schedule, f"{scheduler}"
    assert scheduler.inputs["timeZone"] == "Etc/UTC"
    target = scheduler.inputs["httpTarget"]
    assert target["httpMethod"] == "POST"
    assert target["uri"] == (
        f"https://run.googleapis.com/v2/projects/{PROJECT_ID}/locations/{REGION}/jobs/"
        f"{job.inputs['name']}:run"
    ), f"{scheduler}: {target['uri']}"
    trigger = member("backup-trigger")
    assert target["oauthToken"]["serviceAccountEmail"] == trigger.removeprefix("serviceAccount:")
    (grant,) = grants_of(prod, trigger)
    assert grant.type == "gcp:cloudrunv2/jobIamMember:JobIamMember", f"{grant}"
    assert grant.inputs["role"] == "roles/run.invoker", f"{grant}"
    assert grant.inputs["name"] == job.inputs["name"], f"{grant}: another job"
    assert trigger != member("backup-job"), "the trigger must not be the job's own account"


def test_a_verification_instance_is_an_option(prod_config: StackConfig) -> None:
    config = stack_config("prod")
    gcp = json.loads(config["persistence:gcp"])
    gcp["verify_instance_tier"] = "db-g1-small"
    config["persistence:gcp"] = json.dumps(gcp)
    run = run_prod(config).run
    instances = {i.name: i for i in run.of_type("gcp:sql/databaseInstance:DatabaseInstance")}
    assert set(instances) == {"postgres", "postgres-verify"}, set(instances)
    verify = instances["postgres-verify"]
    assert verify.inputs["settings"]["tier"] == "db-g1-small"
    assert verify.inputs["settings"]["ipConfiguration"]["ipv4Enabled"] is False
    env = envs(run.one(RUN_JOB))
    assert env[VERIFY_ADMIN_URL_ENV]["value"].startswith("postgresql://platform_admin@10.30.0.3:")
    grant = run.one("gcp:projects/iAMMember:IAMMember", "backup-job-sql-client")
    assert verify.inputs["name"] in grant.inputs["condition"]["expression"]
