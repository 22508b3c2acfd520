"""The bootstrap stack (``platform: bootstrap``): one ``persistence:bootstrap:Platform`` component.

What every other stack's workflows stand on: the KMS keys and the state bucket of the Pulumi
backend, and keyless access for GitHub Actions (a Workload Identity Pool, its provider, a
preview and a deploy service account). A project owner applies it by hand: it grants the
deployer its roles, so the deployer must never be the one that can change it.
"""

from __future__ import annotations

from typing import Any

import pulumi

from infra.config.model import StackConfig
from infra.platforms.bootstrap import github, keys, state
from infra.platforms.gcp.context import context_for

TYPE_TOKEN = "persistence:bootstrap:Platform"  # noqa: S105 - a type token, not a password


class BootstrapPlatform(pulumi.ComponentResource):
    """The CI identity and the state backend, with their children as attributes."""

    exports: dict[str, Any]

    def __init__(
        self, name: str, *, config: StackConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        ctx = context_for(config, self)
        self.keys = keys.declare(ctx)
        self.state_bucket = state.declare(ctx, self.keys)
        self.github = github.declare(ctx, self.keys, self.state_bucket)
        self.exports = {
            "platform": "bootstrap",
            "project": ctx.project,
            "state_backend_url": state.backend_url(self.state_bucket),
            "secrets_provider": self.keys.secrets.id.apply(lambda key: f"gcpkms://{key}"),
            "workload_identity_provider": self.github.provider.name,
            "preview_service_account": self.github.preview.email,
            "deploy_service_account": self.github.deploy.email,
            "github_repository": config.bootstrap.github_repository,
        }
        self.register_outputs(self.exports)
