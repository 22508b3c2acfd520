"""The dev stack's life cycle under the real Pulumi engine and a real Docker engine, driven by
the README's commands: ``make up``, ``make preview``, ``make env``, ``make drift``, ``make down``,
``make rebuild`` and plain ``pulumi`` after ``make shellenv``, as subprocesses.

The tests run in file order and share one stack (module scope): each step starts from where
the previous one left it, as a team's stack does. Every check goes through real client
connections or Docker's own view, never through the program's outputs alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika
import psycopg
import pytest
import redis

from infra.backup import crypto
from infra.commands import backup as commands
from infra.credentials import credentials_from_json
from infra.platforms.gcp import backup_job
from infra.postgres.driver import console_rows
from tests.e2e.dockerd import DockerEngine
from tests.e2e.stack import (
    PREFIX,
    REPLICAS,
    SERVERS,
    STACK,
    E2eStack,
    container_health,
    docker,
)

# Every container: the data servers and the read replica, the pooler (no data: no volume) and the
# backup scheduler.
DATA_SERVERS = (*SERVERS, *REPLICAS)
CONTAINERS = [
    f"{PREFIX}-{server}" for server in (*DATA_SERVERS, "pooler", "postgres-router", "backup")
]
SERVICE_DATABASE = "pulumi-python:dynamic:Resource"  # ServiceDatabase, as the engine sees it
MARKER = "written before the disaster"


def _ops_of(ops: dict[str, str], fragment: str) -> dict[str, str]:
    return {urn: op for urn, op in ops.items() if fragment in urn}


def _changed(ops: dict[str, str]) -> dict[str, str]:
    """Resource name -> operation, for everything that changed. Provider instances are not
    infrastructure: the dynamic provider is handed the whole stack config, so any config edit
    "updates" it without touching a resource."""
    return {
        urn.rsplit("::", 1)[-1]: op
        for urn, op in ops.items()
        if op not in ("same", "read") and "::pulumi:providers:" not in urn
    }


def _wait_healthy(names: list[str], seconds: float = 240) -> dict[str, str]:
    deadline = time.monotonic() + seconds
    while True:
        health = container_health(names)
        if all(state in ("healthy", "running") for state in health.values()):
            return health
        if time.monotonic() > deadline:
            why = {
                name: docker("inspect", "--format", "{{json .State.Health.Log}}", name)[-800:]
                for name, state in health.items()
                if state not in ("healthy", "running")
            }
            raise AssertionError(f"containers not healthy after {seconds}s: {health}; {why}")
        time.sleep(2)


def _connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, connect_timeout=10, autocommit=True)


def test_first_preview_of_a_fresh_stack_succeeds(stack: E2eStack) -> None:
    """`make preview` before anything exists: every password is unknown until apply."""
    completed = stack.preview()
    for spec in stack.services:
        assert f"{spec['name']}-database" in completed.stdout, completed.stdout[-3000:]


def test_first_up_from_nothing_provisions_every_service(stack: E2eStack) -> None:
    ops = stack.up()
    creates = [urn for urn, op in ops.items() if op == "create"]
    dynamic = _ops_of(ops, SERVICE_DATABASE)
    databases = {urn: op for urn, op in dynamic.items() if urn.endswith("-database")}
    assert sorted(urn.rsplit("::", 1)[-1] for urn in databases) == sorted(
        f"{s['name']}-database" for s in stack.services
    ), databases
    assert all(op == "create" for op in ops.values() if op != "same"), _changed(ops)
    assert creates, "nothing was created"
    # `pulumi up` returned: every container is healthy and every database is provisioned.
    health = container_health(CONTAINERS)
    assert {health[f"{PREFIX}-{s}"] for s in (*DATA_SERVERS, "pooler")} == {"healthy"}, health
    assert health[f"{PREFIX}-backup"] in ("starting", "healthy"), health

    envs = stack.env_files()  # `make up` wrote them
    for name, env in envs.items():
        for variable in ("DATABASE_URL", "MIGRATION_DATABASE_URL", "READONLY_DATABASE_URL"):
            with _connect(env[variable]) as conn:
                assert conn.execute("select current_database()").fetchone() == (name,)
        client = redis.Redis.from_url(env["REDIS_URL"], retry=None, socket_timeout=10)
        assert client.ping()
        connection = pika.BlockingConnection(pika.URLParameters(env["AMQP_URL"]))
        connection.close()


def test_isolation_holds_against_the_containers(stack: E2eStack) -> None:
    envs = stack.env_files()
    orders, billing = envs["orders"], envs["billing"]
    with _connect(orders["MIGRATION_DATABASE_URL"]) as conn:
        conn.execute("create table if not exists ledger (id serial primary key, note text)")
    with _connect(orders["DATABASE_URL"]) as conn:
        conn.execute("insert into ledger (note) values (%s)", (MARKER,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("create table sneaky (id int)")
    _wait_replayed(stack)
    with _connect(orders["READONLY_DATABASE_URL"]) as conn:
        assert conn.execute("select count(*) from ledger").fetchone() == (1,)
        # The read replica refuses any write (and the read-only login could not write anyway).
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("insert into ledger (note) values ('no')")
    # billing's login on orders' database, through the pooler (which reaches PostgreSQL by its
    # socket): refused by orders' CONNECT privilege.
    foreign = billing["DATABASE_URL"].rsplit("/", 1)[0] + "/orders"
    with pytest.raises(psycopg.OperationalError, match='permission denied for database "orders"'):
        _connect(foreign).close()
    # Straight to PostgreSQL over the network: pg_hba.conf has no line for it.
    direct = billing["MIGRATION_DATABASE_URL"].rsplit("/", 1)[0] + "/orders"
    with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):
        _connect(direct).close()

    client = redis.Redis.from_url(orders["REDIS_URL"], retry=None, socket_timeout=10)
    client.set(f"{orders['REDIS_KEY_PREFIX']}probe", "1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.set("billing:probe", "1")

    other_vhost = billing["AMQP_URL"].rsplit("/", 1)[0] + "/orders"
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.URLParameters(other_vhost)).close()


def test_the_pooler_shares_the_server_socket_but_cannot_log_in_as_the_superuser(
    stack: E2eStack,
) -> None:
    """PgBouncer reaches PostgreSQL through the server's socket directory, where pg_hba.conf
    admits the server's own uid 999 as the superuser by peer: PgBouncer runs as uid 6432 with no
    capability (it cannot become 999), and peer refuses that uid."""
    pooler = f"{PREFIX}-pooler"
    superuser = ["psql", "-h", "/run/postgresql-server", "-U", "postgres", "-d", "postgres",
                 "-Atc", "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"]  # fmt: skip
    status = docker("exec", pooler, "cat", "/proc/1/status")
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Name"] == "pgbouncer", fields
    assert fields["Uid"].split() == ["6432"] * 4, fields["Uid"]
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert fields[cap] == "0" * 16, (cap, fields[cap])
    refused = subprocess.run(["docker", "exec", "--user", "6432", pooler, *superuser],
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert refused.returncode != 0, refused.stdout
    assert 'Peer authentication failed for user "postgres"' in refused.stderr, refused.stderr
    # The control: the socket is reachable from the pooler, and uid 999 there would be admitted.
    assert docker("exec", "--user", "999", pooler, *superuser) == "t"


def test_reads_are_served_by_the_replica_and_make_lag_reports_it(stack: E2eStack) -> None:
    """READONLY_DATABASE_URL as `make up` wrote it reaches the read replica (a hot standby) as
    the service's read-only login; a write through DATABASE_URL is readable there within 1 s;
    `make lag` (the README's way to watch the replicas) sees the replica streaming."""
    orders = stack.env_files()["orders"]
    with _connect(orders["MIGRATION_DATABASE_URL"]) as conn:
        conn.execute("create table if not exists beats (id int primary key)")
    _wait_replayed(stack)  # the table itself, before its rows are timed
    with (
        _connect(orders["DATABASE_URL"]) as writer,
        _connect(orders["READONLY_DATABASE_URL"]) as reader,
    ):
        row = reader.execute("select pg_is_in_recovery(), current_user, current_database()")
        assert row.fetchone() == (True, "orders_readonly", "orders")
        assert reader.execute("select current_setting('cluster_name')").fetchone() == ("replica_1",)
        for beat in range(20):
            writer.execute("insert into beats values (%s)", (beat,))
            written = time.monotonic()
            while reader.execute("select 1 from beats where id = %s", (beat,)).fetchone() is None:
                assert time.monotonic() - written < 1.0, f"beat {beat} not replicated in 1 s"
                time.sleep(0.005)
    lag = stack.make("lag")
    assert lag.stdout.splitlines()[-1] == "1 replica(s), all streaming within 30 s", lag.stdout
    assert re.search(r"^replica_1 +streaming ", lag.stdout, re.M), lag.stdout
    # The replication login's password reaches the replica as a secret file only.
    replica = f"{PREFIX}-{REPLICAS[0]}"
    mode = docker("exec", replica, "stat", "-c", "%a %u", "/run/secrets/replication.pgpass")
    assert mode == "400 999", mode
    conf = docker("exec", replica, "cat", "/etc/postgresql/replica.conf")
    password = json.loads(stack.outputs()["credentials"])["postgres_replication"]
    assert password not in conf


def test_no_perpetual_diff_right_after_up(stack: E2eStack) -> None:
    stack.preview_expecting_no_changes()


def test_the_stack_file_without_its_salt_still_works(stack: E2eStack) -> None:
    """Git never holds the passphrase's salt (.gitattributes), so a pull or a checkout of the
    stack file drops it from the developer's copy: Pulumi writes a new one from the same
    passphrase, and the stack's secrets still decrypt (integration: test_stack_file_salt.py)."""
    stack_file = stack.project / f"Pulumi.{STACK}.yaml"
    text = stack_file.read_text()
    assert re.search(r"^encryptionsalt: ", text, re.M), "make up wrote no salt into the stack file"
    stack_file.write_text(re.sub(r"^encryptionsalt: .*\n", "", text, flags=re.M))
    stack.preview_expecting_no_changes()
    assert re.search(r"^encryptionsalt: ", stack_file.read_text(), re.M)
    stack.make("env")  # `pulumi stack output --show-secrets`: the state's secrets decrypt


def test_plain_pulumi_works_after_the_readmes_one_line(stack: E2eStack) -> None:
    """README: `eval "$(make -s shellenv)"`, then plain `pulumi` commands from the checkout."""
    completed = stack.shell(f"pulumi preview --stack {STACK} --expect-no-changes")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    assert "PULUMI_ACCESS_TOKEN" not in completed.stderr


def test_make_env_rewrites_the_env_files(stack: E2eStack) -> None:
    before = stack.env_files()
    shutil.rmtree(stack.env_dir)
    stack.make("env")
    assert stack.env_files() == before  # and each is 0600 (env_files checks)


def _container_ids() -> dict[str, str]:
    return {name: docker("inspect", "--format", "{{.Id}}", name) for name in CONTAINERS}


def test_adding_a_service_previews_then_creates_only_its_resources(stack: E2eStack) -> None:
    """The most common change: a preview (a pull request's) and `make up`, with another
    service's PostgreSQL session, Redis connection and AMQP consumer open across it."""
    orders = stack.env_files()["orders"]
    containers = _container_ids()
    stack.services.append({"name": "shipping", "queues": [{"name": "shipping.sent"}]})
    stack.write_stack_file()

    preview = stack.preview()
    assert "shipping-database" in preview.stdout, preview.stdout[-3000:]

    # A direct session proves PostgreSQL kept running (its backend is the same); a pooled one
    # proves the pooler did (in transaction mode its server connection may change, its client
    # connection may not).
    session = _connect(orders["MIGRATION_DATABASE_URL"])
    backend = session.execute("select pg_backend_pid()").fetchone()
    pooled = _connect(orders["DATABASE_URL"])
    pooled.execute("select 1")
    client = redis.Redis.from_url(orders["REDIS_URL"], retry=None, socket_timeout=10)
    client_id = client.client_id()
    amqp = pika.BlockingConnection(pika.URLParameters(orders["AMQP_URL"]))
    channel = amqp.channel()
    channel.basic_consume("orders.placed", lambda *_: None)
    try:
        started = time.monotonic()
        changed = _changed(stack.up())
        (stack.root / "add-service-seconds").write_text(f"{time.monotonic() - started:.1f}\n")
        shipping = {name: op for name, op in changed.items() if name.startswith("shipping-")}
        assert shipping, changed
        assert set(shipping.values()) == {"create"}, changed
        for existing in ("orders", "billing"):
            touched = {n: op for n, op in changed.items() if n.startswith(f"{existing}-")}
            assert not touched, f"{existing}'s resources changed when shipping was added: {touched}"
        replaced = {n: op for n, op in changed.items() if "replace" in op or op == "delete"}
        assert not replaced, f"adding a service replaced: {replaced}"
        # No server restarted: the same containers, and every open connection still answers.
        assert _container_ids() == containers
        assert session.execute("select pg_backend_pid()").fetchone() == backend
        assert pooled.execute("select current_user").fetchone() == ("orders_app",)
        assert client.client_id() == client_id
        amqp.process_data_events(time_limit=0)
        assert channel.is_open
    finally:
        session.close()
        pooled.close()
        client.close()
        amqp.close()
    shipping_env = stack.env_files()["shipping"]  # `make up` wrote the new service's file
    with _connect(shipping_env["DATABASE_URL"]) as conn:
        assert conn.execute("select current_database()").fetchone() == ("shipping",)
    assert redis.Redis.from_url(shipping_env["REDIS_URL"], retry=None, socket_timeout=10).ping()
    pika.BlockingConnection(pika.URLParameters(shipping_env["AMQP_URL"])).close()
    stack.preview_expecting_no_changes()


def test_changing_one_limit_updates_only_that_database(stack: E2eStack) -> None:
    stack.services[1]["connection_limits"]["app"] = 6
    stack.write_stack_file()
    changed = _changed(stack.up())
    # The role's limit, and the pooler's cap on that login's server connections (a reload).
    assert changed == {"billing-database": "update", "pooler-live-config": "update"}, changed
    outputs = stack.outputs()
    with _connect(outputs["postgres_admin_url"]) as conn:
        limit = conn.execute(
            "select rolconnlimit from pg_roles where rolname = 'billing_app'"
        ).fetchone()
    assert limit == (6,)
    users = {row["name"]: row for row in console_rows(outputs["pooler_console_url"], "SHOW USERS")}
    assert users["billing_app"]["max_user_connections"] == 6, users["billing_app"]
    # `make pools`, as the README has a user watch the pooler: a client of billing is seen.
    with _connect(stack.env_files()["billing"]["DATABASE_URL"]) as conn:
        conn.execute("select 1")
        pools = stack.make("pools").stdout
    lines = pools.splitlines()
    table = lines[[line.split()[:1] for line in lines].index(["service"]) + 1 :]  # after make's
    rows = {line.split()[0]: line.split()[1:] for line in table if line.strip()}
    assert set(rows) == {s["name"] for s in stack.services}, pools
    assert int(rows["billing"][0]) >= 1, pools  # its client connection
    assert outputs["pooler_console_url"].split("@")[0] not in pools


def test_removing_a_service_keeps_its_data(stack: E2eStack) -> None:
    shipping_env = stack.env_files()["shipping"]
    with _connect(shipping_env["MIGRATION_DATABASE_URL"]) as conn:
        conn.execute("create table parcels (id int)")
        conn.execute("insert into parcels values (42)")
    stack.services.pop()
    stack.write_stack_file()
    changed = _changed(stack.up())
    assert changed.get("shipping-database") == "delete", changed
    with _connect(stack.outputs()["postgres_admin_url"]) as conn:
        assert conn.execute("select 1 from pg_database where datname = 'shipping'").fetchone()
        assert conn.execute("select 1 from pg_roles where rolname = 'shipping_migrator'").fetchone()


def _wait_replayed(stack: E2eStack, seconds: float = 30) -> None:
    """Until every replica has replayed all the primary has written (reads through
    READONLY_DATABASE_URL are served by the replicas, asynchronously)."""
    deadline = time.monotonic() + seconds
    with _connect(stack.outputs()["postgres_admin_url"]) as conn:
        target = conn.execute("select pg_current_wal_lsn()").fetchone()
        query = (
            "select count(*) from pg_stat_replication where state = 'streaming'"
            " and replay_lsn >= %s"
        )
        while conn.execute(query, target).fetchone() != (len(REPLICAS),):
            assert time.monotonic() < deadline, "the replica has not caught up"
            time.sleep(0.1)


def _ledger(stack: E2eStack) -> list[str]:
    _wait_replayed(stack)
    with _connect(stack.env_files()["orders"]["READONLY_DATABASE_URL"]) as conn:
        return [row[0] for row in conn.execute("select note from ledger order by id")]


def test_data_survives_a_container_restart(stack: E2eStack) -> None:
    docker("restart", f"{PREFIX}-postgres")
    _wait_healthy(CONTAINERS)
    assert _ledger(stack) == [MARKER]


def test_data_survives_a_docker_engine_restart(
    stack: E2eStack, docker_engine: DockerEngine
) -> None:
    if not docker_engine.started_here:
        if os.environ.get("CI"):
            pytest.fail("CI must run its own dockerd (the tests start one when none answers)")
        pytest.skip("the Docker engine was not started by this test run; not restarting it")
    docker_engine.restart()
    _wait_healthy(CONTAINERS)
    assert _ledger(stack) == [MARKER]
    stack.preview_expecting_no_changes()


def test_data_survives_make_down_and_up(stack: E2eStack) -> None:
    down = stack.down()
    volumes = docker("volume", "ls", "-q", "--filter", f"label=persistence.stack={PREFIX}")
    assert set(volumes.split()) == {f"{PREFIX}-{s}-data" for s in DATA_SERVERS}, volumes
    # `make down` says what it kept and how to delete it.
    assert "data volumes are kept" in down.stdout, down.stdout[-2000:]
    assert f"docker volume rm {PREFIX}-" in down.stdout, down.stdout[-2000:]
    stack.up()
    assert _ledger(stack) == [MARKER]


def _verified_backups(stack: E2eStack) -> dict[str, list[dict[str, Any]]]:
    listed = stack.cli("list", "--bucket", f"file://{stack.backups}", "--json")
    found: dict[str, list[dict[str, Any]]] = {}
    for item in json.loads(listed.stdout):
        if item["kind"] == "postgres" and item["state"] == "verified":
            found.setdefault(item["service"], []).append(item)
    return found


def test_the_backup_container_takes_verified_backups(stack: E2eStack) -> None:
    names = [s["name"] for s in stack.services]
    deadline = time.monotonic() + 300  # the e2e schedule runs every minute
    while True:
        verified = _verified_backups(stack)
        if all(verified.get(name) for name in names):
            break
        if time.monotonic() > deadline:
            logs = docker("logs", "--tail", "40", f"{PREFIX}-backup", check=False)
            raise AssertionError(f"no verified backup of every service: {verified}\n{logs}")
        time.sleep(5)
    # Sealed with the key the first `make up` generated beside the passphrase (mode 0600).
    key_file = stack.root / "backup-key"
    assert key_file.stat().st_mode & 0o777 == 0o600, oct(key_file.stat().st_mode)
    _assert_sealed(stack.backups)


def _assert_sealed(bucket: Path) -> None:
    """Every backup in ``bucket`` is encrypted and its manifest authenticated (a MAC)."""
    manifests = sorted(bucket.glob("*/*/*/manifest.json"))
    assert manifests, f"no manifest under {bucket}"
    for path in manifests:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        assert manifest["encrypted"] is True, f"{path}: not encrypted"
        assert manifest.get("mac"), f"{path}: not authenticated"


def _wait_for_health(name: str, wanted: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (state := container_health([name])[name]) != wanted:
        if time.monotonic() > deadline:
            logs = docker("logs", "--tail", "20", name, check=False)
            raise AssertionError(f"{name} is {state}, not {wanted}, after {seconds}s\n{logs}")
        time.sleep(3)


def test_the_backup_container_turns_unhealthy_when_backups_stop(stack: E2eStack) -> None:
    backup = f"{PREFIX}-backup"
    _wait_for_health(backup, "healthy", 120)
    docker("stop", f"{PREFIX}-postgres")  # the next scheduled run fails
    try:
        _wait_for_health(backup, "unhealthy", 240)
    finally:
        docker("start", f"{PREFIX}-postgres")
    _wait_for_health(backup, "healthy", 240)  # the next run succeeds again
    _wait_healthy(CONTAINERS)


def test_the_prod_jobs_command_runs_from_the_backup_image(stack: E2eStack, tmp_path: Path) -> None:
    """Exactly the Cloud Run job's command line and environment, from the image the stack
    built, against the e2e servers: it ends with verified backups in a local bucket."""
    bucket = tmp_path / "job-bucket"
    bucket.mkdir()
    stack_file = backup_job.stack_file_path_for("e2e")
    (tmp_path / "stack.yaml").write_text(
        (stack.project / "Pulumi.e2e.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    env_file = tmp_path / "job.env"  # the password never on a command line
    env_file.touch(mode=0o600)
    admin = credentials_from_json(stack.outputs()["credentials"]).postgres_admin
    env_file.write_text(
        f"{commands.BUCKET_ENV}=file:///backups\n"
        f"{commands.ADMIN_URL_ENV}=postgresql://platform_admin@postgres:5432/postgres\n"
        f"{commands.ADMIN_PASSWORD_ENV}={admin}\nCI=1\n"
        # The job reads the deploy's backup key from Secret Manager: here, the one make made.
        f"{crypto.KEY_ENV}={(stack.root / 'backup-key').read_text(encoding='utf-8').strip()}\n",
        encoding="utf-8",
    )
    image = docker("inspect", "--format", "{{.Image}}", f"{PREFIX}-backup")
    output = docker(
        "run", "--rm", "--network", f"{PREFIX}-net", "--env-file", str(env_file),
        "--volume", f"{bucket}:/backups", "--volume", f"{tmp_path / 'stack.yaml'}:{stack_file}:ro",
        image, *backup_job.job_args(stack_file),
        timeout=600,
    )  # fmt: skip
    verified = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert sorted(line["service"] for line in verified) == sorted(
        s["name"] for s in stack.services
    ), output
    listed = stack.cli("list", "--bucket", f"file://{bucket}", "--json")
    states = {item["service"]: item["state"] for item in json.loads(listed.stdout)}
    assert all(states[s["name"]] == "verified" for s in stack.services), states
    _assert_sealed(bucket)


def test_disaster_recovery_rebuilds_and_restores_with_one_command(stack: E2eStack) -> None:
    """`make rebuild` brings back every part the backups hold: each service's database, its
    Redis keys (with their TTLs) and what its application declared in its vhost."""
    orders = stack.env_files()["orders"]
    written = datetime.now(UTC)
    cache = redis.Redis.from_url(orders["REDIS_URL"], retry=None, socket_timeout=10)
    cache.set("orders:session:1", "alice", ex=3600)
    cache.hset("orders:cart:1", mapping={"sku": "42", "qty": "2"})
    with pika.BlockingConnection(pika.URLParameters(orders["AMQP_URL"])) as connection:
        channel = connection.channel()
        channel.exchange_declare("e2e.x", exchange_type="direct", durable=True)
        channel.queue_declare("e2e.q", durable=True)
        channel.queue_bind("e2e.q", "e2e.x", routing_key="k")
    stack.wait_for_verified_backups(
        written, {("postgres", "orders"), ("redis", "orders"), ("rabbitmq", "server")}
    )

    # The disaster, behind Pulumi's back: every container and every data volume is gone.
    for name in CONTAINERS:
        docker("rm", "-f", name)
    for server in DATA_SERVERS:
        docker("volume", "rm", f"{PREFIX}-{server}-data")

    completed = stack.make("rebuild")
    assert "\r" not in completed.stdout, "progress with carriage returns: one endless CI line"
    report = json.loads(completed.stdout[completed.stdout.index("\n{") :])
    # Kept with pytest's temporary folders (the last three runs), for the RTO/RPO figures.
    (stack.root / "rebuild-report.json").write_text(json.dumps(report, indent=2))
    assert report["ok"], report
    for name in ("orders", "billing"):
        assert report["services"][name]["recovery_time_s"] > 0, report
        assert f"{name}: restored" in completed.stdout
    assert _ledger(stack) == [MARKER]
    assert report["redis"]["ok"], report["redis"]
    assert report["rabbitmq"]["ok"], report["rabbitmq"]
    assert report["redis"]["services"]["orders"]["restored"] >= 2, report["redis"]
    assert all(part["refused"] == 0 for part in report["redis"]["services"].values()), report
    assert report["redis"]["recovery_time_s"] > 0
    assert report["rabbitmq"]["recovery_time_s"] > 0
    assert report["rabbitmq"]["recovery_point_s"] >= 0, report["rabbitmq"]
    declared = report["rabbitmq"]["vhosts"]["orders"]
    assert declared["queues"] >= 1, declared
    assert declared["exchanges"] >= 1, declared
    assert declared["bindings"] >= 1, declared
    _wait_healthy(CONTAINERS)

    # Through the service's own logins: the keys with their TTL, the binding routes again.
    cache = redis.Redis.from_url(orders["REDIS_URL"], retry=None, socket_timeout=10)
    assert cache.get("orders:session:1") == b"alice"
    assert 0 < cache.ttl("orders:session:1") <= 3600
    assert cache.hgetall("orders:cart:1") == {b"sku": b"42", b"qty": b"2"}
    with pika.BlockingConnection(pika.URLParameters(orders["AMQP_URL"])) as connection:
        channel = connection.channel()
        channel.basic_publish("e2e.x", "k", b"after the disaster")
        deadline = time.monotonic() + 10
        while (got := channel.basic_get("e2e.q", auto_ack=True))[2] is None:
            assert time.monotonic() < deadline, "the restored binding does not route"
            time.sleep(0.2)
        assert got[2] == b"after the disaster"


def test_no_drift_after_all_of_that(stack: E2eStack) -> None:
    # The very target the scheduled drift workflow runs (.github/workflows/drift.yml): exit 0,
    # and no refresh noise (values the provider only reports back differently) in its output.
    drift = stack.make("drift")
    assert drift.stdout.splitlines()[-1].startswith("no drift"), drift.stdout[-4000:]


def test_the_drift_target_fails_on_drift_and_shows_only_it(stack: E2eStack) -> None:
    docker("stop", f"{PREFIX}-redis")  # changed behind Pulumi's back
    try:
        drift = stack.make("drift", check=False)
        assert drift.returncode != 0, drift.stdout[-3000:] + drift.stderr[-2000:]
        report = drift.stdout[drift.stdout.index("drift: ") :].splitlines()
        assert report[0].endswith("differ from the stack's program after a refresh:"), report
        # The stopped container, and what takes its id as an input (its live config): nothing
        # else, and none of the refresh's reported-back values.
        steps = report[1:]
        assert any("docker:index/container:Container redis: mustRun" in s for s in steps), report
        assert all(" redis" in step for step in steps), report
    finally:
        docker("start", f"{PREFIX}-redis")
        _wait_healthy(CONTAINERS)
