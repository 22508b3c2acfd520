"""Which users and vhosts on a running broker belong to services that left the config.

Definitions loaded at boot only add, so removal is a separate, explicit step. Only what this
tool created (marked with ``MANAGED_TAG``) is ever a candidate; the admin user, hand-made users
and vhosts, and every service still in the config are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra import naming
from infra.broker.management import ManagementApi, quote
from infra.config.model import StackConfig
from infra.render.rabbitmq import MANAGED_TAG


@dataclass(frozen=True)
class Removal:
    """One user or vhost to delete."""

    kind: str  # "user" or "vhost"
    name: str

    @property
    def path(self) -> str:
        collection = "users" if self.kind == "user" else "vhosts"
        return f"/api/{collection}/{quote(self.name)}"


def _tags(entry: dict[str, Any]) -> set[str]:
    """Tags as a set, whether the broker returns a list (3.9+) or a comma-separated string."""
    found: set[str] = set()
    metadata = entry.get("metadata")
    for raw in (entry.get("tags"), metadata.get("tags") if isinstance(metadata, dict) else None):
        if isinstance(raw, str):
            found.update(tag.strip() for tag in raw.split(",") if tag.strip())
        elif isinstance(raw, list):
            found.update(str(tag) for tag in raw)
    return found


def plan(
    config: StackConfig, users: list[dict[str, Any]], vhosts: list[dict[str, Any]]
) -> list[Removal]:
    """Managed users and vhosts whose service is no longer in ``config``, users first."""
    keep_users = {naming.rabbitmq_user(s.name) for s in config.services}
    keep_users.add(config.rabbitmq.admin_user)
    keep_vhosts = {naming.rabbitmq_vhost(s.name) for s in config.services}
    return plan_keeping(keep_users, keep_vhosts, users, vhosts)


def plan_keeping(
    keep_users: set[str],
    keep_vhosts: set[str],
    users: list[dict[str, Any]],
    vhosts: list[dict[str, Any]],
) -> list[Removal]:
    """Managed users and vhosts not in ``keep_users``/``keep_vhosts``, users first."""
    removals = [
        Removal("user", user["name"])
        for user in users
        if MANAGED_TAG in _tags(user) and user["name"] not in keep_users
    ]
    removals += [
        Removal("vhost", vhost["name"])
        for vhost in vhosts
        if MANAGED_TAG in _tags(vhost) and vhost["name"] not in keep_vhosts
    ]
    return sorted(removals, key=lambda r: (r.kind != "user", r.name))


def find(config: StackConfig, api: ManagementApi) -> list[Removal]:
    """Ask the broker what exists and plan the removals."""
    return plan(config, api.get("/api/users") or [], api.get("/api/vhosts") or [])


def apply(api: ManagementApi, removals: list[Removal]) -> None:
    """Delete users before vhosts (a vhost's deletion also drops its queues and messages)."""
    for removal in removals:
        api.delete(removal.path)
