"""``broker prune`` planning: only managed users and vhosts of services no longer configured."""

from __future__ import annotations

import dataclasses
from typing import Any

from infra.broker.prune import Removal, plan
from infra.config.model import StackConfig
from infra.render.rabbitmq import MANAGED_TAG


def test_plan_selects_only_managed_leftovers(dev_config: StackConfig) -> None:
    config = dataclasses.replace(dev_config, services=dev_config.services[:2])
    kept, gone = dev_config.services[0].name, dev_config.services[-1].name
    users: list[dict[str, Any]] = [
        {"name": kept, "tags": [MANAGED_TAG]},
        {"name": gone, "tags": [MANAGED_TAG]},
        {"name": "legacy", "tags": f"management,{MANAGED_TAG}"},  # pre-3.9 string form
        {"name": "operator", "tags": ["management"]},
        {"name": config.rabbitmq.admin_user, "tags": ["administrator", MANAGED_TAG]},
    ]
    vhosts: list[dict[str, Any]] = [
        {"name": kept, "tags": [MANAGED_TAG]},
        {"name": gone, "metadata": {"tags": [MANAGED_TAG]}},
        {"name": "/", "tags": []},
        {"name": "by-hand", "description": "made by an operator"},
    ]
    assert plan(config, users, vhosts) == [
        Removal("user", gone),
        Removal("user", "legacy"),
        Removal("vhost", gone),
    ]


def test_removal_paths_escape_names() -> None:
    assert Removal("vhost", "/").path == "/api/vhosts/%2F"
    assert Removal("user", "a b").path == "/api/users/a%20b"
