"""``broker prune``: remove RabbitMQ users and vhosts of services that left the stack config.
``broker rolling-restart``: restart a prod cluster's nodes one at a time (upgrades, config).

Boot-time definitions only add; prune is how a removed service loses its login and vhost on
a running broker. Without ``--apply`` it only lists what it would delete.

The rolling restart reads the nodes from the ``rabbitmq_nodes`` stack output on stdin (as
``envfiles`` reads ``service_env``), so it needs no Pulumi login of its own::

    pulumi stack output rabbitmq_nodes --json --stack prod |
      python -m infra broker rolling-restart --stack prod

(``make broker-rolling-restart STACK=prod`` runs exactly that.)
"""

from __future__ import annotations

import argparse

from infra.commands.common import add_stack_options, rabbitmq_admin_password

# Per node: the cluster whole again after a restart (quorum queues catching up included).
DEFAULT_TIMEOUT_S = 600.0


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
    restart_parser = actions.add_parser(
        "rolling-restart",
        help="restart a cluster's nodes one at a time, waiting for every quorum queue to be "
        "back at full membership in between (nodes: the rabbitmq_nodes output on stdin)",
    )
    add_stack_options(restart_parser)
    restart_parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds to wait for the cluster to be whole, per node "
        f"(default {DEFAULT_TIMEOUT_S:g})",
    )
    restart_parser.set_defaults(handler=run_rolling_restart)


def run_rolling_restart(args: argparse.Namespace) -> int:
    import json
    import sys

    from infra.broker import rolling
    from infra.config import load_stack
    from infra.errors import UsageError

    config = load_stack(args.stack)
    password = rabbitmq_admin_password(args)  # resolved like every command's, before anything
    if config.platform != "gcp":
        raise UsageError(
            f"broker rolling-restart restarts prod's VMs (platform gcp); {args.stack} is "
            f"{config.platform!r}"
        )
    try:
        document = json.load(sys.stdin)
    except json.JSONDecodeError as error:
        raise UsageError(
            "stdin is not JSON; pipe `pulumi stack output rabbitmq_nodes --json --stack "
            f"{args.stack}`"
        ) from error
    nodes = rolling.parse_nodes(document)
    fleet = rolling.GcloudFleet(nodes, config.rabbitmq.admin_user, password)
    try:
        took = rolling.rolling_restart(nodes, fleet, args.timeout)
    finally:
        fleet.close()
    print(f"restarted {len(took)} nodes; slowest back to full membership in {max(took):.1f} s")
    return 0


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
