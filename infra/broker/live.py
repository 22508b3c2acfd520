"""The services' vhosts, users, permissions, exchanges, queues and policies, applied to the
RUNNING broker through the management API (never by restarting it with new boot definitions).

``POST /api/definitions`` imports the rendered definitions: it adds what is missing and updates
users (password hash, tags), permissions and policies in place; open connections of other
services stay up. Then the managed users and vhosts (tagged ``persistence-managed``) that the
definitions no longer hold are deleted, users first, exactly as ``broker prune`` does. What an
operator made by hand is never touched. A queue's arguments (type, dead-lettering) cannot change
on a live queue: the broker refuses such an import, the error names it, nothing restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from infra.broker import prune
from infra.broker.management import ManagementApi


@dataclass
class BrokerReport:
    """What an apply did: vhosts that were created, users and vhosts removed."""

    created_vhosts: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _names(entries: Any) -> set[str]:
    return {str(e["name"]) for e in entries or [] if isinstance(e, dict) and "name" in e}


def apply(api: ManagementApi, definitions: dict[str, Any]) -> BrokerReport:
    """Import ``definitions`` (``infra.render.rabbitmq.definitions``) and remove the managed
    users and vhosts it no longer holds. Idempotent: a second run changes nothing."""
    report = BrokerReport()
    before = _names(api.get("/api/vhosts"))
    api.post_json("/api/definitions", definitions)
    vhosts = api.get("/api/vhosts") or []
    report.created_vhosts = sorted(_names(vhosts) - before)
    removals = prune.plan_keeping(
        _names(definitions.get("users")),
        _names(definitions.get("vhosts")),
        api.get("/api/users") or [],
        vhosts,
    )
    prune.apply(api, removals)
    report.removed = [f"{r.kind} {r.name}" for r in removals]
    return report
