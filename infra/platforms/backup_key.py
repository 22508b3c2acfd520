"""The backup key a stack's backup jobs seal and authenticate backups with.

It comes from the deployer's environment, like a provider's credentials (``make`` writes one
once per checkout, next to the Pulumi passphrase; CI passes the ``PERSISTENCE_BACKUP_KEY``
secret), never from the stack config or a generated resource: the key is what proves a backup
is ours, so it must outlive every stack and every disaster that destroys one. Without it the
program still evaluates (previews and Pulumi's mocks need no credentials), warns, and the
backup jobs write unauthenticated backups.
"""

from __future__ import annotations

import base64

import pulumi

from infra.backup import crypto

MISSING_KEY_WARNING = (
    f"no backup key ({crypto.KEY_ENV} or {crypto.KEY_FILE_ENV}): this stack's backups will be "
    "neither encrypted nor authenticated, so anyone who can write the bucket can forge one "
    "(README.md, 'What a backup proves'); `make up` generates a key"
)


def stack_backup_key() -> pulumi.Output[str] | None:
    """The key as the text the backup CLI reads (a Pulumi secret), or None with a warning."""
    key = crypto.key_from_env()
    if key is None:
        pulumi.log.warn(MISSING_KEY_WARNING)
        return None
    return pulumi.Output.secret(base64.urlsafe_b64encode(key).decode())
