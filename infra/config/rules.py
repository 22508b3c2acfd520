"""Validation rules for config values. Each returns None, or what is allowed with an example.

Each rule also states what it allows in a few words (``Rule.allowed``): the configuration
reference in the README is generated from it, so the docs say exactly what the check enforces.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra import naming

Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class Rule:
    """A check and the short sentence that says what it allows (for the reference)."""

    check: Check
    allowed: str

    def __call__(self, value: Any) -> str | None:
        return self.check(value)


def allows(allowed: str) -> Callable[[Check], Rule]:
    """Decorate a check with what it allows."""

    def wrap(check: Check) -> Rule:
        return Rule(check, allowed)

    return wrap


SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# Names that PostgreSQL, Cloud SQL, Redis, RabbitMQ or pg_hba.conf treat specially, and the
# tooling's own database: no service and no admin login may take them.
BUILTIN_NAMES = frozenset(
    {
        "postgres",
        "template0",
        "template1",
        "public",
        "all",
        "none",
        "replication",
        "sameuser",
        "samerole",
        "samehost",
        "samenet",
        "current_role",
        "current_user",
        "session_user",
        "user",
        "default",
        "guest",
        "cloudsqladmin",
        "cloudsqlagent",
        "cloudsqlsuperuser",
        "cloudsqlreplica",
        "cloudsqliamuser",
        "cloudsqliamserviceaccount",
        "cloudsqlimportexport",
        "information_schema",
        naming.TOOLING_DATABASE,
    }
)
# Service names may not take the admin logins' usual names either.
# "pgbouncer" is the pooler's console database: a service database of that name could not be
# reached through the pooler.
RESERVED_NAMES = BUILTIN_NAMES | {"admin", "platform", "platform_admin", "pgbouncer"}


@allows(
    "lowercase letters, digits and single underscores, starting with a letter; at most "
    f"{naming.MAX_SERVICE_NAME_BYTES} bytes; not a reserved name (postgres, public, admin, pg_...)"
)
def service_name(value: str) -> str | None:
    """A service name becomes a database, role prefix, Redis user and RabbitMQ vhost."""
    example = (
        "use lowercase letters, digits and underscores, starting with a letter "
        "(e.g. 'user_profiles')"
    )
    if not SERVICE_NAME.match(value):
        return f"{value!r} is not a valid service name: {example}"
    if "__" in value or value.endswith("_"):
        return f"{value!r} is not allowed: no double or trailing underscores (e.g. 'user_profiles')"
    if value.startswith("pg_"):
        return f"{value!r} is reserved: names starting with 'pg_' belong to PostgreSQL"
    if value in RESERVED_NAMES:
        return (
            f"{value!r} is a reserved name (PostgreSQL, Cloud SQL, PgBouncer, Redis or RabbitMQ "
            "use it); choose another"
        )
    size = len(value.encode())
    if size > naming.MAX_SERVICE_NAME_BYTES:
        return (
            f"{value[:20]!r}... is {size} bytes; service names may be at most "
            f"{naming.MAX_SERVICE_NAME_BYTES} bytes so that every derived name (the longest is "
            f"'<name>{naming.LONGEST_SUFFIX}') fits PostgreSQL's "
            f"{naming.POSTGRES_IDENTIFIER_BYTES}-byte limit"
        )
    return None


def between(low: float, high: float, unit: str = "") -> Rule:
    """An inclusive numeric range."""

    def check(value: float) -> str | None:
        if low <= value <= high:
            return None
        return f"{value!r} is out of range; allowed: {allowed}"

    allowed = f"{_number(low)} to {_number(high)}{unit}"
    return Rule(check, allowed)


def _number(value: float) -> str:
    """Whole numbers in full (2592000000, not 2.592e+09), others as written."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# RabbitMQ cluster sizes: quorum queues and pause_minority need a strict majority to survive a
# node loss, so an even count buys nothing over the odd count below it; more than 5 replicas
# slow every quorum queue's writes for little extra safety (RabbitMQ's own advice).
QUORUM_NODE_COUNTS = (1, 3, 5)


