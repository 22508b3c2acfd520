"""Every name derived from a service name, in one place.

PostgreSQL truncates identifiers at 63 bytes, so a service name is only valid if its longest
derived name still fits. Keep new suffixes here so that limit stays true.
"""

from __future__ import annotations

POSTGRES_IDENTIFIER_BYTES = 63

ROLE_SUFFIXES = ("owner", "migrator", "app", "readonly")
LOGIN_SUFFIXES = ("migrator", "app", "readonly")

# Databases the backup tooling creates next to a service's own; "__" cannot occur in a
# service name, so these can never collide with another service's database.
# ``__old_<time>``: a database a restore replaced, kept until a verified dump of it exists;
# ``__safety``: the one being dumped now (the tool login may reach it, see pg_hba.conf).
SCRATCH_SUFFIXES = ("__verify", "__restore", "__safety", "__old_YYYYMMDDHHMMSS")

# The short-lived login the backup tooling restores, dumps and counts rows as (a member of the
# owner role only), so a service's own code never runs with the admin's privileges.
TOOL_LOGIN_SUFFIX = "__tool"

LONGEST_SUFFIX_BYTES = max(
    [len(f"_{s}".encode()) for s in ROLE_SUFFIXES]
    + [len(s.encode()) for s in (*SCRATCH_SUFFIXES, TOOL_LOGIN_SUFFIX)]
)
MAX_SERVICE_NAME_BYTES = POSTGRES_IDENTIFIER_BYTES - LONGEST_SUFFIX_BYTES


def database_name(service: str) -> str:
    """The service's own database."""
    return service


def role_name(service: str, kind: str) -> str:
    """One of the service's roles: owner, migrator, app or readonly."""
    if kind not in ROLE_SUFFIXES:
        raise ValueError(f"unknown role kind {kind!r}")
    return f"{service}_{kind}"


def tool_login(service: str) -> str:
    """The backup tooling's short-lived login for one service (see infra.postgres.tooling)."""
    return f"{service}{TOOL_LOGIN_SUFFIX}"


def scratch_databases(service: str) -> list[str]:
    """The databases the backup tooling may create for a service (not the __old_ copies)."""
    return [f"{service}{suffix}" for suffix in SCRATCH_SUFFIXES if not suffix.startswith("__old")]


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


REDIS_AUTH_SECRET_ID = "redis-auth"  # noqa: S105 - a secret's id, not its value


def dead_letter_queue(service: str) -> str:
    """The durable queue bound to the service's dead-letter exchange, so nothing is lost."""
    return f"{service}.dead-letter"


def redis_session_prefix(service: str) -> str:
    """Session keys live under the service's own prefix, so its ACL user confines them too."""
    return f"{redis_key_prefix(service)}session:"
