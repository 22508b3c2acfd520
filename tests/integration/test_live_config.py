"""The live apply against real servers: a service is added, changed and removed on the RUNNING
Redis and RabbitMQ, while another service's open connection keeps working on the same socket;
objects not made by us are never touched; a second run changes nothing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pika
import pytest
import redis

from infra.broker import live as broker_live
from infra.broker.management import ManagementApi
from infra.config import StackConfig
from infra.config.model import QueueSpec, ServiceSpec
from infra.credentials import Credentials
from infra.live import redis_acl
from infra.render import rabbitmq as mq_render
from infra.render import redis as redis_render
from tests.servers.rabbitmq import RabbitmqServer
from tests.servers.redis import RedisServer


def _cmd(client: redis.Redis, *args: str) -> object:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


OTHER = "livekeep"  # the service whose connection must survive
NEW = "liveadd"


def _config(
    dev_config: StackConfig, *names: str, queues: tuple[QueueSpec, ...] = ()
) -> StackConfig:
    """The dev services (the shared servers hold them: never removed here) plus ``names``."""
    specs = tuple(ServiceSpec(name=n, queues=queues if n == NEW else ()) for n in names)
    return replace(dev_config, services=(*dev_config.services, *specs))


@pytest.fixture
def credentials(dev_rendered: tuple[Path, Credentials], dev_config: StackConfig) -> Credentials:
    return dev_rendered[1].completed_for(_config(dev_config, OTHER, NEW))


def test_redis_users_added_changed_removed_live(
    redis_server: RedisServer, dev_config: StackConfig, credentials: Credentials
) -> None:
    admin = dev_config.redis.admin_user
    admin_client = redis_server.client(admin, credentials.redis_admin)
    _cmd(admin_client, "ACL", "SETUSER", "handmade", "on", ">pw", "~hand:*", "+get")

    def apply(config: StackConfig, managed: set[str]) -> redis_acl.AclReport:
        users = redis_render.service_users(config, credentials)
        return redis_acl.apply(
            "127.0.0.1", redis_server.port, admin, credentials.redis_admin, users, managed
        )

    first = apply(_config(dev_config, OTHER), set())
    assert first.changed == [OTHER]
    other = redis_server.client(OTHER, credentials.for_service(OTHER).redis)
    other.set(f"{OTHER}:k", "v")
    client_id = _cmd(other, "CLIENT", "ID")

    added = apply(_config(dev_config, OTHER, NEW), {OTHER})
    assert added.changed == [NEW], "only the new user changes"
    new = redis_server.client(NEW, credentials.for_service(NEW).redis)
    new.set(f"{NEW}:k", "v")
    with pytest.raises(redis.exceptions.NoPermissionError):
        new.get(f"{OTHER}:k")
    assert _cmd(other, "CLIENT", "ID") == client_id, "same connection after an add"

    rotated = replace(credentials, services={**credentials.services})
    rotated = rotated.rotated(NEW)
    changed = redis_acl.apply(
        "127.0.0.1",
        redis_server.port,
        admin,
        credentials.redis_admin,
        redis_render.service_users(_config(dev_config, OTHER, NEW), rotated),
        {OTHER, NEW},
    )
    assert changed.changed == [NEW]
    redis_server.client(NEW, rotated.for_service(NEW).redis).ping()
    assert _cmd(other, "CLIENT", "ID") == client_id, "same connection after a change"

    removed = apply(_config(dev_config, OTHER), {OTHER, NEW})
    assert removed.removed == [NEW]
    assert removed.changed == []
    users = {u.decode() if isinstance(u, bytes) else u for u in admin_client.acl_users()}
    assert NEW not in users
    assert {"handmade", "default", admin, OTHER} <= users
    assert other.get(f"{OTHER}:k") in (b"v", "v")
    assert _cmd(other, "CLIENT", "ID") == client_id, "same connection after a removal"

    again = apply(_config(dev_config, OTHER), {OTHER})
    assert again == redis_acl.AclReport(), "a second run changes nothing"
    _cmd(admin_client, "ACL", "DELUSER", "handmade", OTHER)


def test_redis_live_users_equal_the_acl_file_a_restart_loads(
    dev_config: StackConfig, credentials: Credentials
) -> None:
    config = _config(dev_config, OTHER, NEW)
    text = redis_render.users_acl(config, credentials)
    for name, user in redis_render.service_users(config, credentials).items():
        assert user["password_hash"] in text
        assert f"user {name} on" in text


def _consume(
    server: RabbitmqServer, credentials: Credentials
) -> tuple[pika.BlockingConnection, list[bytes]]:
    connection = pika.BlockingConnection(
        pika.ConnectionParameters(
            host="127.0.0.1",
            port=server.amqp_port,
            virtual_host=OTHER,
            credentials=pika.PlainCredentials(OTHER, credentials.for_service(OTHER).rabbitmq),
            connection_attempts=1,
        )
    )
    channel = connection.channel()
    channel.queue_declare("live.q", durable=True)
    received: list[bytes] = []
    channel.basic_consume("live.q", lambda ch, m, p, body: received.append(body), auto_ack=True)
    return connection, received


def test_broker_vhosts_added_changed_removed_live(
    rabbitmq_server: RabbitmqServer, dev_config: StackConfig, credentials: Credentials
) -> None:
    api = ManagementApi(
        rabbitmq_server.management_url, dev_config.rabbitmq.admin_user, credentials.rabbitmq_admin
    )
    rabbitmq_server.api("PUT", "/api/vhosts/handmade-live", {})

    def apply(config: StackConfig) -> broker_live.BrokerReport:
        return broker_live.apply(api, mq_render.definitions(config, credentials))

    apply(_config(dev_config, OTHER))
    connection, received = _consume(rabbitmq_server, credentials)
    publisher = connection.channel()

    def roundtrip(body: bytes) -> None:
        publisher.basic_publish("", "live.q", body)
        connection.process_data_events(time_limit=1)
        assert body in received, "the consumer stopped consuming"

    roundtrip(b"before")
    added = apply(_config(dev_config, OTHER, NEW, queues=(QueueSpec(name="liveadd.jobs"),)))
    assert added.created_vhosts == [NEW]
    assert added.removed == []
    roundtrip(b"after-add")
    changed = apply(
        _config(dev_config, OTHER, NEW, queues=(QueueSpec(name="liveadd.jobs", max_length=5),))
    )
    assert changed.created_vhosts == []
    policies = rabbitmq_server.api("GET", f"/api/policies/{NEW}")
    assert [p["definition"]["max-length"] for p in policies] == [5]
    roundtrip(b"after-change")
    removed = apply(_config(dev_config, OTHER))
    assert removed.removed == [f"user {NEW}", f"vhost {NEW}"]
    roundtrip(b"after-remove")
    vhosts = {v["name"] for v in rabbitmq_server.api("GET", "/api/vhosts")}
    assert "handmade-live" in vhosts
    assert NEW not in vhosts
    assert OTHER in vhosts
    again = apply(_config(dev_config, OTHER))
    assert again == broker_live.BrokerReport(), "a second run changes nothing"
    roundtrip(b"after-rerun")
    connection.close()
    for path in ("/api/vhosts/handmade-live", f"/api/users/{OTHER}", f"/api/vhosts/{OTHER}"):
        rabbitmq_server.api("DELETE", path)
