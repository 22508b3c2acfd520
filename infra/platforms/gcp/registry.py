"""Artifact Registry, and this repository's backup image built and pushed into it.

The prod backup job runs the same image as the dev backup container (``backup.Dockerfile``),
built from a public PostgreSQL image (``gcp.backup_base_image``) so ``pg_dump`` matches the
server's major version. It is built by the deploying machine's Docker engine
(``docker.RemoteImage``) and pushed by ``docker.RegistryImage`` with a short-lived OAuth token
of the deploying identity (``oauth2accesstoken``), so no registry key is ever created.

The tag is the hash of everything the image copies: an unchanged checkout builds nothing and
pushes nothing, and the repository keeps tags immutable. The job runs the image by digest.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_gcp as gcp

from infra.platforms.docker.backup import DOCKERFILE, REPO_ROOT, build_context_hash
from infra.platforms.gcp.context import GcpContext

IMAGE = "backup"
TAG_CHARS = 16
# Cloud Run runs x86-64 only; a deployer on ARM still builds the right image.
PLATFORM = "linux/amd64"
KEEP_VERSIONS = 10


@dataclass(frozen=True)
class Registry:
    """The repository, the pushed image and the digest reference the job runs."""

    repository: gcp.artifactregistry.Repository
    image: docker.RegistryImage
    reference: pulumi.Output[str]


def host(ctx: GcpContext) -> str:
    """The regional Artifact Registry Docker host, e.g. ``europe-west1-docker.pkg.dev``."""
    return f"{ctx.region}-docker.pkg.dev"


def declare(ctx: GcpContext) -> Registry:
    """Declare the repository, build the image locally and push it."""
    repository = gcp.artifactregistry.Repository(
        "images",
        repository_id=ctx.name("images"),
        location=ctx.region,
        format="DOCKER",
        description="Images the persistence platform runs (the backup job)",
        docker_config=gcp.artifactregistry.RepositoryDockerConfigArgs(immutable_tags=True),
        cleanup_policy_dry_run=False,
        cleanup_policies=[
            gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                id="keep-recent",
                action="KEEP",
                most_recent_versions=gcp.artifactregistry.RepositoryCleanupPolicyMostRecentVersionsArgs(
                    keep_count=KEEP_VERSIONS
                ),
            )
        ],
        labels=ctx.labels,
        opts=ctx.opts(),
    )
    context_hash = build_context_hash()
    name = pulumi.Output.concat(
        host(ctx),
        "/",
        ctx.project,
        "/",
        repository.repository_id,
        f"/{IMAGE}:",
        context_hash[:TAG_CHARS],
    )
    built = docker.RemoteImage(
        "backup-job-image-build",
        name=name,
        build=docker.RemoteImageBuildArgs(
            context=str(REPO_ROOT),
            dockerfile=str(DOCKERFILE.relative_to(REPO_ROOT)),
            build_args={"BASE_IMAGE": ctx.config.gcp.backup_base_image},
            platform=PLATFORM,
        ),
        triggers={"context": context_hash},
        keep_locally=True,
        opts=ctx.opts(),
    )
    token: pulumi.Output[str] = pulumi.Output.secret(
        gcp.organizations.get_client_config_output().access_token
    )
    pushed = docker.RegistryImage(
        "backup-job-image",
        name=built.name,
        auth_config=docker.RegistryImageAuthConfigArgs(
            address=host(ctx), username="oauth2accesstoken", password=token
        ),
        triggers={"context": context_hash},
        # Executions of older jobs may still reference it; the cleanup policy ages it out.
        keep_remotely=True,
        opts=ctx.opts(depends_on=[repository]),
    )
    reference = pulumi.Output.all(pushed.name, pushed.sha256_digest).apply(
        lambda parts: f"{parts[0].rsplit(':', 1)[0]}@{parts[1]}"
    )
    return Registry(repository=repository, image=pushed, reference=reference)
