"""``db plan|apply|rotate|drop``: converge each service's PostgreSQL database and roles.

The admin URL may leave out the password: it is then taken from PGPASSWORD or, failing that,
from the secrets file, so no password has to appear on a command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from infra.commands import logins
from infra.commands.common import (
    add_admin_url_option,
    add_stack_options,
    admin_url,
    load,
    reusing_admin_sessions,
    secrets_path,
)
from infra.errors import PlatformError, UsageError

if TYPE_CHECKING:  # the handlers import what they run: building the parser stays cheap
    from infra.config import StackConfig
    from infra.credentials import Credentials
    from infra.postgres.engine import ApplyReport, Plan


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("db", help="per-service PostgreSQL databases and roles")
    actions = parser.add_subparsers(dest="db_command", required=True)
    for name, handler, text in (
        ("plan", run_plan, "print the statements apply would run (passwords redacted)"),
        ("apply", run_apply, "converge every service's database and roles"),
        (
            "rotate",
            run_rotate,
            "new passwords for one service, applied at once to PostgreSQL and to the Redis and "
            "RabbitMQ servers given (a password with no server to push to is kept)",
        ),
        ("drop", run_drop, "drop a removed service's database and roles (data is lost)"),
        (
            "pools",
            run_pools,
            "per service: client connections, server connections, clients waiting and the "
            "longest wait at the pooler (PgBouncer's console, read with its own login)",
        ),
        (
            "lag",
            run_lag,
            "each read replica's replay lag in bytes and seconds, read on the primary; exit 1 "
            "when a declared replica is not streaming or lags past "
            "postgres.max_replica_lag_seconds",
        ),
        (
            "promote",
            run_promote,
            "dev failover (make failover): promote the most advanced replica, fence the old "
            "primary, re-point the router and the pooler, and record it in the stack file",
        ),
    ):
        action = actions.add_parser(name, help=text, description=text)
        if name == "promote":  # it reads no secret: the Docker engine and the servers' sockets
            action.add_argument(
                "--stack", required=True, help="stack name or stack file path (the dev stack's)"
            )
        else:
            add_stack_options(action)
        if name not in ("pools", "promote"):
            add_admin_url_option(action)
        if name == "promote":
            action.add_argument(
                "--force",
                action="store_true",
                help="also when the primary still answers (a switchover: it is stopped first)",
            )
        if name == "plan":
            action.add_argument(
                "--check",
                action="store_true",
                help="exit 1 when anything would change (drift), 0 when every service is "
                "converged, like ldap2pg --check",
            )
            action.add_argument(
                "--json",
                action="store_true",
                help="print the plan as one JSON document (for the drift job) instead of text",
            )
        if name in ("apply", "rotate"):
            logins.add_options(action)
        if name == "lag":
            action.add_argument(
                "--max-lag-seconds",
                type=float,
                default=None,
                help="the limit (default: the stack's postgres.max_replica_lag_seconds)",
            )
        if name in ("rotate", "drop"):
            action.add_argument("--service", required=True, help="the service's name")
        if name == "drop":
            action.add_argument("--confirm", required=True, help="the service's name, again")
        action.set_defaults(handler=handler)


def run_pools(args: argparse.Namespace) -> int:
    from infra.commands.pools import run_pools as pools

    return pools(args)


def run_promote(args: argparse.Namespace) -> int:
    from infra.commands.promote import run_promote as promote

    return promote(args)


def run_lag(args: argparse.Namespace) -> int:
    from infra.commands.lag import run_lag as lag

    return lag(args)


def print_plan(result: Plan) -> None:
    for service in result.services:
        for statement in service.statements:
            print(f"{service.service}: {statement.text}")
        for problem in service.problems:
            print(f"{service.service}: PROBLEM: {problem}")
    for name in result.unmanaged:
        print(
            f"{name}: on the server but not in the config; kept "
            f"(drop with: python -m infra db drop --stack STACK --service {name} --confirm {name})"
        )
    print(f"{len(result.statements)} statement(s) to run")


def plan_document(result: Plan, stack: str) -> dict[str, object]:
    """The plan as data: what the drift job publishes, and what a reviewer reads there.

    ``converged`` is what ``--check`` turns into its exit code. Services no longer in the config
    are reported but are not drift: they are kept on purpose until ``db drop``.
    """
    return {
        "stack": stack,
        "converged": not result.statements and not result.problems,
        "statement_count": len(result.statements),
        "services": [
            {
                "service": service.service,
                "converged": not service.statements and not service.problems,
                "statements": [statement.text for statement in service.statements],
                "problems": list(service.problems),
            }
            for service in result.services
        ],
        "kept": list(result.unmanaged),
    }


def print_report(report: ApplyReport) -> None:
    for statement in report.executed:
        print(statement)
    changed = ", ".join(report.changed) or "none"
    print(f"{len(report.executed)} statement(s) executed; services changed: {changed}")


def run_plan(args: argparse.Namespace) -> int:
    """Print the plan; with ``--check`` the exit code says whether the server has drifted."""
    from infra import postgres
    from infra.config.load import stack_name

    config, credentials = load(args)
    result = postgres.plan(admin_url(args, credentials), config, credentials)
    if args.json:
        print(json.dumps(plan_document(result, stack_name(args.stack)), indent=2))
    else:
        print_plan(result)
    if args.check and (result.statements or result.problems):
        if not args.json:
            changed = [s.service for s in result.services if s.statements or s.problems]
            print(f"drift: {', '.join(changed)} would change; run db apply to converge")
        return 1
    return 0


def recover_restores(url: str, config: StackConfig, services: list[str] | None = None) -> list[str]:
    """Finish or undo restores killed half way, before anything else touches the services;
    one service's failure here is said and never stops the others (the failed lines)."""
    names = services or [spec.name for spec in config.services]
    failed = []
    for service in sorted(_interrupted(url, names), key=names.index):
        from infra.backup.restore import recover  # the restore tooling, only when needed

        try:
            for line in recover(url, service):
                print(line, flush=True)
        except PlatformError as error:
            failed.append(f"service {service}: interrupted restore not recovered: {error}")
            print(f"error: {failed[-1]}", file=sys.stderr, flush=True)
    return failed


