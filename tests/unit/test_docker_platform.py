"""The dev stack under Pulumi mocks: what the real program declares for ``platform: docker``."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from infra.config.model import StackConfig
from infra.credentials import Credentials, ServiceCredentials
from infra.pulumi_credentials import SERVICE_LOGINS
from infra.render import boot_files
from infra.render.endpoints import MANAGEMENT_PORT
from tests.unit.pulumi_mocks import OUTPUT_HOOKS, ProgramRun, is_secret, run_program, stack_config

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
NETWORK = "docker:index/network:Network"
IMAGE = "docker:index/remoteImage:RemoteImage"
DYNAMIC = "pulumi-python:dynamic:Resource"
PASSWORD = "random:index/randomPassword:RandomPassword"
SERVERS = ("postgres", "redis", "rabbitmq")
REPLICA = "postgres-replica-1"  # Pulumi.dev.yaml's postgres.replicas: 1
DATA_SERVERS = (*SERVERS, REPLICA)


# Values no default or stack file uses: a program that ignored a setting and hard-coded the
# default would still pass a check against Pulumi.dev.yaml (which keeps the defaults).
PORTS = {"postgres": 25001, "redis": 25002, "amqp": 25003, "management": 25004, "pooler": 25005}
MEMORY = {"postgres": 1111, "redis": 333, "rabbitmq": 999, "backup": 222, "pooler": 77}


@pytest.fixture(scope="module")
def run() -> ProgramRun:
    return run_program("dev")


@pytest.fixture(scope="module")
def changed() -> ProgramRun:
    """The dev stack with every host port and memory limit changed."""
    config = stack_config("dev")
    config["persistence:docker"] = json.dumps({"ports": PORTS, "memory_mb": MEMORY})
    return run_program("dev", config)


def mock_password(name: str) -> str:
    """The value the mocks give RandomPassword ``name`` (see tests/unit/pulumi_mocks.py)."""
    return str(OUTPUT_HOOKS[PASSWORD](name, {})["result"])


@pytest.fixture(scope="module")
def mock_credentials(dev_config: StackConfig) -> Credentials:
    """The credentials the program built from the mocked RandomPassword results."""
    return Credentials(
        postgres_superuser=mock_password("postgres-superuser"),
        postgres_admin=mock_password("postgres-admin"),
        redis_admin=mock_password("redis-admin"),
        rabbitmq_admin=mock_password("rabbitmq-admin"),
        postgres_replication=mock_password("postgres-replication"),
        services={
            s.name: ServiceCredentials(
                **{login: mock_password(f"{s.name}-{login}") for login in SERVICE_LOGINS},
                version=s.password_version,
            )
            for s in dev_config.services
        },
    )


def uploads(container: Any) -> dict[str, dict[str, Any]]:
    return {u["file"]: u for u in container.inputs["uploads"]}


def test_one_component_parents_everything(run: ProgramRun) -> None:
    component = run.one("persistence:docker:Platform", "dev")
    below = {r.urn for r in run.below(component)}
    outside = [str(r) for r in run if r.urn not in below and r is not component]
    assert len(below) == len(run.declared) - 1 > 20
    assert not outside, f"not parented to persistence:docker:Platform: {outside}"


def data_volumes(run: ProgramRun) -> list[Any]:
    return [v for v in run.of_type(VOLUME) if v.name.endswith("-data")]


def test_every_data_volume_outlives_the_stack(run: ProgramRun) -> None:
    volumes = data_volumes(run)
    assert len(volumes) == len(DATA_SERVERS)
    for volume in volumes:
        assert volume.retain_on_delete, f"{volume}: `pulumi destroy` would delete its data"


def test_the_pooler_reaches_postgresql_through_its_socket_as_a_uid_peer_refuses(
    run: ProgramRun,
) -> None:
    socket = run.one(VOLUME, "postgres-socket")
    # A tmpfs owned by the server's uid: no data, nothing left over from an earlier server.
    assert socket.inputs["driverOpts"]["type"] == "tmpfs", socket
    assert "uid=999,gid=999,mode=0755" in socket.inputs["driverOpts"]["o"], socket
    mounts = {
        name: {v["volumeName"]: v for v in run.one(CONTAINER, name).inputs["volumes"]}
        for name in ("postgres", "pooler")
    }
    assert mounts["postgres"]["persistence-dev-postgres-socket"] == {
        "volumeName": "persistence-dev-postgres-socket",
        "containerPath": "/var/run/postgresql",
        "readOnly": False,
    }
    assert mounts["pooler"] == {
        "persistence-dev-postgres-socket": {
            "volumeName": "persistence-dev-postgres-socket",
            "containerPath": "/run/postgresql-server",
            "readOnly": True,
        }
    }
    pooler = run.one(CONTAINER, "pooler")
    # uid 999 is admitted by peer as the superuser there: the pooler can never become it.
    assert pooler.inputs["capabilities"] == {
        "drops": ["ALL"],
        # The entrypoint's drop to uid 6432, the reload; as Docker reports them back.
        "adds": ["CAP_KILL", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID"],
    }, pooler
    assert {(u["owner"], u["group"]) for u in uploads(pooler).values()} == {("6432", "6432")}


def test_a_private_bridge_network(run: ProgramRun) -> None:
    network = run.one(NETWORK)
    assert network.inputs["driver"] == "bridge", network
    assert network.inputs["name"] == "persistence-dev-net", network


def test_the_stack_runs_three_servers_the_pooler_and_the_backup_scheduler(run: ProgramRun) -> None:
    assert sorted(c.name for c in run.of_type(CONTAINER)) == sorted(
        ["backup", "pooler", "postgres-router", *DATA_SERVERS]
    )


def test_a_retained_named_volume_per_stateful_server(run: ProgramRun) -> None:
    names = {v.name: v.inputs["name"] for v in data_volumes(run)}
    assert names == {
        "postgres-data": "persistence-dev-postgres-data",
        "redis-data": "persistence-dev-redis-data",
        "rabbitmq-data": "persistence-dev-rabbitmq-data",
        f"{REPLICA}-data": f"persistence-dev-{REPLICA}-data",
    }, "backups live in a host folder (backup.py), not in a volume a disaster can take"
    for name, mount in (
        ("postgres", "/var/lib/postgresql/data"),
        (REPLICA, "/var/lib/postgresql/data"),
        ("redis", "/data"),
        ("rabbitmq", "/var/lib/rabbitmq"),
    ):
        volume = run.one(CONTAINER, name).inputs["volumes"][0]
        assert volume == {
            "volumeName": f"persistence-dev-{name}-data",
            "containerPath": mount,
            "readOnly": False,
        }


def test_images_are_pinned_to_explicit_versions(run: ProgramRun) -> None:
    # Pulled images; the backup image is built here from this checkout (test_backup_container).
    images = {i.name: i.inputs["name"] for i in run.of_type(IMAGE) if "build" not in i.inputs}
    assert set(images) == {"postgres-image", "redis-image", "rabbitmq-image", "pooler-image"}
    for name, image in images.items():
        tag = image.rsplit(":", 1)[-1]
        assert re.match(r"^\d+\.\d+(\.\d+)?(-[a-z]+)?$", tag), f"{name}: {image} is not pinned"
    assert images["postgres-image"].startswith("postgres:15.")
    # Valkey 8.0, the engine prod runs (Memorystore for Valkey, VALKEY_8_0).
    assert images["redis-image"].startswith("valkey/valkey:8.0.")
    assert images["rabbitmq-image"].startswith("rabbitmq:3.")
    assert "management" in images["rabbitmq-image"]
    # Ours, built here from Debian trixie's PgBouncer (1.21+: prepared statements when pooled).
    assert images["pooler-image"].startswith("persistence/pgbouncer:1.2")


def test_three_server_containers_with_health_checks(
    run: ProgramRun, dev_config: StackConfig
) -> None:
    checks = {s: run.one(CONTAINER, s).inputs["healthcheck"]["tests"] for s in SERVERS}
    kind, probe, *args = checks["postgres"]
    assert (kind, probe) == ("CMD", "pg_isready")
    # Through TCP: the init scripts' temporary server listens on the socket only, so a socket
    # check would pass while it runs and provisioning would race it.
    assert args[args.index("-h") + 1] == "127.0.0.1", args
    # The management listener, which the live apply uses right after: not the node's `ping`.
    assert checks["rabbitmq"] == [
        "CMD", "rabbitmq-diagnostics", "-q", "check_port_listener", str(MANAGEMENT_PORT),
    ]  # fmt: skip
    kind, script = checks["redis"]
    assert kind == "CMD-SHELL"
    assert f"--user {dev_config.redis.admin_user} ping" in script, "the Redis ping authenticates"
    assert 'REDISCLI_AUTH="$(cat /run/secrets/redis-admin)"' in script, "password from a file"


def test_ports_are_published_on_loopback_only(run: ProgramRun) -> None:
    """Every published port of every container, not a hand-picked few."""
    for container in run.of_type(CONTAINER):
        for port in container.inputs.get("ports", []):
            assert port["ip"] == "127.0.0.1", f"{container} publishes on {port['ip']}"


def test_host_ports_come_from_the_stack_config(changed: ProgramRun) -> None:
    published = {
        (c.name, p["internal"]): p["external"]
        for c in changed.of_type(CONTAINER)
        for p in c.inputs.get("ports", [])
    }
    assert published == {
        # The router holds PostgreSQL's host port: it forwards to whichever member is primary.
        ("postgres-router", 5432): PORTS["postgres"],
        ("redis", 6379): PORTS["redis"],
        ("rabbitmq", 5672): PORTS["amqp"],
        ("rabbitmq", 15672): PORTS["management"],
        ("pooler", 6432): PORTS["pooler"],
    }
    url = changed.exports["rabbitmq_management_url"]
    assert url == f"http://127.0.0.1:{PORTS['management']}/"


def test_restart_policy_and_memory_limits(changed: ProgramRun) -> None:
    for name, memory in MEMORY.items():
        container = changed.one(CONTAINER, name)
        assert container.inputs["restart"] == "unless-stopped", container
        assert container.inputs["memory"] == memory, container
        assert container.inputs["memorySwap"] == memory, f"{container}: swap allowed"
        if name != "backup":
            assert container.inputs["wait"] is True, f"{container}: up must wait for health"


def test_containers_receive_exactly_the_rendered_files(
    run: ProgramRun, dev_config: StackConfig, mock_credentials: Credentials
) -> None:
    rendered = boot_files(dev_config, mock_credentials)
    expected = {
        "postgres": {
            "/etc/postgresql/postgresql.conf": "postgres/postgresql.conf",
            "/etc/postgresql/pg_hba.conf": "postgres/pg_hba.conf",
            "/docker-entrypoint-initdb.d/10-platform-admin.sql": "postgres/init-admin.sql",
            "/etc/postgresql/sync-admin.sql": "postgres/sync-admin.sql",
        },
        "redis": {
            "/usr/local/etc/redis/redis.conf": "redis/redis.conf",
            "/usr/local/etc/redis/users.acl": "redis/users.acl",
        },
        "rabbitmq": {
            "/etc/rabbitmq/rabbitmq.conf": "rabbitmq/rabbitmq.conf",
            "/etc/rabbitmq/enabled_plugins": "rabbitmq/enabled_plugins",
            "/etc/rabbitmq/definitions.json": "rabbitmq/definitions.json",
        },
    }
    for name, files in expected.items():
        placed = uploads(run.one(CONTAINER, name))
        for path, key in files.items():
            assert placed[path]["content"] == rendered[key].content, f"{name}:{path} != {key}"


def test_servers_start_from_the_uploaded_configs(run: ProgramRun) -> None:
    shell, flag, script = run.one(CONTAINER, "postgres").inputs["entrypoints"]
    assert (shell, flag) == ("sh", "-c")
    # The image's own entrypoint starts the server, last, from the uploaded config...
    assert script.rstrip().splitlines()[-1] == (
        "exec docker-entrypoint.sh postgres -c config_file=/etc/postgresql/postgresql.conf"
    )
    # ...after the admin's password is taken from the stack (a kept volume has an old one).
    assert "postgres --single" in script
    assert "< /etc/postgresql/sync-admin.sql" in script
    assert run.one(CONTAINER, "redis").inputs["command"] == [
        "valkey-server",
        "/usr/local/etc/redis/redis.conf",
    ]
    assert (
        "RABBITMQ_CONFIG_FILE=/etc/rabbitmq/rabbitmq.conf"
        in run.one(CONTAINER, "rabbitmq").inputs["envs"]
    )


def test_files_with_credentials_are_readable_by_the_server_only(run: ProgramRun) -> None:
    private = {
        "/docker-entrypoint-initdb.d/10-platform-admin.sql",
        "/usr/local/etc/redis/users.acl",
        "/etc/rabbitmq/definitions.json",
        "/run/secrets/postgres-superuser",
        "/run/secrets/redis-admin",
    }
    for container in run.of_type(CONTAINER):
        for path, upload in uploads(container).items():
            if path in private:
                assert upload["permissions"] == "0400", f"{container}:{path}"


def test_admin_credentials_are_secrets_and_never_in_env_vars(
    run: ProgramRun, mock_credentials: Credentials
) -> None:
    passwords = [
        mock_credentials.postgres_superuser,
        mock_credentials.postgres_admin,
        mock_credentials.redis_admin,
        mock_credentials.rabbitmq_admin,
    ]
    for container in run.of_type(CONTAINER):
        if container.name == "postgres-router":  # its one upload is the primary's address
            assert container.inputs["uploads"] == [
                {
                    "file": "/run/persistence/primary",
                    "content": "postgres:5432\n",
                    "owner": container.inputs["uploads"][0]["owner"],
                    "group": container.inputs["uploads"][0]["group"],
                    "permissions": "0644",
                }
            ]
            continue
        assert is_secret(container.raw_inputs["uploads"]), f"{container}: uploads not secret"
        for env in container.inputs.get("envs", []):
            assert not any(p in env for p in passwords), f"{container}: password in env {env}"


def test_no_password_appears_in_any_non_secret_input(
    run: ProgramRun, mock_credentials: Credentials
) -> None:
    """A policy over every declared resource: a password only ever travels as a secret."""
    passwords = {
        mock_credentials.postgres_superuser,
        mock_credentials.postgres_admin,
        mock_credentials.redis_admin,
        mock_credentials.rabbitmq_admin,
    }
    for service in mock_credentials.services.values():
        passwords |= {
            service.migrator,
            service.app,
            service.readonly,
            service.redis,
            service.rabbitmq,
        }
    for resource in run:
        if resource.type == PASSWORD:
            continue
        for key, value in resource.raw_inputs.items():
            if is_secret(value):
                continue
            text = repr(value)
            leaked = [p for p in passwords if p in text]
            assert not leaked, f"{resource}: input {key!r} carries a password in plaintext"


def test_one_provisioning_resource_per_service(run: ProgramRun, dev_config: StackConfig) -> None:
    names = sorted(r.name for r in run.of_type(DYNAMIC) if r.name.endswith("-database"))
    assert names == sorted(f"{s.name}-database" for s in dev_config.services)


def test_exports_what_a_developer_needs_with_secrets_marked(
    run: ProgramRun, dev_config: StackConfig
) -> None:
    assert run.exports["platform"] == "docker"
    assert run.exports["rabbitmq_management_url"] == "http://127.0.0.1:16672/"
    assert run.exports["postgres_admin_url"].startswith(
        f"postgresql://{dev_config.postgres.admin_user}:"
    )
    assert set(run.exports["service_env"]) == {s.name for s in dev_config.services}
    assert {"postgres_admin_url", "redis_admin_url", "service_env"} <= run.secret_exports


GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?s)?$")


def test_inputs_are_in_the_form_docker_reports_back(run: ProgramRun) -> None:
    """What Docker normalises on read would be a diff on every `pulumi preview` (the real
    engine found both): memory_swap defaults to twice the memory, and durations come back in
    Go's form (60s is read back as 1m0s)."""
    for container in run.of_type(CONTAINER):
        inputs = container.inputs
        assert inputs["memorySwap"] == inputs["memory"], f"{container.name}: swap must be set"
        for key, value in inputs.get("healthcheck", {}).items():
            if key in ("interval", "timeout", "startPeriod", "startInterval"):
                seconds = re.fullmatch(r"(\d+)s", value)
                canonical = seconds is None or int(seconds.group(1)) < 60
                assert GO_DURATION.match(value), f"{container.name}.{key}={value!r}"
                assert canonical, f"{container.name}.{key}={value!r}: Docker reads it back as m+s"
