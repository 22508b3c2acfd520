"""What every platform component shares: one ComponentResource per stack, parts as attributes.

A platform declares its parts in ``declare`` (named steps, each kept as an attribute, as the
pulumi/examples components do) and returns the stack outputs; this base registers the
component, records those outputs as the component's own and keeps them for the entry point,
which exports them through ``infra.outputs``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pulumi

from infra.config.model import StackConfig


class PlatformComponent(pulumi.ComponentResource):
    """A whole stack as one component (``persistence:<platform>:Platform``)."""

    type_token: ClassVar[str]
    config: StackConfig
    exports: dict[str, Any]

    def __init__(
        self, name: str, *, config: StackConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(self.type_token, name, None, opts)
        self.config = config
        self.exports = self.declare()
        self.register_outputs(self.exports)

    def declare(self) -> dict[str, Any]:
        """Declare every part as a child; return the stack outputs (see ``infra.outputs``)."""
        raise NotImplementedError