@allows("1, 3 or 5 (an odd number for quorum)")
def quorum_nodes(value: int) -> str | None:
    """How many RabbitMQ nodes: one, or an odd cluster that keeps a majority after a loss."""
    if value in QUORUM_NODE_COUNTS:
        return None
    return f"{value!r} is not allowed: an odd number for quorum: 1, 3 or 5 (e.g. 3)"


@allows("1024 to 65535")
def port(value: int) -> str | None:
    """A TCP port a non-root process may publish."""
    if 1024 <= value <= 65535:
        return None
    return f"{value!r} is not a usable port; allowed: 1024 to 65535 (e.g. 15432)"


_CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


@allows("five-field cron expression in UTC, e.g. `0 3 * * *`")
def cron_schedule(value: str) -> str | None:
    """A five-field cron expression (minute hour day month weekday), evaluated in UTC."""
    allowed = "a five-field cron expression in UTC, e.g. '0 3 * * *' (03:00 every day)"
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        return f"{value!r} is not {allowed}"
    for field, (low, high) in zip(fields, _CRON_RANGES, strict=True):
        for number in re.findall(r"\d+", re.sub(r"/\d+", "", field)):
            if not low <= int(number) <= high:
                return f"{value!r} has {number} out of range {low}-{high}; use {allowed}"
    return None


_EXTENSION = re.compile(r"^[a-z][a-z0-9_-]*$")


@allows("extension names (lowercase letters, digits, `_`, `-`), each once")
def extension_names(value: tuple[str, ...]) -> str | None:
    """PostgreSQL extension names, e.g. pgcrypto or uuid-ossp."""
    for name in value:
        if not _EXTENSION.match(name):
            return f"{name!r} is not an extension name; use e.g. 'pgcrypto' or 'uuid-ossp'"
    if len(set(value)) != len(value):
        return "lists an extension twice"
    return None


_QUEUE = re.compile(r"^[a-z][a-z0-9_.-]*$")


@allows("lowercase letters, digits, `.`, `-`, `_`; at most 200; not starting with `amq.`")
def queue_name(value: str) -> str | None:
    """An AMQP queue name inside the service's own vhost."""
    if _QUEUE.match(value) and len(value) <= 200 and not value.startswith("amq."):
        return None
    return (
        f"{value!r} is not a queue name; use lowercase letters, digits, '.', '-' and '_' "
        "(e.g. 'orders.created')"
    )


def identifier(example: str) -> Rule:
    """A lowercase identifier such as an admin login name."""

    def check(value: str) -> str | None:
        if SERVICE_NAME.match(value) and len(value.encode()) <= naming.POSTGRES_IDENTIFIER_BYTES:
            return None
        return (
            f"{value!r} is not allowed; use lowercase letters, digits and underscores "
            f"(e.g. {example!r})"
        )

    return Rule(
        check,
        "lowercase letters, digits and underscores, starting with a letter; at most "
        f"{naming.POSTGRES_IDENTIFIER_BYTES} bytes",
    )


def admin_name(example: str) -> Rule:
    """An admin login: an identifier that is not a name the servers or the tool keep."""
    plain = identifier(example)

    def check(value: str) -> str | None:
        problem = plain(value)
        if problem is not None:
            return problem
        if value in BUILTIN_NAMES or value.startswith("pg_"):
            return (
                f"{value!r} is a name PostgreSQL, Cloud SQL, Redis or RabbitMQ keep for "
                f"themselves (postgres, default, guest, pg_...); choose another, e.g. {example!r}"
            )
        if "__" in value:
            return (
                f"{value!r} is not allowed: '__' marks names the tool derives for services "
                f"(e.g. 'users__tool'); choose another, e.g. {example!r}"
            )
        return None

    return Rule(
        check,
        plain.allowed + "; no double underscore; not a built-in name (postgres, default, guest, "
        "pg_...) nor any name derived from a service's name",
    )


def one_of(*allowed: str) -> Rule:
    """A closed set of strings."""

    def check(value: str) -> str | None:
        if value in allowed:
            return None
        return f"{value!r} is not allowed; use one of: {', '.join(allowed)}"

    return Rule(check, "one of " + ", ".join(f"`{item}`" for item in allowed))


