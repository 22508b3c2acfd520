"""``broker prune``: remove RabbitMQ users and vhosts of services that left the stack config.

Boot-time definitions only add; this is how a removed service loses its login and vhost on a
running broker. Without ``--apply`` it only lists what it would delete.
"""

from __future__ import annotations

import argparse

from infra.commands.common import add_stack_options, rabbitmq_admin_password


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


def run_prune(args: argparse.Namespace) -> int:
    from infra.broker import prune
    from infra.broker.management import ManagementApi, check_url
    from infra.config import load_stack

    config = load_stack(args.stack)
    check_url(args.management_url)  # a bad URL is named before a missing secrets file
    api = ManagementApi(
        args.management_url, config.rabbitmq.admin_user, rabbitmq_admin_password(args)
    )
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
