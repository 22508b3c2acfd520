"""Backup commands: ``backup``, ``list``, ``verify``, ``restore``, ``prune``, ``dr-drill``,
``backup-loop`` (the dev backup container's scheduler) and ``backup-run`` (one scheduled run:
what the prod Cloud Run job executes; both share ``run_once``).

Bucket URLs are ``file:///path`` or ``gs://bucket/prefix``. Passwords never travel on the
command line: the admin URL may omit its password (taken from the secrets file), Redis and
RabbitMQ admin passwords always come from the secrets file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from infra.commands.common import ADMIN_PASSWORD_ENV as ADMIN_PASSWORD_ENV  # re-exported
from infra.commands.common import ADMIN_URL_ENV as ADMIN_URL_ENV  # re-exported
from infra.commands.common import (
    add_admin_url_option,
    add_stack_options,
    admin_url,
    load,
    load_admin_only,
    resolve_admin_url,
    reusing_admin_sessions,
)
from infra.errors import BackupError, PlatformError, ServerError, UsageError

# The backup tooling (database driver, Redis and GCS clients) is imported by the handlers that
# run it, never here: building the parser stays cheap (tests/unit/test_cli_startup.py).
if TYPE_CHECKING:
    from infra.backup.catalog import Entry, Manifest
    from infra.backup.dump import Target
    from infra.backup.leftovers import Leftovers
    from infra.config import StackConfig
    from infra.credentials import Credentials

BUCKET_ENV = "PERSISTENCE_BACKUP_BUCKET"
REDIS_URL_ENV = "PERSISTENCE_REDIS_URL"
MANAGEMENT_URL_ENV = "PERSISTENCE_MANAGEMENT_URL"
VERIFY_ADMIN_URL_ENV = "PERSISTENCE_VERIFY_ADMIN_URL"
# The structured log line backup-run writes per verified backup; the prod log-based metric
# (and so the "no verified backup" alert) counts exactly these lines.
VERIFIED_EVENT = "persistence.backup.verified"
# Where backup-loop records its runs and backup-health reads them (infra.backup.health).
STATUS_FILE = Path("/tmp/persistence-backup-status.json")  # noqa: S108 - the container's own tmp
# The deploy writes the dev backup container's stack file just after the container starts.
STACK_FILE_WAIT_SECONDS = 600


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("backup", help="back up service databases, Redis, RabbitMQ")
    _server_options(parser)
    parser.add_argument("--service", help="only this service's database")
    parser.set_defaults(handler=run_backup)

    parser = subparsers.add_parser("list", help="backups per service, newest first")
    _bucket_option(parser)
    parser.add_argument("--service", help="only this service (or 'server' for Redis/RabbitMQ)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run_list)

    parser = subparsers.add_parser("verify", help="restore backups into scratch databases")
    add_stack_options(parser)
    _bucket_option(parser)
    add_admin_url_option(parser)
    parser.add_argument("--service", help="only this service")
    parser.add_argument("--backup", help="re-verify this backup id (default: every unverified)")
    parser.set_defaults(handler=run_verify)

    parser = subparsers.add_parser("restore", help="restore a service database from a backup")
    add_stack_options(parser)
    _bucket_option(parser)
    add_admin_url_option(parser)
    parser.add_argument("--service", required=True)
    parser.add_argument("--at", help="backup id, or the newest backup at/before an ISO time")
    parser.add_argument(
        "--secure-replaced",
        action="store_true",
        help="before exiting, dump, verify and drop the database the restore replaced (by "
        "default it is kept as <service>__old_<time> and the next backup does that)",
    )
    parser.set_defaults(handler=run_restore)

    parser = subparsers.add_parser("prune", help="drop backups outside the kept generations")
    parser.add_argument(
        "--stack", required=True, help="stack name or stack file path (backup.keep is read)"
    )
    _bucket_option(parser)
    parser.add_argument("--dry-run", action="store_true", help="say what would be deleted")
    parser.set_defaults(handler=run_prune)

    parser = subparsers.add_parser(
        "dr-drill", help="rebuild every service on empty scratch servers"
    )
    add_stack_options(parser)
    _bucket_option(parser)
    add_admin_url_option(parser)
    # No environment defaults: $PERSISTENCE_REDIS_URL and $PERSISTENCE_MANAGEMENT_URL name the
    # servers backups are taken from, never a drill's scratch targets.
    parser.add_argument(
        "--redis-url",
        help="redis://HOST:PORT of a scratch Redis holding no service's keys: also restore each "
        "service's keys there (without it, Redis is not drilled)",
    )
    parser.add_argument(
        "--management-url",
        help="http://HOST:15672 of a scratch broker booted from the stack's rendered "
        "definitions: also restore each vhost's queues, exchanges, bindings and policies there "
        "(without it, RabbitMQ is not drilled)",
    )
    parser.set_defaults(handler=run_drill)

    parser = subparsers.add_parser(
        "backup-loop", help="backup, verify and prune on the stack's backup.schedule (cron, UTC)"
    )
    _server_options(parser)
    parser.add_argument("--runs", type=int, default=0, help="stop after N runs (0: forever)")
    _status_option(parser)
    parser.set_defaults(handler=run_loop)

    parser = subparsers.add_parser(
        "backup-health",
        help="exit 0 when backup-loop's last run succeeded and every service has a verified "
        "backup within two schedule periods (the dev backup container's health check)",
    )
    parser.add_argument("--stack", required=True, help="stack name or stack file path")
    _bucket_option(parser)
    _status_option(parser)
    parser.set_defaults(handler=run_health)

    parser = subparsers.add_parser(
        "backup-run",
        help="backup, verify and prune once (the prod job); exit 1 naming what failed",
    )
    _server_options(parser)
    parser.add_argument(
        "--verify-admin-url",
        default=os.environ.get(VERIFY_ADMIN_URL_ENV),
        help="restore verifications on this server instead of --admin-url's (roles are "
        f"converged there first; default: ${VERIFY_ADMIN_URL_ENV})",
    )
    parser.set_defaults(handler=run_job)


def _status_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status-file",
        type=Path,
        default=STATUS_FILE,
        help=f"where backup-loop records its runs (default: {STATUS_FILE})",
    )


def _bucket_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bucket",
        default=os.environ.get(BUCKET_ENV),
        help=f"file:///path or gs://bucket/prefix (default: ${BUCKET_ENV})",
    )


def _server_options(parser: argparse.ArgumentParser) -> None:
    add_stack_options(parser)
    _bucket_option(parser)
    add_admin_url_option(parser)
    parser.add_argument(
        "--redis-url",
        default=os.environ.get(REDIS_URL_ENV),
        help=f"redis://HOST:PORT: also take an RDB snapshot (${REDIS_URL_ENV})",
    )
    parser.add_argument(
        "--management-url",
        default=os.environ.get(MANAGEMENT_URL_ENV),
        help=f"http://HOST:15672: also save RabbitMQ definitions (${MANAGEMENT_URL_ENV})",
    )


def _target(args: argparse.Namespace, *, must_exist: bool = True) -> Target:
    """The bucket; one that must already hold backups (all but ``backup``) must exist."""
    from infra.backup import crypto
    from infra.backup.dump import Target
    from infra.backup.storage import FileBucket, open_bucket

    if not args.bucket:
        raise UsageError(f"--bucket is required (or set {BUCKET_ENV}), e.g. file:///var/backups")
    bucket = open_bucket(args.bucket)
    if must_exist and isinstance(bucket, FileBucket) and not bucket.root.is_dir():
        raise UsageError(f"--bucket {args.bucket}: {bucket.root} is not an existing directory")
    return Target(bucket, crypto.key_from_env())


def _admin_url(args: argparse.Namespace, credentials: Credentials) -> str:
    return admin_url(args, credentials)


def _services(config: StackConfig, only: str | None) -> list[str]:
    names = [s.name for s in config.services]
    if only is not None and only not in names:
        raise UsageError(f"--service {only!r} is not in the stack; services: {', '.join(names)}")
    return [only] if only else names


@reusing_admin_sessions
def run_backup(args: argparse.Namespace) -> int:
    config, credentials = load(args)
    _, failed = _backup(args, config, credentials)
    if failed:
        print(f"error: backup failed for {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _backup(
    args: argparse.Namespace, config: StackConfig, credentials: Credentials
) -> tuple[list[Manifest], list[str]]:
    """Back up every chosen service (and Redis/RabbitMQ); what failed: a service's name for its
    database, ``redis/<service>`` for its keys."""
    from infra.backup.dump import backup_postgres, backup_rabbitmq, backup_redis, check_redis_url
    from infra.backup.progress import human
    from infra.backup.redis_keys import backup_keys
    from infra.backup.restore import recover
    from infra.broker.management import ManagementApi

    target = _target(args, must_exist=False)  # the first backup creates a file:// bucket
    admin_url = _admin_url(args, credentials)
    if args.redis_url:
        check_redis_url(args.redis_url)
    broker = (
        ManagementApi(args.management_url, config.rabbitmq.admin_user, credentials.rabbitmq_admin)
        if args.management_url
        else None
    )
    made = []
    failed: list[str] = []
    names = _services(config, args.service)
    found = _leftovers(admin_url, names)
    for name in names:
        try:
            if name in found.interrupted:  # a restore killed half way, first
                for line in recover(admin_url, name):
                    print(line, flush=True)
            recovered = True
        except PlatformError as error:  # one service's fault never stops the others' backups
            recovered = False
            failed.append(name)
            print(f"error: postgres/{name}: {error}", file=sys.stderr, flush=True)
        # What restores replaced, before the service's own backup (a failure here never stops
        # that backup): the service's backup is then the newest of its hour.
        pending = name in found.unsecured or name in found.interrupted
        secured = not pending or secure(target, admin_url, name, config.backup.format)
        if recovered:
            try:
                made.append(backup_postgres(target, admin_url, name, config.backup.format))
            except PlatformError as error:
                failed.append(name)
                print(f"error: postgres/{name}: {error}", file=sys.stderr, flush=True)
        if not secured and name not in failed:
            failed.append(name)
    if args.redis_url and args.service is None:
        try:
            made.append(
                backup_redis(
                    target, args.redis_url, config.redis.admin_user, credentials.redis_admin
                )
            )
        except PlatformError as error:
            failed.append("redis/server")
            print(f"error: redis/server: {error}", file=sys.stderr, flush=True)
        # Each service's keys on their own: what rebuild restores into a running server.
        for spec in config.services:
            if not spec.redis:
                continue
            try:
                made.append(
                    backup_keys(
                        target,
                        args.redis_url,
                        config.redis.admin_user,
                        credentials.redis_admin,
                        spec.name,
                    )
                )
            except PlatformError as error:
                failed.append(f"redis/{spec.name}")
                print(f"error: redis/{spec.name}: {error}", file=sys.stderr, flush=True)
    if broker is not None and args.service is None:
        try:
            made.append(backup_rabbitmq(target, broker))
        except PlatformError as error:
            failed.append("rabbitmq/server")
            print(f"error: rabbitmq/server: {error}", file=sys.stderr, flush=True)
    for manifest in made:
        print(
            f"{manifest.kind}/{manifest.service} {manifest.backup_id} {human(manifest.size)} "
            f"sha256 {manifest.sha256[:16]}{' encrypted' if manifest.encrypted else ''}"
        )
    return made, failed


def _leftovers(admin_url: str, services: list[str]) -> Leftovers:
    """What restores left behind, from one look for every service; if that look fails, every
    service is looked at on its own (and its failure said there, never stopping the others)."""
    from infra.backup import leftovers

    try:
        return leftovers.find(admin_url, services)
    except PlatformError:
        return leftovers.Leftovers.everywhere(services)


def run_list(args: argparse.Namespace) -> int:
    from infra.backup.catalog import scan
    from infra.backup.progress import human

    target = _target(args)
    scanned, problems = scan(target.bucket, key=target.key)
    for problem in problems:  # one corrupt backup never hides the others
        print(problem, file=sys.stderr)
    found = [e for e in scanned if args.service is None or e.manifest.service == args.service]
    if args.json:
        print(json.dumps([{**asdict(e.manifest), "state": e.state} for e in found], indent=2))
        return 0
    for entry in sorted(found, key=lambda e: (e.manifest.kind, e.manifest.service)):
        m = entry.manifest
        print(f"{m.kind}/{m.service:<16} {m.backup_id}  {human(m.size):>10}  {entry.state}")
    if not found:
        print(f"no complete backups in {target.bucket.url}")
    return 0


@reusing_admin_sessions
def run_verify(args: argparse.Namespace) -> int:
    _, credentials = load(args)
    target = _target(args)
    admin_url = _admin_url(args, credentials) if args.admin_url else None
    chosen: list[Entry] = [
        e
        for e in _proven(target)
        if (args.service is None or e.manifest.service == args.service)
        and (e.manifest.backup_id == args.backup if args.backup else e.state == "unverified")
    ]
    if args.backup and not chosen:
        raise UsageError(f"--backup {args.backup!r} is not a complete backup in {args.bucket}")
    if admin_url is None and any(e.manifest.kind == "postgres" for e in chosen):
        raise UsageError(
            f"verifying PostgreSQL backups needs --admin-url (or {ADMIN_URL_ENV}): they are "
            "restored into a scratch database"
        )
    _, failed = _verify(target, chosen, admin_url)
    if failed:
        print(f"error: verify failed for {', '.join(sorted(set(failed)))}", file=sys.stderr)
        return 1
    return 0


def _proven(target: Target) -> list[Entry]:
    """Every backup in the bucket that proves to be what it claims; one line per refusal."""
    from infra.backup.catalog import scan

    found, problems = scan(target.bucket, key=target.key)
    for problem in problems:
        print(problem, file=sys.stderr, flush=True)
    return found


def _verify(
    target: Target, chosen: list[Entry], admin_url: str | None
) -> tuple[list[Manifest], list[str]]:
    """Verify each chosen backup; the verified manifests and the failed ``kind/service``s."""
    from infra.backup.verify import verify

    verified: list[Manifest] = []
    failed: list[str] = []
    for entry in chosen:
        m = entry.manifest
        try:
            result = verify(target.bucket, entry, admin_url, target.key)
        except (ServerError, BackupError) as error:  # one backup's never stops the others'
            print(f"error: {m.kind}/{m.service} {m.backup_id}: {error}", file=sys.stderr)
            failed.append(f"{m.kind}/{m.service}")
            continue
        state = "verified" if result.ok else "FAILED"
        print(f"{m.kind}/{m.service} {m.backup_id} {state} in {result.seconds:.1f}s")
        for problem in result.problems:
            print(f"  {problem}", file=sys.stderr)
        if result.ok:
            verified.append(m)
        else:
            failed.append(f"{m.kind}/{m.service}")
    return verified, failed


@reusing_admin_sessions
def run_restore(args: argparse.Namespace) -> int:
    """Restore, and say what was kept: the replaced database is the safety copy, and securing
    it (a full dump and a verifying restore) is left to the next backup unless asked for, so
    the command is done when the service is back."""
    from infra.backup.catalog import find, scan
    from infra.backup.restore import restore

    config, credentials = load(args)
    _services(config, args.service)
    target = _target(args)
    admin_url = _admin_url(args, credentials)
    # Without --at, only a verified backup will do: never an unverified one, never a safety
    # backup (the copy of a database restore was about to replace, perhaps a broken one).
    scanned, problems = scan(target.bucket, "postgres", args.service, key=target.key)
    for problem in problems:
        print(problem, file=sys.stderr)
    entry = find(
        target.bucket,
        "postgres",
        args.service,
        args.at,
        verified_only=args.at is None,
        key=target.key,
        scanned=scanned,
    )
    report = restore(target, entry, admin_url, config, credentials)
    print(f"restored {report.service} from {report.backup_id} in {report.seconds:.1f}s", flush=True)
    if args.secure_replaced:
        return 0 if secure(target, admin_url, args.service, config.backup.format) else 1
    if report.replaced is not None:
        print(kept_line(report.service, report.replaced), flush=True)
    return 0


def kept_line(service: str, replaced: str) -> str:
    """What a restore left for the next backup to secure, in one line."""
    return (
        f"kept: the replaced database of {service} as {replaced}, until the next `python -m "
        "infra backup` (or backup-run, or the backup loop) saves it as a verified safety backup "
        "and drops it; `restore --secure-replaced` does that before exiting"
    )


def secure(target: Target, admin_url: str, service: str, dump_format: str) -> bool:
    """Dump, verify and drop what restores of ``service`` replaced; False (said) on a failure."""
    from infra.backup.safety import secure_replaced

    try:
        for line in secure_replaced(target, admin_url, service, dump_format):
            print(line, flush=True)
    except PlatformError as error:
        print(f"error: postgres/{service}: {error}", file=sys.stderr, flush=True)
        return False
    return True


def run_prune(args: argparse.Namespace) -> int:
    from infra.config import load_stack

    config = load_stack(args.stack)
    _prune(_target(args), config, dry_run=args.dry_run)
    return 0


def _prune(target: Target, config: StackConfig, *, dry_run: bool) -> None:
    """Prune outside the kept generations and say what happened."""
    from infra.backup.catalog import utc_now
    from infra.backup.prune import prune

    report = prune(target.bucket, config.backup.keep, utc_now(), key=target.key, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for problem in report.problems:
        print(problem, file=sys.stderr)
    for head in report.deleted:
        print(f"{verb} {head}")
    for line in report.refused:
        print(f"kept (retention policy refused the delete): {line}", file=sys.stderr)
    print(f"kept {len(report.kept)}, {verb} {len(report.deleted)}, refused {len(report.refused)}")


@reusing_admin_sessions
def run_drill(args: argparse.Namespace) -> int:
    from infra.backup.drill import drill
    from infra.backup.dump import check_redis_url
    from infra.broker.management import check_url as check_management_url

    config, credentials = load(args)
    target = _target(args)
    if args.redis_url:
        check_redis_url(args.redis_url)
    if args.management_url:
        check_management_url(args.management_url)
    report = drill(
        target,
        _admin_url(args, credentials),
        config,
        credentials,
        redis_url=args.redis_url,
        management_url=args.management_url,
    )
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


@dataclass
class RunOutcome:
    """What one scheduled run did: the backups it verified and everything that failed."""

    verified: list[Manifest] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@reusing_admin_sessions
def run_once(
    args: argparse.Namespace,
    config: StackConfig,
    credentials: Credentials,
    *,
    prune_after: bool = True,
) -> RunOutcome:
    """Backup, verify every unverified backup, prune: the one run both schedulers make.

    ``prune_after=False`` (the backup loop's first run, at container start): nothing is
    deleted. A container that starts during ``rebuild`` backs up servers that are still being
    restored; pruning then could delete the very backup the rebuild is restoring (the newest of
    its hour), so the first prune waits for the first scheduled run.

    Each step runs even when an earlier one failed (a failed backup must not stop older
    backups from being verified, nor pruning); every failure is named in the outcome.
    """
    outcome = RunOutcome()
    target = _target(args, must_exist=False)  # the first scheduled run creates a file:// bucket
    step_args = argparse.Namespace(**{**vars(args), "service": None})
    try:
        _, failed = _backup(step_args, config, credentials)
        outcome.failed += [
            f"backup {name}" if "/" in name else f"backup postgres/{name}" for name in failed
        ]
    except Exception as error:  # a scheduler must survive one bad step
        outcome.failed.append(f"backup: {error}")
    try:
        verify_url = _verify_url(args, config, credentials)
        chosen = _verifiable([e for e in _proven(target) if e.state == "unverified"], config)
        verified, failed = _verify(target, chosen, verify_url)
        outcome.verified += verified
        outcome.failed += [f"verify {label}" for label in failed]
    except Exception as error:
        outcome.failed.append(f"verify: {error}")
    if not prune_after:
        print("prune: skipped on the loop's first run", flush=True)
        return outcome
    try:
        _prune(target, config, dry_run=False)
    except Exception as error:
        outcome.failed.append(f"prune: {error}")
    return outcome


def _verifiable(entries: list[Entry], config: StackConfig) -> list[Entry]:
    """The unverified backups a scheduled run can verify: not a database backup of a service
    no longer configured (its roles are gone, so it cannot be restored as its owner). Such a
    backup is kept, unverified, until retention prunes it, and said so once per run; it does not
    fail every run after the service is removed. ``verify --backup ID`` still tries it."""
    configured = {spec.name for spec in config.services}
    chosen = []
    for entry in entries:
        manifest = entry.manifest
        if manifest.kind == "postgres" and manifest.service not in configured:
            print(
                f"postgres/{manifest.service} {manifest.backup_id}: not verified, the service "
                "is no longer configured (kept until retention prunes it)",
                flush=True,
            )
            continue
        chosen.append(entry)
    return chosen


def _verify_url(args: argparse.Namespace, config: StackConfig, credentials: Credentials) -> str:
    """Where verifications restore: the backed-up server, or a separate verification server.

    A separate server holds no service data, so its roles are converged first with throwaway
    passwords: verification restores as each service's owner role, which must exist there.
    """
    from infra.backup.restore import converge
    from infra.credentials import Credentials

    verify_admin = getattr(args, "verify_admin_url", None)
    if not verify_admin:
        return _admin_url(args, credentials)
    url = resolve_admin_url(verify_admin, credentials)
    converge(url, config, Credentials.generate().completed_for(config), None)
    return url


def run_loop(args: argparse.Namespace) -> int:
    """Backup, verify and prune at once, then at every cron time; errors do not stop it.

    The first run does not wait for the schedule: right after `make up` (or a rebuild) there
    is a verified backup of everything to restore, not an hour later.
    """
    from infra.backup import health
    from infra.backup.catalog import utc_now
    from infra.backup.schedule import next_run
    from infra.config import load_stack

    _wait_for_stack_file(args.stack)
    config = load_stack(args.stack)
    status = health.LoopStatus(started=utc_now())
    health.write_status(args.status_file, status)
    runs = 0
    while args.runs == 0 or runs < args.runs:
        if runs == 0:
            print("first backup now", flush=True)
        else:
            due = next_run(config.backup.schedule, utc_now())
            print(f"next backup at {due.isoformat()}", flush=True)
            time.sleep(max(0.0, (due - utc_now()).total_seconds()))
        failed: list[str] = []
        try:
            config, credentials = load(args)
            failed = run_once(args, config, credentials, prune_after=runs > 0).failed
            for failure in failed:
                print(f"error: {failure}", file=sys.stderr, flush=True)
        except Exception as error:  # a scheduler must survive one bad run
            failed = [f"backup run: {error}"]
            print(f"error: backup run: {error}", file=sys.stderr, flush=True)
        status = health.LoopStatus(status.started, utc_now(), tuple(failed))
        health.write_status(args.status_file, status)
        sys.stdout.flush()
        runs += 1
    return 0


def _wait_for_stack_file(stack: str, seconds: float = STACK_FILE_WAIT_SECONDS) -> None:
    """The dev container gets its stack file written by the deploy just after it starts
    (``infra.platforms.docker.backup``): wait for it, bounded; a stack name is not waited on."""
    path = Path(stack)
    if path.suffix not in (".yaml", ".yml"):
        return
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(1)


def run_job(args: argparse.Namespace) -> int:
    """One run, for a scheduler that watches exit codes (the prod Cloud Run job).

    Writes one structured log line per verified backup (Cloud Logging parses JSON lines on
    stdout); the "no verified backup" alert counts those lines. Exit 1 names every failure.
    """
    from infra.config.load import stack_name

    config, credentials = load_admin_only(args)
    outcome = run_once(args, config, credentials)
    for manifest in outcome.verified:
        print(verified_log_line(manifest, stack_name(args.stack)), flush=True)
    if outcome.failed:
        print(f"error: backup-run failed: {'; '.join(outcome.failed)}", file=sys.stderr)
        return 1
    return 0


def verified_log_line(manifest: Manifest, stack: str) -> str:
    """The JSON line that counts as "a verified backup" for monitoring."""
    return json.dumps(
        {
            "severity": "NOTICE",
            "message": f"verified backup {manifest.kind}/{manifest.service} {manifest.backup_id}",
            "event": VERIFIED_EVENT,
            "stack": stack,
            "kind": manifest.kind,
            "service": manifest.service,
            "backup_id": manifest.backup_id,
        },
        sort_keys=True,
    )


def run_health(args: argparse.Namespace) -> int:
    """The backup container's health check: one line, exit 1 when backups stopped or fail."""
    from infra.backup import crypto, health
    from infra.backup.catalog import utc_now
    from infra.config import load_stack

    config = load_stack(args.stack)
    found = health.problems(
        _target(args).bucket,
        [spec.name for spec in config.services],
        config.backup.schedule,
        health.read_status(args.status_file),
        utc_now(),
        crypto.key_from_env(),
    )
    for problem in found:
        print(f"unhealthy: {problem}")
    if not found:
        print("healthy")
    return 1 if found else 0
