"""Every stack output, described in one place; the program exports through this table.

Like terraform's ``outputs.tf``: each output's name, which platforms export it, what it holds
and whether it is a secret. ``export`` refuses an output missing from the table (and one the
table expects but the platform did not give), and marks the secret ones secret, so the table,
the program and the generated reference (``outputs_markdown``) cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

DOCKER = "docker"
GCP = "gcp"
BOOTSTRAP = "bootstrap"
PLATFORMS = (DOCKER, GCP, BOOTSTRAP)


@dataclass(frozen=True)
class StackOutput:
    """One output: where it exists, what it holds, and whether it must stay secret."""

    name: str
    platforms: tuple[str, ...]
    description: str
    secret: bool = False


def _out(name: str, platforms: str, description: str, *, secret: bool = False) -> StackOutput:
    return StackOutput(name, tuple(platforms.split()), description, secret)


OUTPUTS: tuple[StackOutput, ...] = (
    _out("platform", "docker gcp bootstrap", "The stack's platform: docker, gcp or bootstrap."),
    _out("project", "gcp bootstrap", "The Google Cloud project id (gcp:project)."),
    _out("region", "gcp", "The main region (gcp:region)."),
    _out("network", "docker gcp", "The private network: the Docker network or the VPC name."),
    # PostgreSQL
    _out(
        "postgres_admin_url",
        "docker",
        "libpq URL of the non-superuser admin, for `python -m infra db ...` and `rebuild`.",
        secret=True,
    ),
    _out("postgres_instance", "gcp", "The Cloud SQL instance's name."),
    _out(
        "postgres_connection_name",
        "gcp",
        "The instance's connection name (project:region:instance), for the Cloud SQL Auth Proxy.",
    ),
    _out("postgres_host", "gcp", "The private DNS name services connect to PostgreSQL by."),
    _out("postgres_port", "gcp", "PostgreSQL's port."),
    _out("postgres_private_ip", "gcp", "The instance's private IP address."),
    _out("postgres_admin_user", "gcp", "The built-in admin login that provisions services."),
    _out("postgres_admin_password", "gcp", "The admin login's password.", secret=True),
    _out(
        "provisioning_endpoint",
        "gcp",
        "Host and port the deployer reaches the instance on (the Auth Proxy's listener).",
    ),
    # Redis
    _out(
        "redis_admin_url",
        "docker",
        "URL of Redis's admin ACL user, for backups and operators.",
        secret=True,
    ),
    _out("redis_host", "gcp", "The private DNS name services connect to Memorystore by."),
    _out("redis_port", "gcp", "Memorystore's TLS port."),
    _out("redis_private_ip", "gcp", "Memorystore's private IP address."),
    _out("redis_ca_certificates", "gcp", "PEM text of Memorystore's server CAs, for TLS."),
    _out("redis_auth_string", "gcp", "Memorystore's AUTH string.", secret=True),
    _out("redis_auth_secret", "gcp", "Secret Manager id holding the AUTH string."),
    # RabbitMQ
    _out(
        "rabbitmq_management_url",
        "docker",
        "The management UI and API on the loopback address (no password).",
    ),
    _out("rabbitmq_host", "gcp", "The private DNS name services connect to RabbitMQ by."),
    _out("rabbitmq_port", "gcp", "The AMQP port."),
    _out("rabbitmq_private_ip", "gcp", "The broker VM's fixed private IP address."),
    _out("rabbitmq_admin_user", "gcp", "The broker's administrator login."),
    _out("rabbitmq_admin_password", "gcp", "The administrator's password.", secret=True),
    # Services
    _out(
        "service_env",
        "docker",
        "Each service's env file text by service name; `make env` writes them (mode 0600).",
        secret=True,
    ),
    _out("service_accounts", "gcp", "Each service's service account email, by service name."),
    _out(
        "service_secrets",
        "gcp",
        "Each service's Secret Manager ids by login kind (app, migrator, readonly, rabbitmq).",
    ),
    _out(
        "credentials",
        "docker gcp",
        "Every generated password as the secrets file's JSON, for `rebuild` and drift checks.",
        secret=True,
    ),
    # Backups
    _out(
        "backup_bucket",
        "docker gcp",
        "Where backups go: a file:// folder (dev) or the GCS bucket's name (prod).",
    ),
    _out("backup_workflow", "gcp", "The Cloud Workflows workflow that exports Memorystore."),
    _out("backup_schedule", "gcp", "The Cloud Scheduler job that starts that workflow."),
    _out("backup_service_account", "gcp", "The Memorystore export's service account email."),
    _out("backup_job", "gcp", "The Cloud Run job that backs up, verifies and prunes."),
    _out("backup_job_schedule", "gcp", "The Cloud Scheduler job that starts the backup job."),
    _out("backup_job_service_account", "gcp", "The backup job's service account email."),
    _out("backup_job_image", "gcp", "The backup job's image, by digest."),
    _out("backup_job_bucket_url", "gcp", "The gs:// prefix the backup job writes its backups to."),
    _out(
        "verify_instance",
        "gcp",
        "The verification instance's name, or null when verification runs on the main one.",
    ),
    # Bootstrap
    _out("state_backend_url", "bootstrap", "The gs:// URL of the Pulumi state backend."),
    _out("secrets_provider", "bootstrap", "The gcpkms:// secrets provider of the stacks."),
    _out(
        "workload_identity_provider",
        "bootstrap",
        "The Workload Identity provider GitHub Actions authenticate through.",
    ),
    _out("preview_service_account", "bootstrap", "The account pull-request previews run as."),
    _out("deploy_service_account", "bootstrap", "The account deploys run as."),
    _out("github_repository", "bootstrap", "The repository allowed to use those accounts."),
)
BY_NAME = {output.name: output for output in OUTPUTS}


def for_platform(platform: str) -> tuple[StackOutput, ...]:
    """The outputs a stack of ``platform`` exports, in table order."""
    return tuple(output for output in OUTPUTS if platform in output.platforms)


def export(platform: str, values: Mapping[str, Any]) -> None:
    """``pulumi.export`` every output of ``platform``, secret where the table says so."""
    wanted = {output.name for output in for_platform(platform)}
    undescribed = sorted(set(values) - wanted)
    missing = sorted(wanted - set(values))
    if undescribed or missing:
        raise pulumi.RunError(
            f"the {platform} platform's outputs disagree with infra/outputs.py: "
            f"not described there: {undescribed}; described but not given: {missing}"
        )
    for output in for_platform(platform):
        value = values[output.name]
        pulumi.export(output.name, pulumi.Output.secret(value) if output.secret else value)


def outputs_markdown() -> str:
    """The outputs as a Markdown table, for the generated configuration reference."""
    lines = ["| output | stacks | secret | description |", "|---|---|---|---|"]
    for output in OUTPUTS:
        platforms = ", ".join(output.platforms)
        secret = "yes" if output.secret else ""
        lines.append(f"| `{output.name}` | {platforms} | {secret} | {output.description} |")
    return "\n".join(lines) + "\n"
