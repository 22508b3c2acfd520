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
SCRATCH_SUFFIXES = ("__verify", "__restore", "__old_YYYYMMDDHHMMSS")

LONGEST_SUFFIX_BYTES = max(
    [len(f"_{s}".encode()) for s in ROLE_SUFFIXES] + [len(s.encode()) for s in SCRATCH_SUFFIXES]
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
