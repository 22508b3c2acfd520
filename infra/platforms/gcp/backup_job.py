"""The verified backups in prod: a Cloud Run job running ``python -m infra backup-run``.

Cloud Scheduler starts one execution per ``backup.schedule`` tick: ``backup`` (a ``pg_dump``
per service database), ``verify`` (restore into a scratch database, compare row counts) and
``prune``, into ``gs://<backup bucket>/verified/``, the same manifests and verification records
as dev. The job reaches Cloud SQL over Direct VPC egress (no connector to run or pay for) by
the private DNS name the services use.

Two identities, each with exactly what it uses:

- the job's account reads its secrets (the admin password, the job's stack file and, when the
  deploy has one, the backup key), may create, read, list and delete objects under
  ``verified/`` only (retention still refuses early deletes), and is a Cloud SQL client of the
  instances it backs up and verifies on;
- the trigger's account (Cloud Scheduler's OAuth identity) may run this one job, nothing else.

Memorystore is not in this job: Memorystore refuses replication (``valkey-cli --rdb``), so its
backups and their RDB export stay in the Cloud Workflows workflow (``backup_jobs``), which does
only that.
RabbitMQ's definitions are rendered from the stack config, so they are rebuilt from code; its
data disk has daily snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.backup import crypto
from infra.commands.backup import (
    ADMIN_PASSWORD_ENV,
    ADMIN_URL_ENV,
    BUCKET_ENV,
    VERIFY_ADMIN_URL_ENV,
)
from infra.platforms.docker.backup import backup_stack_file
from infra.platforms.gcp import names, secrets
from infra.platforms.gcp.context import GcpContext
from infra.platforms.gcp.network import Network
from infra.render import endpoints

JOB_PREFIX = "verified"  # the job's own prefix in the backup bucket
STACK_DIR = "/run/persistence"
NETWORK_TAG = "backup-job"
RUN_API = "https://run.googleapis.com/v2"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
TIME_ZONE = "Etc/UTC"
INVOKER = "roles/run.invoker"  # run.jobs.run on the one job it is granted on
SQL_CLIENT = "roles/cloudsql.client"
# What backup, verify and prune do in the bucket, and nothing else (no IAM, no bucket edits).
OBJECT_PERMISSIONS = (
    "storage.objects.create",  # backups, manifests, verification records
    "storage.objects.get",  # verify and restore read them back
    "storage.objects.list",  # list, find the newest verified backup
    "storage.objects.delete",  # prune (the retention policy still refuses early deletes)
)
ADMIN_SECRET = "backup-job-admin-password"  # noqa: S105 - a secret's id, not its value
STACK_SECRET = "backup-job-stack-file"  # noqa: S105 - a secret's id, not its value
KEY_SECRET = "backup-job-backup-key"  # noqa: S105 - a secret's id, not its value


@dataclass(frozen=True)
class BackupJob:
    """The job, its trigger and their identities."""

    job: gcp.cloudrunv2.Job
    scheduler: gcp.cloudscheduler.Job
    account: gcp.serviceaccount.Account
    trigger: gcp.serviceaccount.Account


def job_args(stack_file: str) -> list[str]:
    """The job's command line (the image's entrypoint is ``python -m infra``); the e2e suite
    runs exactly this from the image it builds."""
    return ["backup-run", "--stack", stack_file]


def stack_file_path(ctx: GcpContext) -> str:
    """Where the job finds its stack file (a Secret Manager volume)."""
    return stack_file_path_for(ctx.stack)


def stack_file_path_for(stack: str) -> str:
    return f"{STACK_DIR}/Pulumi.{stack}.yaml"


def admin_url(ctx: GcpContext, host: str) -> str:
    """The admin login's URL without a password; Cloud SQL requires TLS."""
    user = ctx.config.postgres.admin_user
    return f"postgresql://{user}@{host}:{endpoints.POSTGRES_PORT}/postgres?sslmode=require"


