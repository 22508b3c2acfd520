"""Redis (RDB snapshot) and RabbitMQ (definitions) backups against real servers."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from infra.backup.catalog import entries
from infra.backup.storage import FileBucket
from infra.config import StackConfig
from infra.credentials import Credentials
from infra.postgres import apply
from tests.integration.backup_helpers import admin_url_without_password, cli, secrets_path
from tests.servers.postgres import PostgresServer
from tests.servers.rabbitmq import RabbitmqServer
from tests.servers.redis import RedisServer


def test_backup_covers_postgres_redis_and_rabbitmq(
    postgres: PostgresServer,
    redis_server: RedisServer,
    rabbitmq_server: RabbitmqServer,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
    tmp_path: Path,
) -> None:
    rendered, credentials = dev_rendered
    apply(postgres.admin_url, dev_config, credentials)
    client = redis.Redis(
        port=redis_server.port, username="users", password=credentials.for_service("users").redis
    )
    client.set("users:session:42", "marker-value-for-backup")
    # The Redis server is shared by the session's tests: count what is under the prefix now.
    admin = redis.Redis(
        port=redis_server.port,
        username=dev_config.redis.admin_user,
        password=credentials.redis_admin,
    )
    under_prefix = sum(1 for _ in admin.scan_iter(match="users:*"))
    root = tmp_path / "bucket"
    common = [
        "--stack",
        "dev",
        "--secrets",
        str(secrets_path(rendered)),
        "--bucket",
        f"file://{root}",
        "--admin-url",
        admin_url_without_password(postgres, dev_config.postgres.admin_user),
    ]

    code, out, err = cli(
        "backup",
        *common,
        "--redis-url",
        f"redis://127.0.0.1:{redis_server.port}",
        "--management-url",
        rabbitmq_server.management_url,
    )
    assert code == 0, err
    found = {(e.manifest.kind, e.manifest.service): e for e in entries(FileBucket(root), key=None)}
    assert set(found) == {("postgres", s.name) for s in dev_config.services} | {
        ("redis", s.name) for s in dev_config.services if s.redis
    } | {("redis", "server"), ("rabbitmq", "server")}
    keys = found["redis", "users"].manifest  # the service's own keys, what rebuild restores
    assert (keys.format, keys.row_counts["keys"]) == ("redis-keys", under_prefix)
    rdb = found["redis", "server"].manifest
    rdb_bytes = (root / rdb.object_name).read_bytes()
    assert rdb_bytes.startswith(b"REDIS")
    assert b"users:session:42" in rdb_bytes
    # Valkey's own version, not the Redis version it reports for compatibility (7.2.4)
    assert rdb.server_version.startswith("8.0."), rdb.server_version
    assert rdb.tool == "valkey-cli --rdb"
    definitions = json.loads((root / found["rabbitmq", "server"].manifest.object_name).read_bytes())
    assert {"users", "events"} <= {vhost["name"] for vhost in definitions["vhosts"]}
    assert "users.created" in {queue["name"] for queue in definitions["queues"]}
    # no secret in what the command printed
    assert credentials.redis_admin not in out + err
    assert credentials.rabbitmq_admin not in out + err

    code, out, err = cli("verify", *common)
    assert code == 0, err + out
    assert {e.state for e in entries(FileBucket(root), key=None)} == {"verified"}

    # a flipped byte in the snapshot is caught
    code, _, _ = cli("backup", *common, "--redis-url", f"redis://127.0.0.1:{redis_server.port}")
    newest = next(
        e for e in entries(FileBucket(root), "redis", "server", key=None) if e.state == "unverified"
    )
    path = root / newest.manifest.object_name
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    code, _, err = cli("verify", *common, "--service", "server")
    assert code == 1, err
    assert "fails its checksum" in err


def test_passwords_in_urls_are_refused(
    postgres: PostgresServer,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
    tmp_path: Path,
) -> None:
    rendered, _ = dev_rendered
    code, _, err = cli(
        "backup",
        "--stack",
        "dev",
        "--secrets",
        str(secrets_path(rendered)),
        "--bucket",
        f"file://{tmp_path}",
        "--admin-url",
        admin_url_without_password(postgres, dev_config.postgres.admin_user),
        "--redis-url",
        "redis://admin:hunter2@127.0.0.1:1",
    )
    assert code == 1, err
    assert "never the command line" in err
