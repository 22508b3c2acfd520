"""dr-drill: every service back on an EMPTY server from its newest verified backup."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest

from infra import naming
from infra.backup import drill as drill_module
from infra.backup.dump import Target
from infra.backup.storage import FileBucket
from infra.config import StackConfig
from infra.credentials import Credentials
from infra.postgres import apply
from tests.integration.backup_helpers import (
    admin_url_without_password,
    amqp,
    assert_role_model,
    cli,
    databases,
    fingerprint,
    login_url,
    secrets_path,
    seed,
)
from tests.servers.postgres import PostgresServer
from tests.servers.rabbitmq import RabbitmqServer
from tests.servers.redis import RedisServer

APP = "users"  # the service whose keys and vhost the drill brings back
OTHER = "audit"


def test_dr_drill_rebuilds_every_service_and_reports_rto_rpo(
    postgres: PostgresServer,
    empty_server: PostgresServer,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rendered, credentials = dev_rendered
    secrets = ["--stack", "dev", "--secrets", str(secrets_path(rendered))]
    admin = dev_config.postgres.admin_user
    source = [*secrets, "--admin-url", admin_url_without_password(postgres, admin)]
    target = [*secrets, "--admin-url", admin_url_without_password(empty_server, admin)]
    bucket = f"file://{tmp_path / 'bucket'}"
    apply(postgres.admin_url, dev_config, credentials)
    seed(postgres, credentials, "users")
    seed(
        postgres,
        credentials,
        "audit",
        "CREATE TABLE entries (id serial PRIMARY KEY, what text);"
        "INSERT INTO entries (what) SELECT 'event ' || g FROM generate_series(1, 300) g;",
    )
    assert cli("backup", *source, "--bucket", bucket)[0] == 0
    assert cli("verify", *source, "--bucket", bucket)[0] == 0
    # the prod-dr runbook's target: `pulumi up` has provisioned databases and roles, no data
    apply(empty_server.admin_url, dev_config, credentials)

    # the backup commands' server defaults name live servers: never a drill's scratch targets
    monkeypatch.setenv("PERSISTENCE_REDIS_URL", "redis://127.0.0.1:1")
    monkeypatch.setenv("PERSISTENCE_MANAGEMENT_URL", "http://127.0.0.1:1")
    code, out, err = cli("dr-drill", *target, "--bucket", bucket)
    assert code == 0, err + out
    report = json.loads(out)
    assert report["ok"] is True
    # without scratch Redis and RabbitMQ servers the report says those parts were not drilled
    assert report["redis"] == {"skipped": "no --redis-url"}
    assert report["rabbitmq"] == {"skipped": "no --management-url"}
    assert set(report["services"]) == {s.name for s in dev_config.services}
    for name, item in report["services"].items():
        assert item["ok"], (name, item)
        assert item["recovery_time_s"] > 0
        assert item["recovery_point_s"] >= 0
    assert fingerprint(empty_server, "users") == fingerprint(postgres, "users")
    assert empty_server.superuser_psql("SELECT count(*) FROM entries", "audit") == "300"
    assert not [n for n in databases(empty_server) if "__" in n]
    for spec in dev_config.services:
        assert_role_model(empty_server, spec.name, empty_server.admin_url, dev_config, credentials)
    # the rebuilt server follows the role model: each app login reaches only its own database
    with psycopg.connect(login_url(empty_server, credentials, "audit", "app")) as conn:
        assert conn.execute("SELECT count(*) FROM entries").fetchone() == (300,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            login_url(empty_server, credentials, "users", "app", "audit"), connect_timeout=5
        ).close()

    # a second drill refuses a server that is not empty (it would clobber live data)
    code, _, err = cli("dr-drill", *target, "--bucket", bucket)
    assert code == 2, err
    assert "empty PostgreSQL server" in err
    assert "already hold data" in err


def test_dr_drill_fails_when_a_service_has_no_verified_backup(
    postgres: PostgresServer,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
    tmp_path: Path,
) -> None:
    rendered, credentials = dev_rendered
    fresh = PostgresServer(
        rendered, dev_config.postgres.admin_user, credentials.postgres_admin
    ).initialise()
    try:
        secrets = ["--stack", "dev", "--secrets", str(secrets_path(rendered))]
        bucket = f"file://{tmp_path / 'bucket'}"
        source = [
            *secrets,
            "--admin-url",
            admin_url_without_password(postgres, dev_config.postgres.admin_user),
        ]
        assert cli("backup", *source, "--bucket", bucket, "--service", "users")[0] == 0
        assert cli("verify", *source, "--bucket", bucket)[0] == 0
        code, out, _ = cli(
            "dr-drill",
            *secrets,
            "--admin-url",
            admin_url_without_password(fresh, dev_config.postgres.admin_user),
            "--bucket",
            bucket,
        )
        assert code == 1
        report = json.loads(out)
        assert report["ok"] is False
        assert report["services"]["users"]["ok"] is True
        assert "no verified backup of postgres/auth" in report["services"]["auth"]["error"]
    finally:
        fresh.cleanup()


def test_dr_drill_also_restores_redis_keys_and_rabbitmq_definitions(
    postgres: PostgresServer,
    fresh_redis_server: RedisServer,
    rabbitmq_server: RabbitmqServer,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
    tmp_path: Path,
) -> None:
    rendered, credentials = dev_rendered
    secrets = ["--stack", "dev", "--secrets", str(secrets_path(rendered))]
    admin = dev_config.postgres.admin_user
    bucket = f"file://{tmp_path / 'bucket'}"
    apply(postgres.admin_url, dev_config, credentials)
    seed(postgres, credentials, APP, "CREATE TABLE IF NOT EXISTS drill_marks (id int);")
    app = fresh_redis_server.client(APP, credentials.for_service(APP).redis)
    app.set(f"{APP}:drill:session", "alice", ex=3600)
    app.hset(f"{APP}:drill:cart", mapping={"apples": "3"})
    with amqp(rabbitmq_server, credentials, APP) as connection:
        channel = connection.channel()
        channel.exchange_declare("drill.orders", exchange_type="direct", durable=True)
        channel.queue_declare("drill.invoices", durable=True)
        channel.queue_bind("drill.invoices", "drill.orders", routing_key="invoice")
    pg_source = [*secrets, "--admin-url", admin_url_without_password(postgres, admin)]
    source = [
        *pg_source,
        "--redis-url",
        f"redis://127.0.0.1:{fresh_redis_server.port}",
        "--management-url",
        rabbitmq_server.management_url,
    ]
    try:
        code, _, err = cli("backup", *source, "--bucket", bucket)
    finally:  # the session's broker is shared: leave the vhost as other modules expect it
        rabbitmq_server.api("DELETE", f"/api/queues/{APP}/drill.invoices")
        rabbitmq_server.api("DELETE", f"/api/exchanges/{APP}/drill.orders")
    assert code == 0, err
    code, out, err = cli("verify", *pg_source, "--bucket", bucket)
    assert code == 0, err + out

    scratch_pg = PostgresServer(rendered, admin, credentials.postgres_admin).initialise()
    scratch_redis = RedisServer(rendered).start()
    # booted from the stack's rendered definitions: the managed vhosts, users and permissions
    scratch_broker = RabbitmqServer(
        rendered, dev_config.rabbitmq.admin_user, credentials.rabbitmq_admin
    ).start()
    try:
        target = [
            *secrets,
            "--admin-url",
            admin_url_without_password(scratch_pg, admin),
            "--bucket",
            bucket,
            "--redis-url",
            f"redis://127.0.0.1:{scratch_redis.port}",
            "--management-url",
            scratch_broker.management_url,
        ]
        scratch_admin = scratch_redis.client(dev_config.redis.admin_user, credentials.redis_admin)

        # a Redis already holding a managed service's key is refused before anything changes
        scratch_admin.set(f"{OTHER}:live", "someone's data")
        code, out, err = cli("dr-drill", *target)
        assert code == 2, err + out
        assert f"already holds keys under {OTHER}:" in err
        assert "--redis-url" in err
        assert scratch_admin.keys("*") == [f"{OTHER}:live"]
        assert not {naming.database_name(s.name) for s in dev_config.services} & databases(
            scratch_pg
        )
        assert scratch_broker.api("GET", f"/api/queues/{APP}/drill.invoices") is None

        scratch_admin.delete(f"{OTHER}:live")
        code, out, err = cli("dr-drill", *target)
        assert code == 0, err + out
        report = json.loads(out)
        assert report["ok"] is True, report
        for part in ("redis", "rabbitmq"):
            assert report[part]["ok"] is True, report[part]
            assert report[part]["recovery_time_s"] > 0
            assert report[part]["recovery_point_s"] >= 0
        assert report["redis"]["services"][APP]["restored"] == 2
        assert report["rabbitmq"]["vhosts"][APP]["queues"] >= 1

        restored = scratch_redis.client(APP, credentials.for_service(APP).redis)
        assert restored.get(f"{APP}:drill:session") == "alice"
        assert 3500 < restored.ttl(f"{APP}:drill:session") <= 3600
        assert restored.hgetall(f"{APP}:drill:cart") == {"apples": "3"}
        assert restored.ttl(f"{APP}:drill:cart") == -1
        assert fingerprint(scratch_pg, APP) == fingerprint(postgres, APP)
        with amqp(scratch_broker, credentials, APP) as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish("drill.orders", "invoice", b"after the drill", mandatory=True)
            deadline = time.monotonic() + 10
            body = None
            while body is None and time.monotonic() < deadline:
                _, _, body = channel.basic_get("drill.invoices", auto_ack=True)
            assert body == b"after the drill"

        # a scratch broker without a managed vhost: that part fails, naming the vhost
        scratch_broker.api("DELETE", f"/api/vhosts/{OTHER}")
        broker = drill_module._restore_broker(
            Target(FileBucket(tmp_path / "bucket"), None),
            scratch_broker.management_url,
            dev_config,
            credentials,
            started=time.monotonic(),
        )
        assert broker["ok"] is False
        assert f"no vhost {OTHER}" in broker["error"], broker
    finally:
        scratch_broker.cleanup()
        scratch_redis.cleanup()
        scratch_pg.cleanup()