def declare(
    ctx: GcpContext,
    *,
    network: Network,
    bucket: gcp.storage.Bucket,
    image: pulumi.Input[str],
    admin_password: pulumi.Output[str],
    sql_instances: list[str],
    verify_host: pulumi.Input[str] | None = None,
    backup_key: pulumi.Output[str] | None = None,
) -> BackupJob:
    """Declare both accounts, their grants, the job's secrets, the job and its schedule.

    With a ``backup_key`` (``infra.platforms.backup_key``), the job seals and authenticates
    every backup with it, read from a secret only the job's account may access.
    """
    account = gcp.serviceaccount.Account(
        "backup-job-service-account",
        account_id=ctx.account_id("backup-job"),
        display_name=f"Backup job ({ctx.stack})",
        description="Runs backup-run: reads its secrets, writes verified/ in the bucket",
        opts=ctx.opts(),
    )
    trigger = gcp.serviceaccount.Account(
        "backup-trigger-service-account",
        account_id=ctx.account_id("backup-trigger"),
        display_name=f"Backup trigger ({ctx.stack})",
        description="Cloud Scheduler's identity: may run the backup job, nothing else",
        opts=ctx.opts(),
    )
    readers = {"backup-job": account.member}
    admin_secret = secrets.declare_secret(ctx, ADMIN_SECRET, admin_password, readers)
    stack_secret = secrets.declare_secret(
        ctx, STACK_SECRET, pulumi.Output.from_input(backup_stack_file(ctx.config)), readers
    )
    _grant_bucket(ctx, bucket, account)
    _grant_sql_client(ctx, account, sql_instances)

    stack_endpoints = endpoints.for_stack(ctx.config)
    envs = [
        _env(BUCKET_ENV, bucket.name.apply(lambda b: f"gs://{b}/{JOB_PREFIX}")),
        _env(ADMIN_URL_ENV, admin_url(ctx, stack_endpoints.postgres_host)),
        _secret_env(ADMIN_PASSWORD_ENV, admin_secret),
        _env("CI", "1"),  # no progress redraws in the job's logs
    ]
    if backup_key is not None:
        key_secret = secrets.declare_secret(ctx, KEY_SECRET, backup_key, readers)
        envs.append(_secret_env(crypto.KEY_ENV, key_secret))
    if verify_host is not None:
        envs.append(
            _env(
                VERIFY_ADMIN_URL_ENV,
                pulumi.Output.from_input(verify_host).apply(lambda h: admin_url(ctx, h)),
            )
        )
    job = gcp.cloudrunv2.Job(
        "backup-job",
        name=ctx.name("backup", names.CLOUD_RUN),
        location=ctx.region,
        launch_stage="GA",
        deletion_protection=False,
        labels=ctx.labels,
        template=gcp.cloudrunv2.JobTemplateArgs(
            task_count=1,
            parallelism=1,
            labels=ctx.labels,
            template=gcp.cloudrunv2.JobTemplateTemplateArgs(
                service_account=account.email,
                timeout=f"{ctx.config.gcp.backup_job_timeout_minutes * 60}s",
                # A retry would back everything up again; the next tick is the retry, and a
                # failed execution alerts.
                max_retries=0,
                execution_environment="EXECUTION_ENVIRONMENT_GEN2",
                vpc_access=gcp.cloudrunv2.JobTemplateTemplateVpcAccessArgs(
                    # All traffic through the VPC: private DNS names resolve, Google APIs go
                    # through Private Google Access, nothing leaves by a public path.
                    egress="ALL_TRAFFIC",
                    network_interfaces=[
                        gcp.cloudrunv2.JobTemplateTemplateVpcAccessNetworkInterfaceArgs(
                            network=network.vpc.id,
                            subnetwork=network.subnet.id,
                            tags=[NETWORK_TAG],
                        )
                    ],
                ),
                containers=[
                    gcp.cloudrunv2.JobTemplateTemplateContainerArgs(
                        image=image,
                        args=job_args(stack_file_path(ctx)),
                        envs=envs,
                        resources=gcp.cloudrunv2.JobTemplateTemplateContainerResourcesArgs(
                            limits={"cpu": "2", "memory": "4Gi"}
                        ),
                        volume_mounts=[
                            gcp.cloudrunv2.JobTemplateTemplateContainerVolumeMountArgs(
                                name="stack", mount_path=STACK_DIR
                            )
                        ],
                    )
                ],
                volumes=[
                    gcp.cloudrunv2.JobTemplateTemplateVolumeArgs(
                        name="stack",
                        secret=gcp.cloudrunv2.JobTemplateTemplateVolumeSecretArgs(
                            secret=stack_secret,
                            items=[
                                gcp.cloudrunv2.JobTemplateTemplateVolumeSecretItemArgs(
                                    path=f"Pulumi.{ctx.stack}.yaml", version="latest"
                                )
                            ],
                        ),
                    )
                ],
            ),
        ),
        opts=ctx.opts(),
    )
    gcp.cloudrunv2.JobIamMember(
        "backup-job-trigger-invoker",
        project=ctx.project,
        location=ctx.region,
        name=job.name,
        role=INVOKER,
        member=trigger.member,
        opts=ctx.opts(),
    )
    scheduler = _schedule(ctx, job, trigger)
    return BackupJob(job=job, scheduler=scheduler, account=account, trigger=trigger)