_POSTGRES_MEMBER = re.compile(r"^postgres(-replica-[1-5])?$")


@allows(
    "empty (the stack's first server, `postgres`, bootstrapped it), or the member `db promote` "
    "made the primary: `postgres` or `postgres-replica-<n>`"
)
def postgres_member_or_empty(value: str) -> str | None:
    if value == "" or _POSTGRES_MEMBER.match(value):
        return None
    return f"{value!r} is not a PostgreSQL member; use postgres or postgres-replica-<n> (1 to 5)"


_GCP_REGION = re.compile(r"^[a-z]+-[a-z]+\d+$")


@allows("a Google Cloud region, e.g. `europe-west1`")
def gcp_region(value: str) -> str | None:
    """A Google Cloud region such as europe-west1."""
    if _GCP_REGION.match(value):
        return None
    return f"{value!r} is not a Google Cloud region; use e.g. 'europe-west1'"


@allows("empty, or a Google Cloud region, e.g. `europe-west4`")
def gcp_region_or_empty(value: str) -> str | None:
    """Nothing, or a Google Cloud region."""
    return gcp_region(value) if value else None


# What names.scoped makes of `<pulumi project>-<stack>` and the DR replica's base ("pg-dr").
_DR_REPLICA_NAME = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?-pg-dr$")


@allows("empty, or a Cloud SQL instance name ending in `-pg-dr`, e.g. `persistence-prod-pg-dr`")
def adoptable_sql_instance_or_empty(value: str) -> str | None:
    """Nothing, or the name this tool gives a stack's disaster-recovery replica: adoption never
    takes over an instance it did not create."""
    if value == "" or (len(value) <= 63 and _DR_REPLICA_NAME.match(value)):
        return None
    return (
        f"{value!r} is not a disaster-recovery replica this tool created; use the promoted "
        "replica's name, e.g. 'persistence-prod-pg-dr' (`pulumi stack output "
        "postgres_dr_replica --stack prod`)"
    )


@allows("a private IPv4 range, /8 to /29")
def ipv4_cidr(value: str) -> str | None:
    """A private IPv4 range such as 10.20.0.0/24."""
    try:
        network = ipaddress.IPv4Network(value)
    except ValueError:
        network = None
    if network is not None and network.is_private and 8 <= network.prefixlen <= 29:
        return None
    return f"{value!r} is not a private IPv4 range; use e.g. '10.20.0.0/24'"


@allows("a loopback IPv4 address (127.0.0.0/8)")
def loopback_address(value: str) -> str | None:
    """Dev servers publish on a loopback address only, never on the machine's network."""
    try:
        if ipaddress.IPv4Address(value).is_loopback:
            return None
    except ValueError:
        pass
    return (
        f"{value!r} is not a loopback address; dev servers publish on loopback only "
        "(e.g. '127.0.0.1')"
    )


@allows("an IPv4 address")
def ipv4_address(value: str) -> str | None:
    """A literal IPv4 address such as 127.0.0.1."""
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return f"{value!r} is not an IPv4 address; use e.g. '127.0.0.1'"
    return None


@allows("empty, or an absolute path")
def absolute_path_or_empty(value: str) -> str | None:
    if value == "" or value.startswith("/"):
        return None
    return f"{value!r} is not an absolute path; use e.g. /srv/backups/dev, or leave it out"


_GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")


@allows("`owner/name` of a GitHub repository")
def github_repository(value: str) -> str | None:
    """``owner/name``: it is spliced into the identity pool's attribute condition, so no quotes."""
    if value == "" or (_GITHUB_REPOSITORY.match(value) and value.split("/")[1] not in (".", "..")):
        return None
    return f"{value!r} is not a GitHub repository; use owner/name (e.g. 'example-org/persistence')"


_GIT_BRANCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")


