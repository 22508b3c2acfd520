"""Password verifiers the servers accept instead of plaintext.

PostgreSQL takes a SCRAM-SHA-256 verifier in CREATE/ALTER ROLE ... PASSWORD, Redis takes
``#<sha256>`` in its ACL file, and RabbitMQ takes a salted SHA-256 hash in its definitions.
Salts for rendered files are derived from the password itself so the same credentials always
render the same bytes (stable diffs in ``pulumi preview``) without exposing anything new.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCRAM_ITERATIONS = 4096  # PostgreSQL's default for scram_iterations
# Service logins' passwords are generated, 256 random bits (infra.credentials; 238 in Pulumi
# runs): no number of PBKDF2 iterations makes guessing one any less hopeless, while every login
# costs the *client* all of them (pgbench -C: 4096 iterations were most of a pooled login's
# time). PostgreSQL 16 made the count a setting (scram_iterations) for this trade. Admin and
# human-chosen passwords keep PostgreSQL's 4096.
SERVICE_LOGIN_ITERATIONS = 1024


def scram_sha256_verifier(
    password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS
) -> str:
    """The verifier PostgreSQL stores for ``password`` (RFC 5802 / RFC 7677)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
        f"${b64(stored_key).decode()}:{b64(server_key).decode()}"
    )


def postgres_login_verifier(password: str) -> str:
    """The one verifier a service login's password gets, on the server and in the pooler.

    Its salt is derived from the password, so the verifier PostgreSQL stores is byte for byte
    the one PgBouncer's auth file holds: PgBouncer can then log in to the server with the keys
    the client's own SCRAM exchange proved (SCRAM pass-through), and no file holds a password.
    """
    salt = deterministic_salt(password, "postgres-login")
    return scram_sha256_verifier(password, salt, SERVICE_LOGIN_ITERATIONS)


def redis_acl_hash(password: str) -> str:
    """The ``#<hex>`` form Redis ACL files accept in place of ``>password``."""
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def rabbitmq_password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    if salt is None:
        salt = hmac.new(password.encode(), b"rabbitmq-salt", hashlib.sha256).digest()[:4]
    digest = hashlib.sha256(salt + password.encode()).digest()
    return base64.b64encode(salt + digest).decode()


def deterministic_salt(password: str, purpose: str) -> bytes:
    """A salt that is stable for one password and purpose, for reproducible rendered files."""
    return hmac.new(password.encode(), purpose.encode(), hashlib.sha256).digest()[:16]