def _env(name: str, value: pulumi.Input[str]) -> gcp.cloudrunv2.JobTemplateTemplateContainerEnvArgs:
    return gcp.cloudrunv2.JobTemplateTemplateContainerEnvArgs(name=name, value=value)


def _secret_env(
    name: str, secret: pulumi.Input[str]
) -> gcp.cloudrunv2.JobTemplateTemplateContainerEnvArgs:
    """An environment variable read from a secret's latest version when the job starts."""
    return gcp.cloudrunv2.JobTemplateTemplateContainerEnvArgs(
        name=name,
        value_source=gcp.cloudrunv2.JobTemplateTemplateContainerEnvValueSourceArgs(
            secret_key_ref=gcp.cloudrunv2.JobTemplateTemplateContainerEnvValueSourceSecretKeyRefArgs(
                secret=secret, version="latest"
            )
        ),
    )


def object_condition(bucket: str) -> str:
    """CEL: objects under ``verified/`` only; listing is checked on the bucket itself."""
    return (
        'resource.type == "storage.googleapis.com/Bucket" || '
        f'resource.name.startsWith("projects/_/buckets/{bucket}/objects/{JOB_PREFIX}/")'
    )


def _grant_bucket(
    ctx: GcpContext, bucket: gcp.storage.Bucket, account: gcp.serviceaccount.Account
) -> None:
    """A custom role with the four object permissions, bound on the bucket, on the prefix."""
    role = ctx.custom_role(
        "backup-job-objects-role",
        "persistenceBackupJob",
        "Persistence backup job objects",
        "Create, read, list and delete backup objects (granted on one prefix)",
        list(OBJECT_PERMISSIONS),
    )
    gcp.storage.BucketIAMMember(
        "backups-backup-job-objects",
        bucket=bucket.name,
        role=role,
        member=account.member,
        condition=gcp.storage.BucketIAMMemberConditionArgs(
            title="verified-prefix-only",
            description=f"Objects under {JOB_PREFIX}/ only",
            expression=bucket.name.apply(object_condition),
        ),
        opts=ctx.opts(),
    )


def _grant_sql_client(
    ctx: GcpContext, account: gcp.serviceaccount.Account, instances: list[str]
) -> None:
    """Cloud SQL client, on the named instances only (Cloud SQL has no instance-level IAM)."""
    allowed = " || ".join(
        f'resource.name == "projects/{ctx.project}/instances/{name}"' for name in instances
    )
    gcp.projects.IAMMember(
        "backup-job-sql-client",
        project=ctx.project,
        role=SQL_CLIENT,
        member=account.member,
        condition=gcp.projects.IAMMemberConditionArgs(
            title="backed-up-instances-only",
            description="The instances the backup job backs up and verifies on",
            expression=f'resource.service == "sqladmin.googleapis.com" && ({allowed})',
        ),
        opts=ctx.opts(),
    )


def run_uri(ctx: GcpContext, job_name: str) -> str:
    """The Cloud Run Admin API call that starts one execution of the job."""
    return f"{RUN_API}/projects/{ctx.project}/locations/{ctx.region}/jobs/{job_name}:run"


def _schedule(
    ctx: GcpContext, job: gcp.cloudrunv2.Job, trigger: gcp.serviceaccount.Account
) -> gcp.cloudscheduler.Job:
    """Start an execution on ``backup.schedule`` (UTC), as the trigger account."""
    return gcp.cloudscheduler.Job(
        "backup-job-schedule",
        name=ctx.name("backup-run"),
        region=ctx.region,
        description="Starts the verified backup job (backup, verify, prune)",
        schedule=ctx.config.backup.schedule,
        time_zone=TIME_ZONE,
        attempt_deadline="180s",
        retry_config=gcp.cloudscheduler.JobRetryConfigArgs(
            retry_count=3, min_backoff_duration="60s", max_backoff_duration="600s"
        ),
        http_target=gcp.cloudscheduler.JobHttpTargetArgs(
            uri=job.name.apply(lambda name: run_uri(ctx, name)),
            http_method="POST",
            oauth_token=gcp.cloudscheduler.JobHttpTargetOauthTokenArgs(
                service_account_email=trigger.email, scope=CLOUD_PLATFORM_SCOPE
            ),
        ),
        opts=ctx.opts(depends_on=[job]),
    )
