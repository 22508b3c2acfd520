"""Restoring what applications declared in their RabbitMQ vhosts from a definitions backup.

The backup is the broker's whole ``GET /api/definitions`` export. A restore takes from it only
the queues, exchanges, bindings and policies of the vhosts this stack manages, rebuilt field by
field from an allow-list, and imports them per vhost (``POST /api/definitions/{vhost}``): the
vhost comes from the URL, never from the file. Users, permissions, topic permissions, vhosts,
parameters (shovels, federation upstreams) and global parameters are never read from a backup:
they come from the stack (the rendered definitions the broker boots with), so a bucket writer
cannot add a user, a permission or a tag by planting a file. Whatever the stack itself declares
(its exchanges, dead-letter queues, configured queues and their policies) is the config's and is
not taken from the backup either, so a restore never rolls a changed setting back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from infra import naming
from infra.broker.management import ManagementApi, quote
from infra.config.model import StackConfig
from infra.credentials import Credentials
from infra.errors import BackupError, PlatformError
from infra.render.rabbitmq import definitions as rendered_definitions

SECTIONS = ("exchanges", "queues", "bindings", "policies")
# The keys of a policy definition that shape queues and exchanges inside their vhost; anything
# else (federation, shovels, anything a plugin might read) is refused.
POLICY_KEYS = frozenset(
    {
        "alternate-exchange",
        "dead-letter-exchange",
        "dead-letter-routing-key",
        "dead-letter-strategy",
        "delivery-limit",
        "expires",
        "max-age",
        "max-length",
        "max-length-bytes",
        "message-ttl",
        "overflow",
        "queue-leader-locator",
        "queue-master-locator",
        "queue-mode",
        "queue-version",
        "stream-max-segment-size-bytes",
    }
)
APPLY_TO = frozenset({"all", "queues", "exchanges", "classic_queues", "quorum_queues", "streams"})


@dataclass
class Selection:
    """What a backup may give back, per managed vhost, and what was refused (with why)."""

    per_vhost: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    from_config: int = 0  # items the stack declares itself: the config's, not the backup's
    other_vhosts: int = 0  # items of vhosts the stack does not manage: left alone


def _str(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key} is not a string")
    return value


def _bool(item: dict[str, Any], key: str, default: bool) -> bool:
    value = item.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{key} is not a boolean")
    return value


def _arguments(item: dict[str, Any]) -> dict[str, Any]:
    value = item.get("arguments", {})
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError("arguments is not an object")
    return value


def _clean(section: str, item: dict[str, Any]) -> dict[str, Any]:
    """The item rebuilt from the fields a declaration has; ValueError when it is malformed."""
    if section == "exchanges":
        name = _str(item, "name")
        if not name or name.startswith("amq."):
            raise ValueError("reserved exchange name")
        return {
            "name": name,
            "type": _str(item, "type"),
            "durable": _bool(item, "durable", True),
            "auto_delete": _bool(item, "auto_delete", False),
            "internal": _bool(item, "internal", False),
            "arguments": _arguments(item),
        }
    if section == "queues":
        name = _str(item, "name")
        if not name or name.startswith("amq."):
            raise ValueError("reserved queue name")
        return {
            "name": name,
            "durable": _bool(item, "durable", True),
            "auto_delete": _bool(item, "auto_delete", False),
            "arguments": _arguments(item),
        }
    if section == "bindings":
        kind = _str(item, "destination_type")
        if kind not in ("queue", "exchange"):
            raise ValueError("destination_type is neither queue nor exchange")
        source = _str(item, "source")
        if not source:
            raise ValueError("a binding of the default exchange is implicit")
        return {
            "source": source,
            "destination": _str(item, "destination"),
            "destination_type": kind,
            "routing_key": _str(item, "routing_key"),
            "arguments": _arguments(item),
        }
    definition = item.get("definition")
    if not isinstance(definition, dict):
        raise ValueError("definition is not an object")
    unknown = sorted(set(definition) - POLICY_KEYS)
    if unknown:
        raise ValueError(f"definition keys not allowed: {', '.join(unknown)}")
    apply_to = item.get("apply-to", "all")
    if apply_to not in APPLY_TO:
        raise ValueError(f"apply-to {apply_to!r}")
    priority = item.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValueError("priority is not an integer")
    return {
        "name": _str(item, "name"),
        "pattern": _str(item, "pattern"),
        "apply-to": apply_to,
        "definition": definition,
        "priority": priority,
    }


def _identity(section: str, item: dict[str, Any]) -> tuple[Any, ...]:
    if section == "bindings":
        return (
            item["source"],
            item["destination"],
            item["destination_type"],
            item["routing_key"],
            json.dumps(item["arguments"], sort_keys=True),
        )
    return (item["name"],)


def select(document: Any, config: StackConfig, credentials: Credentials) -> Selection:
    """The parts of a definitions backup a restore may import, per managed vhost."""
    if not isinstance(document, dict):
        raise BackupError("the definitions backup is not a JSON object")
    managed = {naming.rabbitmq_vhost(s.name) for s in config.services}
    stack = rendered_definitions(config, credentials)
    owned = {
        (section, item["vhost"], *_identity(section, _clean(section, item)))
        for section in SECTIONS
        for item in stack[section]
    }
    selection = Selection(per_vhost={vhost: {s: [] for s in SECTIONS} for vhost in sorted(managed)})
    for section in SECTIONS:
        items = document.get(section, [])
        if not isinstance(items, list):
            selection.refused.append(f"{section}: not a list")
            continue
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("vhost"), str):
                selection.refused.append(f"{section}: an entry without a vhost")
                continue
            vhost = item["vhost"]
            if vhost not in managed:
                selection.other_vhosts += 1
                continue
            try:
                clean = _clean(section, item)
            except ValueError as error:
                label = item.get("name", item.get("source", "?"))
                selection.refused.append(f"{section[:-1]} {label!r} in vhost {vhost!r}: {error}")
                continue
            if (section, vhost, *_identity(section, clean)) in owned:
                selection.from_config += 1
                continue
            selection.per_vhost[vhost][section].append(clean)
    return selection


def import_vhost(api: ManagementApi, vhost: str, parts: dict[str, list[dict[str, Any]]]) -> None:
    """Import one vhost's queues, exchanges, bindings and policies (the vhost from the URL)."""
    document = {
        section: [{**item, "vhost": vhost} for item in parts[section]] for section in SECTIONS
    }
    api.post_json(f"/api/definitions/{quote(vhost)}", document)


def restore_definitions(
    api: ManagementApi, document: Any, config: StackConfig, credentials: Credentials
) -> tuple[dict[str, dict[str, Any]], Selection]:
    """Import each managed vhost's part; per vhost its counts, or ``ok: false`` and ``error``."""
    selection = select(document, config, credentials)
    report: dict[str, dict[str, Any]] = {}
    for vhost, parts in selection.per_vhost.items():
        counts: dict[str, Any] = {section: len(parts[section]) for section in SECTIONS}
        try:
            if any(parts.values()):
                import_vhost(api, vhost, parts)
        except PlatformError as error:  # one vhost's failure never stops the others
            report[vhost] = {"ok": False, "error": str(error), **counts}
            continue
        report[vhost] = {"ok": True, **counts}
    return report, selection
