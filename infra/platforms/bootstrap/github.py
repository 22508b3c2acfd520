"""Keyless access for GitHub Actions: a Workload Identity Pool, its OIDC provider, two accounts.

No service account key exists: a workflow trades its GitHub OIDC token for a short-lived
Google token (``google-github-actions/auth``). The provider's attribute condition admits
tokens of one repository only; inside it, any job may act as the read-only preview account,
and only jobs of the deploy branch (``sub`` = ``repo:OWNER/NAME:ref:refs/heads/main``) or of
the deploy environment (``repo:OWNER/NAME:environment:prod``, the environment that requires
reviewers) may act as the deployer. Pull requests (``repo:OWNER/NAME:pull_request``) never match
the deployer, and pull requests from forks get no OIDC token at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.platforms.bootstrap.keys import StateKeys
from infra.platforms.gcp.context import GcpContext

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
POOL_ID = "github"
PROVIDER_ID = "github-actions"
PREVIEW_ACCOUNT_ID = "pulumi-preview"
DEPLOY_ACCOUNT_ID = "pulumi-deploy"
WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"

# What `pulumi preview --refresh` reads, and what the drift job's `db plan --check` needs (the
# Cloud SQL Auth Proxy connects with cloudsql.client). Predefined read-only roles only.
PREVIEW_ROLES = (
    "roles/compute.viewer",
    "roles/cloudsql.viewer",
    "roles/cloudsql.client",
    "roles/redis.viewer",  # the old Memorystore for Redis instance, while a stack keeps it
    "roles/memorystore.viewer",
    "roles/networkconnectivity.viewer",
    "roles/secretmanager.viewer",
    "roles/dns.reader",
    "roles/workflows.viewer",
    "roles/cloudscheduler.viewer",
    "roles/iam.securityReviewer",
    "roles/iam.serviceAccountViewer",
    "roles/storage.bucketViewer",
)

# Reads that no predefined read-only role grants, but that refreshing the prod stack performs:
# the private services connection, the old Memorystore for Redis instance's AUTH string (while a
# stack keeps it) and each secret version's value.
# The last two are secrets; the preview account can decrypt the stack's state, which holds the
# same values, so these widen nothing it could not already read.
PREVIEW_ROLE_ID = "persistencePreviewReader"
PREVIEW_PERMISSIONS = (
    "servicenetworking.services.get",
    "redis.instances.getAuthString",
    "secretmanager.versions.access",
)

# Exactly the roles README.md ("Prod on Google Cloud") lists for the deploying identity.
DEPLOY_ROLES = (
    "roles/compute.networkAdmin",
    "roles/compute.securityAdmin",
    "roles/compute.instanceAdmin.v1",
    "roles/servicenetworking.networksAdmin",
    "roles/cloudsql.admin",
    "roles/redis.admin",
    "roles/memorystore.admin",
    "roles/networkconnectivity.networkAdmin",
    "roles/secretmanager.admin",
    "roles/dns.admin",
    "roles/storage.admin",
    "roles/workflows.admin",
    "roles/cloudscheduler.admin",
    "roles/iam.serviceAccountAdmin",
    "roles/iam.serviceAccountUser",
    "roles/iam.roleAdmin",
    "roles/resourcemanager.projectIamAdmin",
    "roles/run.admin",
    "roles/artifactregistry.admin",
    "roles/monitoring.editor",
    "roles/logging.configWriter",
    "roles/cloudsql.client",
)

# On the state backend only (bucket- and key-level grants, never project-wide).
STATE_READER = "roles/storage.objectViewer"
STATE_LOCKER = "roles/storage.objectUser"
STATE_WRITER = "roles/storage.objectAdmin"
SECRETS_DECRYPTER = "roles/cloudkms.cryptoKeyDecrypter"
SECRETS_USER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"


@dataclass(frozen=True)
class GithubAccess:
    """The pool, its provider and the two accounts workflows impersonate."""

    pool: gcp.iam.WorkloadIdentityPool
    provider: gcp.iam.WorkloadIdentityPoolProvider
    preview: gcp.serviceaccount.Account
    deploy: gcp.serviceaccount.Account


def attribute_condition(repository: str) -> str:
    """The CEL condition every token must meet: it was issued to this repository's workflows."""
    return f"assertion.repository == '{repository}'"


def deploy_subjects(repository: str, branch: str, environment: str) -> tuple[str, ...]:
    """The only OIDC subjects that may deploy: the deploy branch, the deploy environment."""
    return (
        f"repo:{repository}:ref:refs/heads/{branch}",
        f"repo:{repository}:environment:{environment}",
    )


