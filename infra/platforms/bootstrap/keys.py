"""The KMS keys of the state backend: one encrypts the state objects, one the stack secrets.

Two keys so that each grant stays narrow: Cloud Storage's service agent may use only the
object key, and the CI identities only the secrets key (``gcpkms://`` secrets provider).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi_gcp as gcp

from infra.platforms.gcp.context import GcpContext

DAY_SECONDS = 24 * 3600


@dataclass(frozen=True)
class StateKeys:
    """The key ring and its two keys."""

    ring: gcp.kms.KeyRing
    objects: gcp.kms.CryptoKey
    secrets: gcp.kms.CryptoKey


def declare(ctx: GcpContext) -> StateKeys:
    """Declare the ring and keys; protected, since losing a key loses what it encrypted."""
    settings = ctx.config.bootstrap
    ring = gcp.kms.KeyRing(
        "state-key-ring",
        name=f"{ctx.prefix}-state",
        location=settings.state_region,
        project=ctx.project,
        opts=ctx.opts(protect=True),
    )
    rotation = f"{settings.key_rotation_days * DAY_SECONDS}s"

    def key(name: str) -> gcp.kms.CryptoKey:
        return gcp.kms.CryptoKey(
            f"{name}-key",
            name=name,
            key_ring=ring.id,
            purpose="ENCRYPT_DECRYPT",
            rotation_period=rotation,
            labels=ctx.labels,
            opts=ctx.opts(protect=True),
        )

    return StateKeys(ring=ring, objects=key("state-objects"), secrets=key("pulumi-secrets"))
