"""The scheduled Memorystore export: Cloud Scheduler (UTC, with retries) starts the workflow.

Both the job's OAuth token and the workflow run as the dedicated export account, whose custom
role holds only the permissions the workflow uses (see ``identities.BACKUP_PERMISSIONS``).
"""

from __future__ import annotations

import base64
import json

import pulumi_gcp as gcp

from infra.platforms.gcp.context import GcpContext
from infra.platforms.gcp.workflow import source

TIME_ZONE = "Etc/UTC"
EXECUTIONS_API = "https://workflowexecutions.googleapis.com/v1"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def declare(
    ctx: GcpContext,
    *,
    valkey_instance: str,
    bucket: str,
    service_account: gcp.serviceaccount.Account,
) -> tuple[gcp.workflows.Workflow, gcp.cloudscheduler.Job]:
    """Declare the workflow and the job that runs it on ``backup.schedule``."""
    name = ctx.name("redis-export")  # the name it has always had: renaming replaces it
    workflow = gcp.workflows.Workflow(
        "backup-workflow",
        name=name,
        region=ctx.region,
        description="Exports Memorystore to the backup bucket (databases: the backup job)",
        service_account=service_account.email,
        call_log_level="LOG_ERRORS_ONLY",
        source_contents=source(
            instance=valkey_instance,
            region=ctx.region,
            bucket=bucket,
            retention_days=ctx.config.backup.retention_days,
        ),
        deletion_protection=False,
        labels=ctx.labels,
        opts=ctx.opts(),
    )
    workflow_path = f"projects/{ctx.project}/locations/{ctx.region}/workflows/{name}"
    uri = f"{EXECUTIONS_API}/{workflow_path}/executions"
    body = json.dumps({"callLogLevel": "LOG_ERRORS_ONLY"}).encode()
    job = gcp.cloudscheduler.Job(
        "backup-schedule",
        name=name,
        region=ctx.region,
        description="Starts the backup export workflow",
        schedule=ctx.config.backup.schedule,
        time_zone=TIME_ZONE,
        attempt_deadline="180s",
        retry_config=gcp.cloudscheduler.JobRetryConfigArgs(
            retry_count=3,
            min_backoff_duration="60s",
            max_backoff_duration="600s",
            max_doublings=3,
        ),
        http_target=gcp.cloudscheduler.JobHttpTargetArgs(
            uri=uri,
            http_method="POST",
            headers={"Content-Type": "application/json"},
            body=base64.b64encode(body).decode(),
            oauth_token=gcp.cloudscheduler.JobHttpTargetOauthTokenArgs(
                service_account_email=service_account.email, scope=CLOUD_PLATFORM_SCOPE
            ),
        ),
        opts=ctx.opts(depends_on=[workflow]),
    )
    return workflow, job