def declare(ctx: GcpContext, keys: StateKeys, state: gcp.storage.Bucket) -> GithubAccess:
    """Declare the pool, the provider, both accounts and each of their grants."""
    settings = ctx.config.bootstrap
    repository = settings.github_repository
    pool = gcp.iam.WorkloadIdentityPool(
        "github-pool",
        workload_identity_pool_id=POOL_ID,
        project=ctx.project,
        display_name="GitHub Actions",
        description=f"Workflows of {repository}",
        opts=ctx.opts(protect=True),  # a deleted pool's id cannot be reused for 30 days
    )
    provider = gcp.iam.WorkloadIdentityPoolProvider(
        "github-provider",
        workload_identity_pool_id=pool.workload_identity_pool_id,
        workload_identity_pool_provider_id=PROVIDER_ID,
        project=ctx.project,
        display_name="GitHub OIDC",
        attribute_mapping={
            "google.subject": "assertion.sub",
            "attribute.repository": "assertion.repository",
            "attribute.ref": "assertion.ref",
        },
        attribute_condition=attribute_condition(repository),
        oidc=gcp.iam.WorkloadIdentityPoolProviderOidcArgs(issuer_uri=GITHUB_ISSUER),
        opts=ctx.opts(),
    )
    preview = _account(ctx, PREVIEW_ACCOUNT_ID, "Pulumi preview", "Reads, never changes")
    deploy = _account(ctx, DEPLOY_ACCOUNT_ID, "Pulumi deploy", "Runs pulumi up from CI")

    _impersonation(
        ctx, "preview", preview, [pool.name.apply(lambda p: _repository_set(p, repository))]
    )
    _impersonation(
        ctx,
        "deploy",
        deploy,
        [
            pool.name.apply(lambda p, s=subject: _principal(p, s))  # type: ignore[misc]
            for subject in deploy_subjects(
                repository, settings.deploy_branch, settings.deploy_environment
            )
        ],
    )

    for role in PREVIEW_ROLES:
        _project_role(ctx, "preview", preview, role)
    reader = gcp.projects.IAMCustomRole(
        "preview-reader-role",
        project=ctx.project,
        role_id=PREVIEW_ROLE_ID,
        title="Pulumi preview: reads no predefined viewer role grants",
        description="Refresh reads of the prod stack; read-only",
        permissions=list(PREVIEW_PERMISSIONS),
        opts=ctx.opts(),
    )
    gcp.projects.IAMMember(
        "preview-reader",
        project=ctx.project,
        role=f"projects/{ctx.project}/roles/{PREVIEW_ROLE_ID}",
        member=preview.member,
        opts=ctx.opts(depends_on=[reader]),
    )
    for role in DEPLOY_ROLES:
        _project_role(ctx, "deploy", deploy, role)

    _bucket_role(ctx, "preview-reads-state", state, preview, STATE_READER)
    gcp.storage.BucketIAMMember(
        "state-preview-locks",
        bucket=state.name,
        role=STATE_LOCKER,
        member=preview.member,
        condition=gcp.storage.BucketIAMMemberConditionArgs(
            title="pulumi-locks-only",
            description="preview may take and release stack locks, nothing else",
            expression=state.name.apply(
                lambda name: (
                    f'resource.name.startsWith("projects/_/buckets/{name}/objects/.pulumi/locks/")'
                )
            ),
        ),
        opts=ctx.opts(),
    )
    _bucket_role(ctx, "deploy-writes-state", state, deploy, STATE_WRITER)
    _key_role(ctx, "preview", keys.secrets, preview, SECRETS_DECRYPTER)
    _key_role(ctx, "deploy", keys.secrets, deploy, SECRETS_USER)
    return GithubAccess(pool=pool, provider=provider, preview=preview, deploy=deploy)


def _repository_set(pool_name: str, repository: str) -> str:
    return f"principalSet://iam.googleapis.com/{pool_name}/attribute.repository/{repository}"


def _principal(pool_name: str, subject: str) -> str:
    return f"principal://iam.googleapis.com/{pool_name}/subject/{subject}"


def _account(ctx: GcpContext, account_id: str, title: str, what: str) -> gcp.serviceaccount.Account:
    return gcp.serviceaccount.Account(
        f"{account_id}-account",
        account_id=account_id,
        project=ctx.project,
        display_name=title,
        description=f"{what}; GitHub Actions only, through Workload Identity Federation",
        opts=ctx.opts(),
    )


def _impersonation(
    ctx: GcpContext,
    label: str,
    account: gcp.serviceaccount.Account,
    members: list[pulumi.Output[str]],
) -> None:
    for index, member in enumerate(members):
        gcp.serviceaccount.IAMMember(
            f"{label}-workload-identity-{index}",
            service_account_id=account.name,
            role=WORKLOAD_IDENTITY_USER,
            member=member,
            opts=ctx.opts(),
        )


def _project_role(
    ctx: GcpContext, label: str, account: gcp.serviceaccount.Account, role: str
) -> None:
    gcp.projects.IAMMember(
        f"{label}-{role.split('/')[-1]}",
        project=ctx.project,
        role=role,
        member=account.member,
        opts=ctx.opts(),
    )


def _bucket_role(
    ctx: GcpContext,
    name: str,
    bucket: gcp.storage.Bucket,
    account: gcp.serviceaccount.Account,
    role: str,
) -> None:
    gcp.storage.BucketIAMMember(
        f"state-{name}", bucket=bucket.name, role=role, member=account.member, opts=ctx.opts()
    )


def _key_role(
    ctx: GcpContext,
    label: str,
    key: gcp.kms.CryptoKey,
    account: gcp.serviceaccount.Account,
    role: str,
) -> None:
    gcp.kms.CryptoKeyIAMMember(
        f"secrets-key-{label}",
        crypto_key_id=key.id,
        role=role,
        member=account.member,
        opts=ctx.opts(),
    )
