"""``broker prune``: remove RabbitMQ users and vhosts of services that left the stack config.

Boot-time definitions only add; this is how a removed service loses its login and vhost on a
running broker. Without ``--apply`` it only lists what it would delete.
"""

from __future__ import annotations

import argparse
import os

from infra import secrets_file
from infra.broker import prune
from infra.broker.management import ManagementApi
from infra.commands.common import add_stack_options
from infra.config import load_stack
from infra.errors import UsageError

PASSWORD_ENV = "RABBITMQ_ADMIN_PASSWORD"  # noqa: S105 - the variable name, not a password


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("broker", help="operations on a running RabbitMQ broker")
    actions = parser.add_subparsers(dest="action", required=True)
    prune_parser = actions.add_parser(
        "prune", help="list (and with --apply delete) users and vhosts of removed services"
    )
    add_stack_options(prune_parser)
    prune_parser.add_argument(
        "--management-url",
        required=True,
        help="RabbitMQ management API, e.g. http://127.0.0.1:15672 (no credentials in it)",
    )
    prune_parser.add_argument(
        "--apply", action="store_true", help="delete them (default: only list them)"
    )
    prune_parser.set_defaults(handler=run_prune)


def admin_password(args: argparse.Namespace) -> str:
    """From $RABBITMQ_ADMIN_PASSWORD (e.g. a Pulumi secret output) or the existing secrets file.

    Never generated here: a fresh password would only be refused by the broker.
    """
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    path = args.secrets or secrets_file.default_path(args.stack)
    if not path.exists():
        raise UsageError(
            f"{path}: no secrets file; pass --secrets FILE (the one the stack was rendered "
            f"with) or set {PASSWORD_ENV}"
        )
    return secrets_file.read(path).rabbitmq_admin


def run_prune(args: argparse.Namespace) -> int:
    config = load_stack(args.stack)
    api = ManagementApi(args.management_url, config.rabbitmq.admin_user, admin_password(args))
    removals = prune.find(config, api)
    if not removals:
        print("nothing to prune: every managed user and vhost belongs to a configured service")
        return 0
    for removal in removals:
        print(f"{'delete' if args.apply else 'would delete'} {removal.kind} {removal.name!r}")
    if args.apply:
        prune.apply(api, removals)
        print(f"deleted {len(removals)} (users first, then vhosts with their queues)")
    else:
        print("dry run: re-run with --apply to delete")
    return 0
