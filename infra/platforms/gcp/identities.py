"""Service accounts: one per service, one for the RabbitMQ VM, one for the Memorystore export.

(The backup job's and its trigger's accounts live with the job, in ``backup_job``.)

Each identity gets exactly the grants its job needs, and never a basic role
(owner, editor, viewer): the policy tests check every IAM resource for that.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi_gcp as gcp

from infra import naming
from infra.platforms.gcp.context import GcpContext

# Bases of the account ids; ``ctx.account_id`` scopes them by stack (e.g. prod-rabbitmq-vm).
RABBITMQ_ACCOUNT_ID = "rabbitmq-vm"
BACKUP_ACCOUNT_ID = "backup-export"
RABBITMQ_VM_ROLES = ("roles/logging.logWriter", "roles/monitoring.metricWriter")

# Everything the Memorystore export workflow and its scheduler job call, and nothing else.
BACKUP_PERMISSIONS = (
    "memorystore.instances.backup",  # take an on-demand backup of the Valkey instance
    "memorystore.instances.get",  # read the instance's backup collection
    "memorystore.backups.export",  # export that backup into the bucket
    "memorystore.operations.get",  # read their long-running operations
    "workflows.executions.create",  # the scheduler job starts the workflow as this account
    "logging.logEntries.create",  # the workflow's call log
)


@dataclass(frozen=True)
class Identities:
    """Service accounts by purpose."""

    services: dict[str, gcp.serviceaccount.Account]
    rabbitmq: gcp.serviceaccount.Account
    backup: gcp.serviceaccount.Account


def declare(ctx: GcpContext) -> Identities:
    """Declare every service account and its project-level grants."""
    services = {
        spec.name: ctx.pacer.track(
            gcp.serviceaccount.Account(
                f"{spec.name}-service-account",
                account_id=ctx.account_id(naming.service_account_base(spec.name)),
                display_name=f"{spec.name} service ({ctx.stack})",
                description=f"Runs the {spec.name} service; reads only its own secrets",
                opts=ctx.opts(),
            )
        )
        for spec in ctx.config.services
    }
    rabbitmq = gcp.serviceaccount.Account(
        "rabbitmq-service-account",
        account_id=ctx.account_id(RABBITMQ_ACCOUNT_ID),
        display_name=f"RabbitMQ VM ({ctx.stack})",
        description="Writes the broker VM's logs and metrics, nothing else",
        opts=ctx.opts(),
    )
    for vm_role in RABBITMQ_VM_ROLES:
        gcp.projects.IAMMember(
            f"rabbitmq-{vm_role.split('/')[-1]}",
            project=ctx.project,
            role=vm_role,
            member=rabbitmq.member,
            opts=ctx.opts(),
        )
    backup = gcp.serviceaccount.Account(
        "backup-service-account",
        account_id=ctx.account_id(BACKUP_ACCOUNT_ID),
        display_name=f"Memorystore export ({ctx.stack})",
        description="Runs the scheduled Memorystore export workflow, nothing else",
        opts=ctx.opts(),
    )
    role = ctx.custom_role(
        "backup-export-role",
        "persistenceBackupExport",
        "Persistence backup export",
        "Start and watch Memorystore exports; run the export workflow",
        list(BACKUP_PERMISSIONS),
    )
    gcp.projects.IAMMember(
        "backup-export-role-binding",
        project=ctx.project,
        role=role,
        member=backup.member,
        opts=ctx.opts(),
    )
    return Identities(services=services, rabbitmq=rabbitmq, backup=backup)
