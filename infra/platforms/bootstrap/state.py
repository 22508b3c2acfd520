"""The bucket every other stack keeps its Pulumi state in (``PULUMI_BACKEND_URL=gs://...``).

Private (uniform access, public access prevention), versioned (a bad write or a deleted
checkpoint can be brought back) and encrypted with our own KMS key, which Cloud Storage's
service agent is allowed to use before the bucket is created.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra.platforms.bootstrap.keys import StateKeys
from infra.platforms.gcp.context import GcpContext

KEY_USER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"


def bucket_name(ctx: GcpContext) -> str:
    """Globally unique through the project id."""
    return f"{ctx.project}-pulumi-state"


def backend_url(bucket: gcp.storage.Bucket) -> pulumi.Output[str]:
    """What the workflows and operators set as ``PULUMI_BACKEND_URL``."""
    return bucket.name.apply(lambda name: f"gs://{name}")


def declare(ctx: GcpContext, keys: StateKeys) -> gcp.storage.Bucket:
    """Declare the state bucket, after letting Cloud Storage encrypt with the object key."""
    settings = ctx.config.bootstrap
    agent = gcp.storage.get_project_service_account_output(project=ctx.project)
    agent_grant = gcp.kms.CryptoKeyIAMMember(
        "state-objects-key-storage-agent",
        crypto_key_id=keys.objects.id,
        role=KEY_USER,
        member=agent.email_address.apply(lambda email: f"serviceAccount:{email}"),
        opts=ctx.opts(),
    )
    return gcp.storage.Bucket(
        "state",
        name=bucket_name(ctx),
        location=settings.state_region.upper(),
        storage_class="STANDARD",
        uniform_bucket_level_access=True,
        public_access_prevention="enforced",
        versioning=gcp.storage.BucketVersioningArgs(enabled=True),
        encryption=gcp.storage.BucketEncryptionArgs(default_kms_key_name=keys.objects.id),
        lifecycle_rules=[
            gcp.storage.BucketLifecycleRuleArgs(
                action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                    num_newer_versions=settings.state_versions_kept, with_state="ARCHIVED"
                ),
            )
        ],
        force_destroy=False,
        labels=ctx.labels,
        opts=ctx.opts(protect=True, depends_on=[agent_grant]),
    )
