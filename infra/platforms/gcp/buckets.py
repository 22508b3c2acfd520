"""The backup bucket: in the backup region, private, soft-deleting, with a retention lock window.

GCS forbids object versioning together with a retention policy, so versioning stays off and
every backup object gets a unique, timestamped name instead (see ``workflow.py``).
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra.platforms.gcp import names
from infra.platforms.gcp.context import GcpContext

DAY_SECONDS = 24 * 3600
OBJECT_CREATOR = "roles/storage.objectCreator"


def bucket_name(ctx: GcpContext) -> str:
    """Globally unique by including the project id and the stack (see ``names``)."""
    return names.scoped(f"{ctx.project}-{ctx.prefix}", "backups", names.BUCKET)


def declare(ctx: GcpContext) -> gcp.storage.Bucket:
    """Declare the bucket; writers are granted separately (object-create only)."""
    backup = ctx.config.backup
    return gcp.storage.Bucket(
        "backups",
        name=bucket_name(ctx),
        location=ctx.config.gcp.backup_region.upper(),
        storage_class="STANDARD",
        uniform_bucket_level_access=True,
        public_access_prevention="enforced",
        versioning=gcp.storage.BucketVersioningArgs(enabled=False),
        soft_delete_policy=gcp.storage.BucketSoftDeletePolicyArgs(
            retention_duration_seconds=backup.soft_delete_days * DAY_SECONDS
        ),
        retention_policy=gcp.storage.BucketRetentionPolicyArgs(
            retention_period=str(backup.retention_days * DAY_SECONDS),
            # Locking is irreversible; an operator locks it deliberately (see README).
            is_locked=False,
        ),
        lifecycle_rules=[
            gcp.storage.BucketLifecycleRuleArgs(
                action=gcp.storage.BucketLifecycleRuleActionArgs(
                    type="SetStorageClass", storage_class="COLDLINE"
                ),
                condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                    age=backup.coldline_after_days, matches_storage_classes=["STANDARD"]
                ),
            ),
            gcp.storage.BucketLifecycleRuleArgs(
                action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                    age=backup.delete_after_days
                ),
            ),
        ],
        force_destroy=False,
        labels=ctx.labels,
        opts=ctx.opts(protect=True),
    )


OBJECT_VIEWER = "roles/storage.objectViewer"


def grant_object_read(
    ctx: GcpContext,
    bucket: gcp.storage.Bucket,
    label: str,
    member: pulumi.Input[str],
    uris: tuple[str, ...],
) -> list[gcp.storage.BucketIAMMember]:
    """Let ``member`` read exactly the objects ``uris`` names in the bucket (an IAM condition on
    their names), and nothing else; objects in other buckets are not ours to grant."""
    prefix = f"gs://{bucket_name(ctx)}/"
    objects = [uri.removeprefix(prefix) for uri in uris if uri.startswith(prefix)]
    if not objects:
        return []
    expression = " || ".join(
        f'resource.name == "projects/_/buckets/{bucket_name(ctx)}/objects/{name}"'
        for name in objects
    )
    return [
        gcp.storage.BucketIAMMember(
            f"backups-{label}-object-reader",
            bucket=bucket.name,
            role=OBJECT_VIEWER,
            member=member,
            condition=gcp.storage.BucketIAMMemberConditionArgs(
                title=f"{label} reads its import",
                description="only the RDB files the new instance loads",
                expression=expression,
            ),
            opts=ctx.opts(),
        )
    ]


def grant_object_create(
    ctx: GcpContext, bucket: gcp.storage.Bucket, writers: dict[str, pulumi.Input[str]]
) -> None:
    """Let each writer (label -> IAM member) create objects, and do nothing else, in the bucket."""
    for label, member in writers.items():
        gcp.storage.BucketIAMMember(
            f"backups-{label}-object-creator",
            bucket=bucket.name,
            role=OBJECT_CREATOR,
            member=member,
            opts=ctx.opts(),
        )
