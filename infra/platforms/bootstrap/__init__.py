"""The bootstrap stack (``platform: bootstrap``): one ``persistence:bootstrap:Platform`` component.

What every other stack's workflows stand on: the KMS keys and the state bucket of the Pulumi
backend, and keyless access for GitHub Actions (a Workload Identity Pool, its provider, a
preview and a deploy service account). A project owner applies it by hand: it grants the
deployer its roles, so the deployer must never be the one that can change it.
"""

from __future__ import annotations

from typing import Any

import pulumi_gcp as gcp

from infra.platforms.bootstrap import github, keys, state
from infra.platforms.bootstrap.github import GithubAccess
from infra.platforms.bootstrap.keys import StateKeys
from infra.platforms.component import PlatformComponent
from infra.platforms.gcp.context import context_for

TYPE_TOKEN = "persistence:bootstrap:Platform"  # noqa: S105 - a type token, not a password


class BootstrapPlatform(PlatformComponent):
    """The CI identity and the state backend, with their children as attributes."""

    type_token = TYPE_TOKEN
    keys: StateKeys
    state_bucket: gcp.storage.Bucket
    github: GithubAccess

    def declare(self) -> dict[str, Any]:
        ctx = context_for(self.config, self)
        self.keys = keys.declare(ctx)
        self.state_bucket = state.declare(ctx, self.keys)
        self.github = github.declare(ctx, self.keys, self.state_bucket)
        return {
            "platform": "bootstrap",
            "project": ctx.project,
            "state_backend_url": state.backend_url(self.state_bucket),
            "secrets_provider": self.keys.secrets.id.apply(lambda key: f"gcpkms://{key}"),
            "workload_identity_provider": self.github.provider.name,
            "preview_service_account": self.github.preview.email,
            "deploy_service_account": self.github.deploy.email,
            "github_repository": self.config.bootstrap.github_repository,
        }
