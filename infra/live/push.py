"""Service logins from a secrets file, pushed to a running Redis and RabbitMQ (``db rotate``,
``db apply``).

Pulumi runs push them through ``infra.live`` resources; the command line had nothing, so a
rotation changed the file and left the servers on the old passwords. This applies the same
rendered rules: each selected service's ACL user (``ACL SETUSER``, no user is ever deleted
here) and each selected service's definitions (user, vhost, permissions, exchanges, queues,
policies) imported through the management API. Nothing is removed: that stays with ``broker
prune``, and other services' users and connections are not touched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from infra.backup.dump import check_redis_url
from infra.broker.management import ManagementApi, check_url
from infra.config.model import StackConfig
from infra.credentials import Credentials
from infra.live import redis_acl
from infra.render import rabbitmq as mq_render
from infra.render import redis as redis_render


def only(config: StackConfig, services: Sequence[str]) -> StackConfig:
    """``config`` restricted to ``services``, so nothing is rendered for the others."""
    return dataclasses.replace(
        config, services=tuple(s for s in config.services if s.name in services)
    )


def push_redis(
    redis_url: str, config: StackConfig, credentials: Credentials, services: Sequence[str]
) -> list[str]:
    """Set the services' ACL users (password, prefix, commands); the users that changed."""
    parsed = check_redis_url(redis_url)
    users = redis_render.service_users(only(config, services), credentials)
    report = redis_acl.apply(
        parsed.hostname or "", parsed.port or 6379, config.redis.admin_user,
        credentials.redis_admin, users,
    )  # fmt: skip
    return report.changed


def push_broker(
    management_url: str,
    admin_password: str,
    config: StackConfig,
    credentials: Credentials,
    services: Sequence[str],
) -> list[str]:
    """Import the services' definitions; the users pushed. The admin user is left out: its
    password is the broker's own business, not this file's."""
    # Sized like the live apply's (quorum queues with one member per node): what the cluster
    # declared. RabbitMQ 3.10 accepts either size on an existing queue; the document says the same.
    document = mq_render.definitions(only(config, services), credentials, config.rabbitmq_nodes)
    admin = config.rabbitmq.admin_user
    document["users"] = [user for user in document["users"] if user["name"] != admin]
    api = ManagementApi(check_url(management_url), admin, admin_password)
    api.post_json("/api/definitions", document)
    return [str(user["name"]) for user in document["users"]]
