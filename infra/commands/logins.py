"""``--redis-url`` and ``--management-url`` of ``db apply`` and ``db rotate``: where the
services' Redis and RabbitMQ passwords are pushed, and what is said when they are not.

A secrets file's password that no server has is worse than an old one: the service's next login
fails. So ``db rotate`` rotates only what it can push (``kept``), and both commands print one line
per server they had nowhere to push to.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from infra.commands.backup import MANAGEMENT_URL_ENV, REDIS_URL_ENV
from infra.commands.common import RABBITMQ_PASSWORD_ENV
from infra.errors import PlatformError

if TYPE_CHECKING:  # imported where used: building the parser stays cheap
    from infra.config import StackConfig
    from infra.credentials import Credentials

# login kind (ServiceCredentials field) -> (server's name, option, environment variable)
SERVERS = {
    "redis": ("Redis", "--redis-url", REDIS_URL_ENV),
    "rabbitmq": ("RabbitMQ", "--management-url", MANAGEMENT_URL_ENV),
}


def add_options(parser: argparse.ArgumentParser) -> None:
    """The two server URLs, defaulting to the variables the backup commands read too."""
    parser.add_argument(
        "--redis-url",
        default=os.environ.get(REDIS_URL_ENV),
        help=f"redis://HOST:PORT: also set the services' Redis ACL users (passwords) there, as "
        f"the Redis admin (default: ${REDIS_URL_ENV})",
    )
    parser.add_argument(
        "--management-url",
        default=os.environ.get(MANAGEMENT_URL_ENV),
        help="http://HOST:PORT of the RabbitMQ management API: also import the services' users "
        "(passwords), vhosts and queues there; nothing is deleted "
        f"(default: ${MANAGEMENT_URL_ENV})",
    )


def targets(args: argparse.Namespace) -> dict[str, str]:
    """Login kind -> the URL it is pushed to, for the servers given; bad URLs refused first."""
    found: dict[str, str] = {}
    if args.redis_url:  # the backup tooling's check, imported only when there is a URL
        from infra.backup.dump import check_redis_url

        check_redis_url(args.redis_url)
        found["redis"] = args.redis_url
    if args.management_url:
        from infra.broker.management import check_url

        found["rabbitmq"] = check_url(args.management_url)
    return found


def missing(given: dict[str, str]) -> list[str]:
    """Login kinds with no server to push to."""
    return [kind for kind in SERVERS if kind not in given]


def not_pushed_line(kind: str, what: str) -> str:
    _name, option, variable = SERVERS[kind]
    return f"{what}: no {option} (or ${variable}) given"


@dataclass
class PushReport:
    """One line per server pushed to, and one per failure (with the fix)."""

    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def push_logins(
    given: dict[str, str],
    config: StackConfig,
    credentials: Credentials,
    services: Sequence[str],
    retry: str,
) -> PushReport:
    """Push the services' logins to every server given; one server failing does not stop the
    other. ``retry`` is the command that pushes again once the server is back."""
    report = PushReport()
    if not given:
        return report  # nowhere to push: no need for the Redis and RabbitMQ clients
    from infra.live import push

    with_redis = [s.name for s in config.services if s.name in services and s.redis]
    if "redis" in given and with_redis:
        try:
            changed = push.push_redis(given["redis"], config, credentials, with_redis)
            changed_text = ", ".join(changed) or "none"
            report.lines.append(
                f"Redis: ACL users set at {given['redis']}: {', '.join(with_redis)} "
                f"(changed: {changed_text})"
            )
        except PlatformError as error:
            report.failures.append(f"Redis at {given['redis']}: {error}; {retry}")
    if "rabbitmq" in given and services:
        password = os.environ.get(RABBITMQ_PASSWORD_ENV) or credentials.rabbitmq_admin
        try:
            users = push.push_broker(given["rabbitmq"], password, config, credentials, services)
            report.lines.append(
                f"RabbitMQ: definitions imported at {given['rabbitmq']} for {', '.join(users)}"
            )
        except PlatformError as error:
            report.failures.append(f"RabbitMQ at {given['rabbitmq']}: {error}; {retry}")
    return report