def _interrupted(url: str, services: list[str]) -> frozenset[str]:
    """The services that may hold a restore killed half way, from one look for all of them;
    if that look fails, every service, so each one's own recovery says what went wrong."""
    from infra.backup import leftovers

    try:
        return leftovers.find(url, services).interrupted
    except PlatformError:
        return frozenset(services)


def apply_and_report(
    url: str, config: StackConfig, credentials: Credentials, services: list[str] | None = None
) -> int:
    """Apply, print what ran (also when some services failed), and exit 1 naming those."""
    from infra import postgres
    from infra.postgres.driver import session
    from infra.postgres.engine import ApplyFailedError

    with session(url, autocommit=True):
        pass  # a server that is down is one line, not one per service
    failed = recover_restores(url, config, services)
    try:
        print_report(postgres.apply(url, config, credentials, services=services))
    except ApplyFailedError as error:
        print_report(error.result.report())
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    if failed:
        print(f"error: {'; '.join(failed)}", file=sys.stderr, flush=True)
        return 1
    return 0


def finish_push(report: logins.PushReport) -> int:
    """Print what reached Redis and RabbitMQ; 1 when a server refused (each named, with the fix)."""
    for line in report.lines:
        print(line)
    for failure in report.failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if report.failures else 0


@reusing_admin_sessions
def run_apply(args: argparse.Namespace) -> int:
    config, credentials = load(args)
    given = logins.targets(args)
    url = admin_url(args, credentials)
    code = apply_and_report(url, config, credentials)
    for kind in logins.missing(given):
        print(logins.not_pushed_line(kind, f"{logins.SERVERS[kind][0]} users not applied"))
    retry = "run db apply again with the same options once it is back"
    names = [spec.name for spec in config.services]
    return max(code, finish_push(logins.push_logins(given, config, credentials, names, retry)))


@reusing_admin_sessions
def run_rotate(args: argparse.Namespace) -> int:
    from infra import secrets_file

    config, credentials = load(args)
    if args.service not in credentials.services:
        raise UsageError(f"unknown service {args.service!r}: it is not in the stack's config")
    given = logins.targets(args)
    path: Path = secrets_path(args)
    kept = logins.missing(given)
    rotated = credentials.rotated(args.service, keep=kept)
    # Saved first: if an apply below fails, the next apply still sees (and pushes) the new ones.
    secrets_file.write(path, rotated)
    url = admin_url(args, rotated)
    code = apply_and_report(url, config, rotated, [args.service])
    has = {"redis": config.service(args.service).redis, "rabbitmq": True}
    pushed = [f"{logins.SERVERS[kind][0]} user" for kind in given if has[kind]]
    done = ["PostgreSQL logins", *pushed]
    print(
        f"rotated {args.service} to password version "
        f"{rotated.for_service(args.service).version}: {', '.join(done)}; re-render its env file "
        f"with `python -m infra render --stack {args.stack} --out DIR`"
    )
    for kind in kept:
        print(logins.not_pushed_line(kind, f"kept the {logins.SERVERS[kind][0]} password"))
    retry = "the secrets file already holds the new password: push it with db apply and the same "
    retry += "server options once the server is back"
    return max(code, finish_push(logins.push_logins(given, config, rotated, [args.service], retry)))


@reusing_admin_sessions
def run_drop(args: argparse.Namespace) -> int:
    from infra.postgres.drop import drop_service

    config, credentials = load(args)
    if args.confirm != args.service:
        raise UsageError(f"--confirm must repeat the service name ({args.service!r}) exactly")
    if any(spec.name == args.service for spec in config.services):
        raise UsageError(
            f"service {args.service!r} is still in the {args.stack} stack config; remove it "
            "there first (apply would create it again)"
        )
    for statement in drop_service(admin_url(args, credentials), args.service):
        print(statement)
    print(f"dropped database and roles of {args.service}")
    return 0
