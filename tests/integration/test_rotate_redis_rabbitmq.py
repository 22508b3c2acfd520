"""Password rotation reaches all three servers: ``db rotate`` and ``db apply`` as a user runs them.

``db rotate`` used to write new Redis and RabbitMQ passwords into the secrets file and push
neither: the old (possibly leaked) passwords kept working and the new ones were refused. Now a
rotation pushes each password to the server it is given (``--redis-url``, ``--management-url``)
and keeps the ones it has nowhere to push, saying so; ``db apply`` with the same options pushes
what a ``password_version`` bump generated. Real PostgreSQL, Redis and RabbitMQ; another
service's open connections keep working throughout.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest
import redis
import redis.exceptions
import yaml

from infra import naming, secrets_file
from infra.config import StackConfig, load_stack
from infra.credentials import Credentials
from tests.integration import postgres_support
from tests.servers.postgres import PostgresServer
from tests.servers.process import free_port
from tests.servers.rabbitmq import RabbitmqServer
from tests.servers.redis import RedisServer

REPO = Path(__file__).resolve().parents[2]
ROTATING = "rotating"
BYSTANDER = "bystander"
OURS = (ROTATING, BYSTANDER)
UNSET = ("PGPASSWORD", "PERSISTENCE_REDIS_URL", "PERSISTENCE_MANAGEMENT_URL")
REFUSED_AMQP = (pika.exceptions.ProbableAuthenticationError,)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return postgres_support.cli(*args, unset=(*UNSET, "RABBITMQ_ADMIN_PASSWORD"))


def write_stack(path: Path, password_version: int = 1) -> Path:
    """The dev stack (its services live on the shared servers and stay as they are) plus ours."""
    document = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())
    services = document["config"]["persistence:services"]
    services.append({"name": ROTATING, "password_version": password_version})
    services.append({"name": BYSTANDER})
    path.write_text(yaml.safe_dump(document))
    return path


class Stack:
    """Our stack file, its secrets file and the options every command here takes."""

    def __init__(self, root: Path, postgres: PostgresServer, admin_user: str) -> None:
        self.file = write_stack(root / "Pulumi.rot.yaml")
        self.secrets = root / "rot.secrets.json"
        self.admin_url = f"postgresql://{admin_user}@{postgres.host}:{postgres.port}/postgres"

    def options(self) -> list[str]:
        return [
            "--stack",
            str(self.file),
            "--secrets",
            str(self.secrets),
            "--admin-url",
            self.admin_url,
        ]

    def credentials(self) -> Credentials:
        return secrets_file.read(self.secrets)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PostgresServer,
    redis_server: RedisServer,
    rabbitmq_server: RabbitmqServer,
    dev_config: StackConfig,
    dev_rendered: tuple[Path, Credentials],
) -> Iterator[Stack]:
    """Our two services applied to all three servers by ``db apply`` (the shared servers'
    admins have the dev secrets' passwords, which our secrets file starts from)."""
    made = Stack(tmp_path_factory.mktemp("rotate"), postgres, dev_config.postgres.admin_user)
    secrets_file.write(made.secrets, dev_rendered[1])
    result = cli("db", "apply", *made.options(), *urls(redis_server, rabbitmq_server))
    assert result.returncode == 0, result.stderr
    yield made
    admin = redis_server.client(dev_config.redis.admin_user, dev_rendered[1].redis_admin)
    admin.execute_command("ACL", "DELUSER", *OURS)  # type: ignore[no-untyped-call]
    admin.close()
    for name in OURS:
        rabbitmq_server.api("DELETE", f"/api/users/{name}")
        rabbitmq_server.api("DELETE", f"/api/vhosts/{name}")


def urls(redis_server: RedisServer, rabbitmq_server: RabbitmqServer) -> list[str]:
    return [
        "--redis-url",
        f"redis://127.0.0.1:{redis_server.port}",
        "--management-url",
        rabbitmq_server.management_url,
    ]


def redis_login(server: RedisServer, service: str, password: str) -> redis.Redis:
    connection = server.client(naming.redis_user(service), password)
    connection.ping()
    return connection


def amqp_login(server: RabbitmqServer, service: str, password: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(
        pika.ConnectionParameters(
            host="127.0.0.1",
            port=server.amqp_port,
            virtual_host=naming.rabbitmq_vhost(service),
            credentials=pika.PlainCredentials(naming.rabbitmq_user(service), password),
            connection_attempts=1,
        )
    )


def assert_only(
    redis_server: RedisServer, rabbitmq_server: RabbitmqServer, old: Credentials, new: Credentials
) -> None:
    """The rotating service's new Redis and RabbitMQ passwords log in, its old ones do not."""
    before, after = old.for_service(ROTATING), new.for_service(ROTATING)
    assert (before.redis, before.rabbitmq) != (after.redis, after.rabbitmq)
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis_login(redis_server, ROTATING, before.redis)
    redis_login(redis_server, ROTATING, after.redis).close()
    with pytest.raises(REFUSED_AMQP):
        amqp_login(rabbitmq_server, ROTATING, before.rabbitmq)
    amqp_login(rabbitmq_server, ROTATING, after.rabbitmq).close()


def test_rotate_pushes_the_new_redis_and_rabbitmq_passwords(
    stack: Stack, redis_server: RedisServer, rabbitmq_server: RabbitmqServer
) -> None:
    old = stack.credentials()
    bystander = old.for_service(BYSTANDER)
    other_redis = redis_login(redis_server, BYSTANDER, bystander.redis)
    other_id = other_redis.client_id()
    other_amqp = amqp_login(rabbitmq_server, BYSTANDER, bystander.rabbitmq)

    result = cli(
        "db", "rotate", "--service", ROTATING, *stack.options(),
        *urls(redis_server, rabbitmq_server),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    new = stack.credentials()
    assert_only(redis_server, rabbitmq_server, old, new)
    assert f"Redis: ACL users set at redis://127.0.0.1:{redis_server.port}: {ROTATING}" in (
        result.stdout
    )
    assert f"RabbitMQ: definitions imported at {rabbitmq_server.management_url}" in result.stdout
    for secret in (new.for_service(ROTATING).redis, new.for_service(ROTATING).rabbitmq):
        assert secret not in result.stdout + result.stderr

    assert new.for_service(BYSTANDER) == bystander, "only the rotated service changes"
    assert other_redis.client_id() == other_id, "the other service's connection stays"
    other_amqp.channel().queue_declare("", exclusive=True)
    other_amqp.close()
    other_redis.close()


def test_rotate_without_a_server_to_push_to_keeps_that_password_and_says_so(
    stack: Stack, redis_server: RedisServer, rabbitmq_server: RabbitmqServer
) -> None:
    old = stack.credentials().for_service(ROTATING)
    result = cli("db", "rotate", "--service", ROTATING, *stack.options())
    assert result.returncode == 0, result.stderr
    new = stack.credentials().for_service(ROTATING)
    assert new.version == old.version + 1
    assert new.app != old.app, "PostgreSQL is always rotated"
    assert (new.redis, new.rabbitmq) == (old.redis, old.rabbitmq)
    assert "kept the Redis password" in result.stdout, result.stdout
    assert "kept the RabbitMQ password" in result.stdout, result.stdout
    # What the file says is what the servers accept.
    redis_login(redis_server, ROTATING, new.redis).close()
    amqp_login(rabbitmq_server, ROTATING, new.rabbitmq).close()


def test_apply_pushes_the_passwords_a_password_version_bump_generated(
    stack: Stack, redis_server: RedisServer, rabbitmq_server: RabbitmqServer
) -> None:
    old = stack.credentials()
    version = old.for_service(ROTATING).version + 1
    write_stack(stack.file, password_version=version)
    assert load_stack(str(stack.file)).service(ROTATING).password_version == version

    result = cli("db", "apply", *stack.options(), *urls(redis_server, rabbitmq_server))
    assert result.returncode == 0, result.stderr
    new = stack.credentials()
    assert new.for_service(ROTATING).version == version
    assert_only(redis_server, rabbitmq_server, old, new)
    assert new.for_service(BYSTANDER) == old.for_service(BYSTANDER)


def test_apply_without_the_redis_and_broker_urls_says_what_it_did_not_push(stack: Stack) -> None:
    result = cli("db", "apply", *stack.options())
    assert result.returncode == 0, result.stderr
    assert "Redis users not applied: no --redis-url" in result.stdout, result.stdout
    assert "RabbitMQ users not applied: no --management-url" in result.stdout, result.stdout


def test_a_server_that_is_down_fails_alone_and_the_next_apply_pushes(
    stack: Stack, redis_server: RedisServer, rabbitmq_server: RabbitmqServer
) -> None:
    """Redis down: one line naming it and the fix, exit 1; RabbitMQ is rotated all the same,
    and ``db apply`` pushes the Redis password the file already holds once Redis is back."""
    old = stack.credentials()
    down = f"redis://127.0.0.1:{free_port()}"
    result = cli(
        "db", "rotate", "--service", ROTATING, *stack.options(),
        "--redis-url", down, "--management-url", rabbitmq_server.management_url,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"FAILED: Redis at {down}: "), line
    assert "push it with db apply" in line
    new = stack.credentials()
    amqp_login(rabbitmq_server, ROTATING, new.for_service(ROTATING).rabbitmq).close()

    again = cli("db", "apply", *stack.options(), *urls(redis_server, rabbitmq_server))
    assert again.returncode == 0, again.stderr
    assert_only(redis_server, rabbitmq_server, old, new)


def test_a_url_with_a_password_is_refused_before_anything_changes(stack: Stack) -> None:
    before = stack.secrets.read_bytes()
    result = cli(
        "db", "rotate", "--service", ROTATING, *stack.options(),
        "--redis-url", "redis://admin:hunter2@127.0.0.1:6379",
    )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "--redis-url" in line
    assert "hunter2" not in line
    assert stack.secrets.read_bytes() == before