@allows("a branch name (no wildcards, no `..`)")
def git_branch(value: str) -> str | None:
    """A branch name as it appears after ``refs/heads/`` (no wildcards, no quotes)."""
    if _GIT_BRANCH.match(value) and ".." not in value and not value.endswith((".", "/")):
        return None
    return f"{value!r} is not a branch name; use e.g. 'main'"


_ENVIRONMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@allows("letters, digits, `.`, `-`, `_`; at most 100")
def github_environment(value: str) -> str | None:
    """A GitHub environment name, matched exactly in the deployer's binding."""
    if _ENVIRONMENT.match(value):
        return None
    return f"{value!r} is not a GitHub environment name; use e.g. 'prod'"


_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


@allows("e-mail addresses, each once")
def email_addresses(value: tuple[str, ...]) -> str | None:
    """Alert recipients: plain addresses, each once."""
    bad = [address for address in value if not _EMAIL.match(address)]
    if bad:
        return f"{bad[0]!r} is not an e-mail address; use e.g. ['oncall@example.com']"
    if len(set(value)) != len(value):
        return "lists an address twice; give each once (e.g. ['oncall@example.com'])"
    return None


_GCS_OBJECT = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/[^\s]+$")


@allows("gs:// object URIs, each once")
def gcs_object_uris(value: tuple[str, ...]) -> str | None:
    """RDB files in Cloud Storage for a new instance to load: full object URIs."""
    bad = [uri for uri in value if not isinstance(uri, str) or not _GCS_OBJECT.match(uri)]
    if bad:
        return f"{bad[0]!r} is not a Cloud Storage object; use e.g. ['gs://bucket/redis/x.rdb']"
    if len(set(value)) != len(value):
        return "lists an object twice; give each once (e.g. ['gs://bucket/redis/x.rdb'])"
    return None


_SQL_TIER = re.compile(r"^db-(f1-micro|g1-small|custom-\d+-\d+|perf-optimized-N-\d+)$")

# The tiers each Cloud SQL edition runs on: Enterprise Plus only on its performance-optimized
# machines, Enterprise on custom (and shared-core) ones; an edition change is a tier change.
_EDITION_TIER = {
    "ENTERPRISE_PLUS": re.compile(r"^db-perf-optimized-N-\d+$"),
    "ENTERPRISE": re.compile(r"^db-(f1-micro|g1-small|custom-\d+-\d+)$"),
}
SQL_EDITION_TIERS = {
    "ENTERPRISE_PLUS": "ENTERPRISE_PLUS runs on 'db-perf-optimized-N-<vCPUs>' tiers "
    "(e.g. gcp: {sql_edition: ENTERPRISE_PLUS, sql_tier: db-perf-optimized-N-2})",
    "ENTERPRISE": "ENTERPRISE runs on 'db-custom-<vCPUs>-<MiB>', 'db-g1-small' or "
    "'db-f1-micro' tiers (e.g. gcp: {sql_edition: ENTERPRISE, sql_tier: db-custom-2-7680})",
}


def sql_tier_fits(edition: str, tier: str) -> bool:
    """Whether Cloud SQL's ``edition`` runs on machine ``tier``."""
    return bool(_EDITION_TIER[edition].match(tier))


@allows("a Cloud SQL tier that fits `sql_edition` (`db-perf-optimized-N-2`, `db-custom-2-7680`)")
def sql_tier(value: str) -> str | None:
    """A Cloud SQL machine tier of either edition (which one fits is checked with both keys)."""
    if _SQL_TIER.match(value):
        return None
    return (
        f"{value!r} is not a Cloud SQL tier; use e.g. 'db-perf-optimized-N-2' (ENTERPRISE_PLUS) "
        "or 'db-custom-2-7680' (ENTERPRISE)"
    )


@allows("empty, or a Cloud SQL tier (`db-f1-micro`, `db-g1-small`, `db-custom-N-M`)")
def sql_tier_or_empty(value: str) -> str | None:
    """Empty (no separate instance) or a Cloud SQL machine tier."""
    if value == "" or _SQL_TIER.match(value):
        return None
    return (
        f"{value!r} is not a Cloud SQL tier; use e.g. 'db-g1-small', or leave it out to verify "
        "on the main instance"
    )
