"""Per-service PostgreSQL databases and least-privilege roles, converged over psycopg.

``engine.converge`` takes the services' models and plans or applies the statements that bring
each service's database and its owner/migrator/app/readonly roles to the role model; ``plan``
and ``apply`` build those models from a stack's config and credentials. The CLI
(``python -m infra db``) calls ``plan``/``apply``, the Pulumi dynamic provider
(``infra.provisioning``) calls ``engine.converge``.

The engine loads on first use, not with the package: the backup commands reach
``infra.postgres.driver`` long before (or without ever) converging anything. So the package
does not offer ``converge`` itself: that name is the submodule ``infra.postgres.converge``,
which replaces any attribute of that name once the engine has imported it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.postgres.engine import (
        ApplyReport,
        Converged,
        Plan,
        ServicePlan,
        apply,
        plan,
    )

__all__ = ["ApplyReport", "Converged", "Plan", "ServicePlan", "apply", "plan"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("infra.postgres.engine"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
