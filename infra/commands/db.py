"""``db plan|apply|rotate|drop``: converge each service's PostgreSQL database and roles.

The admin URL may leave out the password: it is then taken from PGPASSWORD or, failing that,
from the secrets file, so no password has to appear on a command line.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from infra import postgres, secrets_file
from infra.backup.restore import recover
from infra.commands.common import ADMIN_URL_ENV, add_stack_options, admin_url, load, secrets_path
from infra.config import StackConfig
from infra.errors import UsageError
from infra.postgres.drop import drop_service
from infra.postgres.engine import ApplyReport, Plan


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("db", help="per-service PostgreSQL databases and roles")
    actions = parser.add_subparsers(dest="db_command", required=True)
    for name, handler, text in (
        ("plan", run_plan, "print the statements apply would run (passwords redacted)"),
        ("apply", run_apply, "converge every service's database and roles"),
        ("rotate", run_rotate, "new passwords for one service, applied at once"),
        ("drop", run_drop, "drop a removed service's database and roles (data is lost)"),
    ):
        action = actions.add_parser(name, help=text, description=text)
        add_stack_options(action)
        action.add_argument(
            "--admin-url",
            default=os.environ.get(ADMIN_URL_ENV),
            help=f"postgresql://ADMIN@HOST:PORT/postgres (default: ${ADMIN_URL_ENV}); "
            "leave the password out: it comes from PGPASSWORD or the secrets file",
        )
        if name in ("rotate", "drop"):
            action.add_argument("--service", required=True, help="the service's name")
        if name == "drop":
            action.add_argument("--confirm", required=True, help="the service's name, again")
        action.set_defaults(handler=handler)


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


def print_report(report: ApplyReport) -> None:
    for statement in report.executed:
        print(statement)
    changed = ", ".join(report.changed) or "none"
    print(f"{len(report.executed)} statement(s) executed; services changed: {changed}")


def run_plan(args: argparse.Namespace) -> int:
    config, credentials = load(args)
    print_plan(postgres.plan(admin_url(args, credentials), config, credentials))
    return 0


def recover_restores(url: str, config: StackConfig, services: list[str] | None = None) -> None:
    """Finish or undo restores killed half way, before anything else touches the services."""
    for service in services or [spec.name for spec in config.services]:
        for line in recover(url, service):
            print(line, flush=True)


def run_apply(args: argparse.Namespace) -> int:
    config, credentials = load(args)
    url = admin_url(args, credentials)
    recover_restores(url, config)
    print_report(postgres.apply(url, config, credentials))
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    config, credentials = load(args)
    if args.service not in credentials.services:
        raise UsageError(f"unknown service {args.service!r}: it is not in the stack's config")
    path: Path = secrets_path(args)
    rotated = credentials.rotated(args.service)
    # Saved first: if the apply below fails, the next apply still sees the new version.
    secrets_file.write(path, rotated)
    url = admin_url(args, rotated)
    recover_restores(url, config, [args.service])
    report = postgres.apply(url, config, rotated, services=[args.service])
    print_report(report)
    print(
        f"rotated {args.service} to password version "
        f"{rotated.for_service(args.service).version}; re-render its env file with "
        f"`python -m infra render --stack {args.stack} --out DIR`"
    )
    return 0


def run_drop(args: argparse.Namespace) -> int:
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
