"""Every name derived from a service name, in one place.

PostgreSQL truncates identifiers at 63 bytes, so a service name is only valid if its longest
derived name still fits. Keep new suffixes here so that limit stays true.
"""

from __future__ import annotations

import re
from datetime import datetime

POSTGRES_IDENTIFIER_BYTES = 63

# The login kinds a service gets (each is ``<service>_<kind>``), and the role that owns its
# database and objects; the connection limits in the config have one field per login kind.
OWNER_KIND = "owner"
LOGIN_SUFFIXES = ("migrator", "app", "readonly")
ROLE_SUFFIXES = (OWNER_KIND, *LOGIN_SUFFIXES)

# Databases the backup tooling creates next to a service's own; "__" cannot occur in a
# service name, so these can never collide with another service's database.
VERIFY_SUFFIX = "__verify"
RESTORE_SUFFIX = "__restore"
# The database a restore replaced, kept as ``<service>__old_<UTC time>`` until a verified dump
# of it exists; ``__safety`` is the one being dumped now (the tool login may reach it, see
# pg_hba.conf).
OLD_COPY_PREFIX = "__old_"
OLD_COPY_TIME_FORMAT = "%Y%m%d%H%M%S"
# Its longest form (computed from the format, so the byte budget follows any change to it).
OLD_COPY_SUFFIX = OLD_COPY_PREFIX + datetime.max.strftime(OLD_COPY_TIME_FORMAT)
SAFETY_SUFFIX = "__safety"
SCRATCH_SUFFIXES = (VERIFY_SUFFIX, RESTORE_SUFFIX, SAFETY_SUFFIX, OLD_COPY_SUFFIX)

# The pooler's name for a service's database on the read replicas (READONLY_DATABASE_URL's
# database when the stack has replicas): PgBouncer spreads its server connections over them.
# A pooler alias only, never a PostgreSQL database; "__" keeps it from any service's name.
REPLICAS_ALIAS_SUFFIX = "__replicas"

# The tool's own database (owned by the admin, CONNECT revoked from PUBLIC): the registry of the
# databases it created (bound to their OIDs) and its advisory locks live there, where no service
# login can connect, write or take a lock (see infra.postgres.registry).
TOOLING_DATABASE = "persistence_tooling"

# The short-lived login the backup tooling restores, dumps and counts rows as (a member of the
# owner role only), so a service's own code never runs with the admin's privileges.
TOOL_LOGIN_SUFFIX = "__tool"

# Every suffix a PostgreSQL name derived from a service name can carry; the longest one sets
# how long a service name may be.
DERIVED_SUFFIXES = (
    *(f"_{kind}" for kind in ROLE_SUFFIXES),
    *SCRATCH_SUFFIXES,
    TOOL_LOGIN_SUFFIX,
)
LONGEST_SUFFIX = max(DERIVED_SUFFIXES, key=lambda suffix: len(suffix.encode()))
LONGEST_SUFFIX_BYTES = len(LONGEST_SUFFIX.encode())
MAX_SERVICE_NAME_BYTES = POSTGRES_IDENTIFIER_BYTES - LONGEST_SUFFIX_BYTES


def replicas_alias(service: str) -> str:
    """The pooler's alias for the service's database on the read replicas."""
    return f"{service}{REPLICAS_ALIAS_SUFFIX}"


def database_name(service: str) -> str:
    """The service's own database."""
    return service


def role_name(service: str, kind: str) -> str:
    """One of the service's roles: owner, migrator, app or readonly."""
    if kind not in ROLE_SUFFIXES:
        raise ValueError(f"unknown role kind {kind!r}")
    return f"{service}_{kind}"


def owner_role(service: str) -> str:
    """The role that owns the service's database and objects (it never logs in)."""
    return role_name(service, OWNER_KIND)


def tool_login(service: str) -> str:
    """The backup tooling's short-lived login for one service (see infra.postgres.tooling)."""
    return f"{service}{TOOL_LOGIN_SUFFIX}"


def scratch_databases(service: str) -> list[str]:
    """The databases the backup tooling may create or reach for a service (not the __old_ ones).

    The tool login's pg_hba.conf line lists exactly these (PostgreSQL 15 has no wildcards).
    """
    return [f"{service}{suffix}" for suffix in (VERIFY_SUFFIX, RESTORE_SUFFIX, SAFETY_SUFFIX)]


def old_copy_pattern(service: str) -> str:
    """A regular expression that matches exactly the service's ``__old_<UTC time>`` copies."""
    digits = len(datetime.max.strftime(OLD_COPY_TIME_FORMAT))
    return re.escape(database_name(service) + OLD_COPY_PREFIX) + rf"\d{{{digits}}}"


def old_copy(service: str, moment: datetime) -> str:
    """The name a restore keeps the replaced database under: ``<service>__old_<UTC time>``."""
    return f"{database_name(service)}{OLD_COPY_PREFIX}{moment:{OLD_COPY_TIME_FORMAT}}"


def postgres_names(service: str) -> frozenset[str]:
    """Every PostgreSQL database and role the tool derives from a service name."""
    return frozenset(
        {
            database_name(service),
            *(role_name(service, kind) for kind in ROLE_SUFFIXES),
            tool_login(service),
            *scratch_databases(service),
        }
    )


def derived_names(service: str) -> frozenset[str]:
    """Every name on any of the three servers that belongs to the service.

    An admin login must not take one of them: Redis refuses to start with two ``user`` lines of
    one name, and a RabbitMQ user of the service's name would replace the administrator.
    """
    return postgres_names(service) | {
        redis_user(service),
        rabbitmq_user(service),
        rabbitmq_vhost(service),
    }


def redis_user(service: str) -> str:
    """The service's Redis ACL user."""
    return service


def redis_key_prefix(service: str) -> str:
    """Every key and channel of the service lives under this prefix."""
    return f"{service}:"


def rabbitmq_vhost(service: str) -> str:
    """The service's RabbitMQ virtual host."""
    return service


def rabbitmq_user(service: str) -> str:
    """The service's RabbitMQ user."""
    return service


def dead_letter_exchange(service: str) -> str:
    """The exchange that receives a service's rejected and expired messages."""
    return f"{service}.dlx"


def service_account_base(service: str) -> str:
    """The stack-free base of the service's GCP service account id (see gcp ``names``).

    Underscores become hyphens (service names cannot contain hyphens, so this is one-to-one).
    """
    return "svc-" + service.replace("_", "-")


def postgres_secret_id(service: str, kind: str) -> str:
    """Base of the Secret Manager id holding one PostgreSQL login's URL (scoped per stack)."""
    if kind not in LOGIN_SUFFIXES:
        raise ValueError(f"unknown login kind {kind!r}")
    return f"{service}-postgres-{kind}"


def rabbitmq_secret_id(service: str) -> str:
    """Base of the Secret Manager id holding the service's AMQP URL (scoped per stack)."""
    return f"{service}-rabbitmq"


def redis_secret_id(service: str) -> str:
    """Base of the Secret Manager id holding the service's REDIS_URL (scoped per stack)."""
    return f"{service}-redis"


def dead_letter_queue(service: str) -> str:
    """The durable queue bound to the service's dead-letter exchange, so nothing is lost."""
    return f"{service}.dead-letter"


def redis_session_prefix(service: str) -> str:
    """Session keys live under the service's own prefix, so its ACL user confines them too."""
    return f"{redis_key_prefix(service)}session:"
