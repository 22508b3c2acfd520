"""The test images honour the contract in infra/images/README.md, on running containers.

Each server runs the way infra/platforms/docker/containers.py runs it: the program's rendered
files uploaded before the first start (owner 999, the same modes), the same command, environment,
volume, memory limit, security option and health check. Clients are real: psycopg, redis-py and
the management HTTP API from the host through loopback-published ports, and the image's own
tools through ``docker exec``.
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from infra import naming, secrets_file
from infra.config import StackConfig
from infra.credentials import Credentials
from infra.platforms.docker import containers
from infra.render import RenderedFile, render_all
from infra.render import postgres as pg_files
from infra.render import rabbitmq as mq_files
from infra.render import redis as redis_files
from infra.render.endpoints import AMQP_PORT, MANAGEMENT_PORT, POSTGRES_PORT, REDIS_PORT
from tests.integration import redis_7_0_fixtures as redis_7_0

pytestmark = pytest.mark.e2e

POSTGRES_IMAGE = "persistence-e2e/postgres:15"
REDIS_IMAGE = "persistence-e2e/valkey:8.0"
RABBITMQ_IMAGE = "persistence-e2e/rabbitmq:3"
PGDATA = "/var/lib/postgresql/data/pgdata"
# An init script sorted before the program's: it counts its runs on the volume and holds the
# initialisation open long enough to look at the server from outside while it runs.
INIT_WINDOW = "/tmp/init-window"
INIT_RUNS = "/var/lib/postgresql/data/init-runs"
INIT_PROBE = f"""#!/bin/sh
echo run >> {INIT_RUNS}
touch {INIT_WINDOW}
sleep 8
rm -f {INIT_WINDOW}
"""
INIT_PROBE_PATH = "/docker-entrypoint-initdb.d/05-window.sh"


def docker(*args: str, check: bool = True, stdin: bytes | None = None) -> str:
    """Run the docker CLI; its stdout, or an assertion naming the command and its stderr."""
    done = subprocess.run(["docker", *args], input=stdin, capture_output=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} failed ({done.returncode}): {done.stderr.decode().strip()}"
        )
    return done.stdout.decode()


def exec_in(container: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """``docker exec`` as the image's default user (root), like a health check."""
    return subprocess.run(
        ["docker", "exec", container, *argv], capture_output=True, text=True, check=False
    )


@dataclass(frozen=True)
class Upload:
    """A file placed before the first start, as pulumi-docker's ``uploads`` does."""

    path: str
    content: str | bytes
    mode: int


def upload(container: str, files: list[Upload]) -> None:
    """One tar stream through the archive API; entries keep uid/gid 999 and their mode."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for item in files:
            data = item.content.encode() if isinstance(item.content, str) else item.content
            info = tarfile.TarInfo(item.path.lstrip("/"))
            info.size, info.mode = len(data), item.mode
            info.uid = info.gid = int(containers.IMAGE_USER)
            tar.addfile(info, io.BytesIO(data))
    docker("cp", "-", f"{container}:/", stdin=buffer.getvalue())


def container_logs(container: str, tail: str = "all") -> str:
    done = subprocess.run(
        ["docker", "logs", "--tail", tail, container], capture_output=True, text=True, check=False
    )
    return done.stdout + done.stderr


def published_port(container: str, port: int) -> int:
    # `docker port` prints e.g. "127.0.0.1:49153".
    return int(docker("port", container, f"{port}/tcp").splitlines()[0].rsplit(":", 1)[1])


def health(container: str) -> str:
    return docker("inspect", "--format", "{{.State.Health.Status}}", container).strip()


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, container: str) -> None:
    """Poll ``condition``; on timeout or a stopped container, fail with the container's logs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        running = docker("inspect", "--format", "{{.State.Running}}", container).strip()
        if running != "true":
            break
        time.sleep(0.5)
    logs = container_logs(container, tail="30")
    raise AssertionError(f"{container}: {what} did not happen\n{logs}")


def wait_healthy(container: str, timeout_s: float = 180) -> None:
    wait_until(lambda: health(container) == "healthy", timeout_s, "healthy", container)


def server_process_uids(container: str) -> dict[str, set[int]]:
    """Command name -> real uids of PID 1 and its children: the server, not ``docker exec``s.

    A health check running at the same time (as root, e.g. an Erlang CLI) is a child of the
    engine's exec, never of PID 1.
    """
    script = (
        "for d in /proc/[0-9]*; do "
        'echo "${d#/proc/} $(sed -n "s/^PPid:\\s*//p" "$d/status") '
        '$(sed -n "s/^Uid:\\s*\\([0-9]*\\).*/\\1/p" "$d/status") $(cat "$d/comm")"; '
        "done 2>/dev/null"
    )
    uids: dict[str, set[int]] = {}
    for line in exec_in(container, "sh", "-c", script).stdout.splitlines():
        fields = line.split(" ", 3)
        if len(fields) == 4 and fields[2].isdigit() and "1" in (fields[0], fields[1]):
            uids.setdefault(fields[3], set()).add(int(fields[2]))
    return uids


@dataclass
class Resources:
    """Containers, volumes and networks made by one test module, removed at its end."""

    prefix: str = field(default_factory=lambda: f"pe2e-{secrets.token_hex(4)}")
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)

    def network(self) -> str:
        name = f"{self.prefix}-net"
        if name not in self.networks:
            docker("network", "create", "--label", "persistence-e2e.test=1", name)
            self.networks.append(name)
        return name

    def create(
        self,
        server: str,
        image: str,
        *,
        memory_mb: int,
        ports: list[int],
        health_cmd: str,
        env: list[str] | None = None,
        extra: list[str] | None = None,
        command: list[str] | None = None,
    ) -> str:
        """``docker create`` with the settings containers.py gives every server."""
        name, volume = f"{self.prefix}-{server}", f"{self.prefix}-{server}-data"
        docker("volume", "create", "--label", "persistence-e2e.test=1", volume)
        self.volumes.append(volume)
        argv = [
            "create",
            f"--name={name}",
            f"--hostname={server}",
            f"--network={self.network()}",
            f"--network-alias={server}",
            f"--memory={memory_mb}m",
            "--security-opt=no-new-privileges:true",
            "--label=persistence-e2e.test=1",
            f"--health-cmd={health_cmd}",
            "--health-interval=1s",
            "--health-timeout=10s",
            "--health-retries=3",
        ]
        argv += [f"--publish=127.0.0.1::{port}" for port in ports]
        argv += [f"--env={item}" for item in env or []]
        argv += extra or []
        argv += [image, *(command or [])]
        docker(*argv)
        self.containers.append(name)
        return name

    def remove(self) -> None:
        for name in self.containers:
            docker("rm", "--force", "--volumes", name, check=False)
        for volume in self.volumes:
            docker("volume", "rm", volume, check=False)
        for network in self.networks:
            docker("network", "rm", network, check=False)


@pytest.fixture(scope="module")
def resources(e2e_images: dict[str, str]) -> Iterator[Resources]:
    made = Resources()
    try:
        yield made
    finally:
        made.remove()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, dev_config: StackConfig
) -> tuple[StackConfig, Credentials, dict[str, RenderedFile]]:
    """The dev stack's rendered files and the credentials in them."""
    secrets_path = tmp_path_factory.mktemp("e2e-images") / "dev.secrets.json"
    credentials = secrets_file.load_or_create(secrets_path, dev_config)
    return dev_config, credentials, render_all(dev_config, credentials)


# --- PostgreSQL ----------------------------------------------------------------------------


@dataclass
class PostgresRun:
    """The program's postgres container and what was seen while its initialisation ran."""

    name: str
    admin_user: str
    admin_password: str
    during_init: dict[str, Any]

    def admin(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(
            host="127.0.0.1",
            # Read each time: a restart publishes the container port on a new host port.
            port=published_port(self.name, POSTGRES_PORT),
            user=self.admin_user,
            password=self.admin_password,
            dbname="postgres",
            connect_timeout=10,
        )


def observe_init(container: str) -> dict[str, Any]:
    """Wait for the init window, then look at the server from outside while init runs."""
    wait_until(
        lambda: exec_in(container, "test", "-e", INIT_WINDOW).returncode == 0,
        120,
        "the init window",
        container,
    )
    return {
        # Exactly the program's health check, and a TCP client inside the container.
        "health_check": exec_in(container, *containers.POSTGRES_HEALTH_CHECK[1:]).returncode,
        "socket": exec_in(
            container, "pg_isready", "-h", "/var/run/postgresql", "-d", "postgres"
        ).returncode,
        "tcp": exec_in(
            container, "pg_isready", "-h", "127.0.0.1", "-p", str(POSTGRES_PORT)
        ).returncode,
        # The temporary server is up: the two failures above are not just "nothing started yet".
        "temporary_server": exec_in(
            container, "sh", "-c", f"pg_isready -h /tmp/postgres-init.* -p {POSTGRES_PORT}"
        ).returncode,
        "health_status": health(container),
        "still_in_window": exec_in(container, "test", "-e", INIT_WINDOW).returncode == 0,
    }


def postgres_uploads(files: dict[str, RenderedFile], password: str) -> list[Upload]:
    """containers.postgres's uploads, plus the init-window probe."""
    return [
        Upload(pg_files.CONFIG_FILE, files["postgres/postgresql.conf"].content, 0o444),
        Upload(pg_files.HBA_FILE, files["postgres/pg_hba.conf"].content, 0o444),
        Upload(containers.INIT_ADMIN_SQL, files["postgres/init-admin.sql"].content, 0o400),
        Upload(containers.POSTGRES_SUPERUSER_FILE, password, 0o400),
        Upload(INIT_PROBE_PATH, INIT_PROBE, 0o555),
    ]


POSTGRES_HEALTH = " ".join(containers.POSTGRES_HEALTH_CHECK[1:])


@pytest.fixture(scope="module")
def postgres_run(
    resources: Resources, stack: tuple[StackConfig, Credentials, dict[str, RenderedFile]]
) -> PostgresRun:
    config, credentials, files = stack
    name = resources.create(
        "postgres",
        POSTGRES_IMAGE,
        memory_mb=config.docker.memory_mb.postgres,
        ports=[POSTGRES_PORT],
        health_cmd=POSTGRES_HEALTH,
        env=[f"POSTGRES_PASSWORD_FILE={containers.POSTGRES_SUPERUSER_FILE}", f"PGDATA={PGDATA}"],
        extra=[
            f"--volume={resources.prefix}-postgres-data:/var/lib/postgresql/data",
            "--shm-size=256m",
            "--stop-timeout=60",
        ],
        command=["postgres", "-c", f"config_file={pg_files.CONFIG_FILE}"],
    )
    upload(name, postgres_uploads(files, credentials.postgres_superuser))
    docker("start", name)
    during_init = observe_init(name)
    wait_healthy(name)
    return PostgresRun(
        name,
        config.postgres.admin_user,
        credentials.postgres_admin,
        during_init,
    )


def test_postgres_is_unreachable_while_init_scripts_run(postgres_run: PostgresRun) -> None:
    seen = postgres_run.during_init
    assert seen["still_in_window"], f"the observation outlasted the init window: {seen}"
    assert seen["temporary_server"] == 0, seen
    assert seen["health_check"] != 0, seen
    assert seen["tcp"] != 0, seen
    assert seen["health_status"] != "healthy", seen


def test_postgres_init_sql_created_the_admin_login(postgres_run: PostgresRun) -> None:
    with postgres_run.admin() as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    assert row == (False, True, True)


def test_postgres_honours_pgdata_and_config_file(postgres_run: PostgresRun) -> None:
    with postgres_run.admin() as conn:
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()
            for name in ("data_directory", "config_file", "hba_file", "shared_preload_libraries")
        }
    assert settings == {
        "data_directory": (PGDATA,),
        "config_file": (pg_files.CONFIG_FILE,),
        "hba_file": (pg_files.HBA_FILE,),
        "shared_preload_libraries": ("pg_stat_statements",),
    }
    assert exec_in(postgres_run.name, "test", "-s", f"{PGDATA}/PG_VERSION").returncode == 0


def test_postgres_server_runs_as_uid_999(postgres_run: PostgresRun) -> None:
    assert server_process_uids(postgres_run.name)["postgres"] == {999}
    owner = exec_in(postgres_run.name, "stat", "-c", "%u %a", PGDATA).stdout.split()
    assert owner == ["999", "700"]


def test_postgres_client_tools_on_path(postgres_run: PostgresRun) -> None:
    for tool in ("pg_isready", "psql", "pg_dump", "pg_restore"):
        found = exec_in(postgres_run.name, tool, "--version")
        assert found.returncode == 0, (tool, found)
        assert "15." in found.stdout, (tool, found)


def test_postgres_init_runs_once_across_restarts(postgres_run: PostgresRun) -> None:
    docker("restart", postgres_run.name)
    wait_healthy(postgres_run.name)
    runs = exec_in(postgres_run.name, "cat", INIT_RUNS).stdout.split()
    assert runs == ["run"]
    assert "holds a database cluster: skipping initialisation" in container_logs(postgres_run.name)
    with postgres_run.admin() as conn:
        assert conn.execute("SELECT current_user").fetchone() == (postgres_run.admin_user,)


def test_postgres_superuser_password_file_and_interrupted_init(resources: Resources) -> None:
    """Without config_file the image's own pg_hba.conf allows the superuser over TCP."""
    password = secrets.token_urlsafe(24)
    name = resources.create(
        "postgres-plain",
        POSTGRES_IMAGE,
        memory_mb=512,
        ports=[POSTGRES_PORT],
        health_cmd=POSTGRES_HEALTH,
        env=[f"POSTGRES_PASSWORD_FILE={containers.POSTGRES_SUPERUSER_FILE}", f"PGDATA={PGDATA}"],
        extra=[f"--volume={resources.prefix}-postgres-plain-data:/var/lib/postgresql/data"],
    )
    upload(
        name,
        [
            Upload(containers.POSTGRES_SUPERUSER_FILE, password, 0o400),
            Upload(INIT_PROBE_PATH, INIT_PROBE, 0o555),
        ],
    )
    docker("start", name)
    # Killed in the middle of the init scripts: the next start must run them again, from a
    # fresh data directory, rather than serve a half-initialised one.
    observe_init(name)
    docker("kill", name)
    docker("start", name)
    wait_healthy(name)
    assert exec_in(name, "cat", INIT_RUNS).stdout.split() == ["run", "run"]
    port = published_port(name, POSTGRES_PORT)
    with psycopg.connect(
        host="127.0.0.1", port=port, user="postgres", password=password, dbname="postgres"
    ) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", password="wrong", dbname="postgres"
        ).close()


# --- Redis ---------------------------------------------------------------------------------


def _redis_container(
    resources: Resources,
    stack: tuple[StackConfig, Credentials, dict[str, RenderedFile]],
    server: str,
    data: list[Upload],
) -> str:
    """containers.redis's container, its files (and ``data`` in its volume) uploaded, started
    and healthy."""
    config, credentials, files = stack
    name = resources.create(
        server,
        REDIS_IMAGE,
        memory_mb=config.docker.memory_mb.redis,
        ports=[REDIS_PORT],
        health_cmd=_redis_ping(config),
        extra=[
            f"--volume={resources.prefix}-{server}-data:{redis_files.DATA_DIR}",
            f"--workdir={redis_files.DATA_DIR}",
        ],
        command=["valkey-server", redis_files.CONFIG_FILE],
    )
    upload(
        name,
        [
            Upload(redis_files.CONFIG_FILE, files["redis/redis.conf"].content, 0o444),
            Upload(redis_files.ACL_FILE, files["redis/users.acl"].content, 0o400),
            Upload(containers.REDIS_ADMIN_FILE, credentials.redis_admin, 0o400),
            *data,
        ],
    )
    docker("start", name)
    wait_healthy(name, 60)
    return name


def _redis_ping(config: StackConfig) -> str:
    """containers.redis's health check, verbatim."""
    return (
        f'REDISCLI_AUTH="$(cat {containers.REDIS_ADMIN_FILE})" '
        f"valkey-cli --no-auth-warning --user {config.redis.admin_user} ping | grep -q PONG"
    )


def test_redis_answers_pong_as_uid_999(
    resources: Resources, stack: tuple[StackConfig, Credentials, dict[str, RenderedFile]]
) -> None:
    config, credentials, _ = stack
    name = _redis_container(resources, stack, "redis", [])
    assert exec_in(name, "sh", "-c", _redis_ping(config)).returncode == 0
    assert server_process_uids(name)["valkey-server"] == {999}
    assert "v=8.0." in exec_in(name, "valkey-server", "--version").stdout
    client = redis.Redis(
        host="127.0.0.1",
        port=published_port(name, REDIS_PORT),
        username=config.redis.admin_user,
        password=credentials.redis_admin,
        socket_timeout=10,
    )
    try:
        assert client.ping()
        assert client.acl_whoami() == config.redis.admin_user
        client.set("e2e:key", "value")
        client.bgrewriteaof()
    finally:
        client.close()
    # The append-only files land in the data directory, owned by the server's uid.
    wait_until(
        lambda: (
            exec_in(
                name, "stat", "-c", "%u", f"{redis_files.DATA_DIR}/appendonlydir"
            ).stdout.strip()
            == "999"
        ),
        30,
        "appendonlydir owned by 999",
        name,
    )


def test_a_redis_7_0_volume_comes_up_in_the_valkey_image(
    resources: Resources,
    stack: tuple[StackConfig, Credentials, dict[str, RenderedFile]],
    redis_7_0_files: Path,
) -> None:
    """`make up` after the move replaces the container and keeps the volume: what Redis 7.0.15
    wrote there (multi-part AOF on an RDB 10 base, dump.rdb) is read with every key."""
    _, credentials, _ = stack
    volume = redis_7_0_files / redis_7_0.VOLUME
    old_files = [
        Upload(
            f"{redis_files.DATA_DIR}/{path.relative_to(volume).as_posix()}",
            path.read_bytes(),
            0o600,  # the old server's umask 0077
        )
        for path in sorted(volume.rglob("*"))
        if path.is_file()
    ]
    name = _redis_container(resources, stack, "redis-upgrade", old_files)
    client = redis.Redis(
        host="127.0.0.1",
        port=published_port(name, REDIS_PORT),
        username=naming.redis_user(redis_7_0.SERVICE),
        password=credentials.for_service(redis_7_0.SERVICE).redis,
        socket_timeout=10,
        decode_responses=True,
    )
    try:
        assert client.get(redis_7_0.SESSION) == "alice"
        assert client.lrange(f"{redis_7_0.SERVICE}:queue", 0, -1) == ["a", "b", "c"]
        assert client.get(redis_7_0.COUNTER) == "42"
        # Only the AOF had it (written after the last dump.rdb): the AOF was loaded.
        assert client.get(redis_7_0.AFTER_SAVE) == "only in the AOF"
    finally:
        client.close()
    # The entrypoint gave the uploaded (root-created) appendonlydir to the server's uid.
    owner = exec_in(name, "stat", "-c", "%u", f"{redis_files.DATA_DIR}/appendonlydir")
    assert owner.stdout.strip() == "999", owner


# --- RabbitMQ ------------------------------------------------------------------------------


def management_get(port: int, path: str, user: str, password: str) -> tuple[int, Any]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Basic {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (fixed URL)
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, None
    except OSError:
        # Nothing listens yet: docker-proxy accepts, then resets the connection.
        return 0, None


def test_rabbitmq_config_plugins_and_health_check(
    resources: Resources, stack: tuple[StackConfig, Credentials, dict[str, RenderedFile]]
) -> None:
    config, credentials, files = stack
    name = resources.create(
        "rabbitmq",
        RABBITMQ_IMAGE,
        memory_mb=config.docker.memory_mb.rabbitmq,
        ports=[AMQP_PORT, MANAGEMENT_PORT],
        health_cmd=" ".join(containers.RABBITMQ_HEALTH_CHECK[1:]),
        env=[f"RABBITMQ_CONFIG_FILE={mq_files.CONFIG_FILE}"],
        extra=[
            f"--volume={resources.prefix}-rabbitmq-data:/var/lib/rabbitmq",
            "--stop-timeout=60",
        ],
    )
    upload(
        name,
        [
            Upload(mq_files.CONFIG_FILE, files["rabbitmq/rabbitmq.conf"].content, 0o444),
            Upload(mq_files.PLUGINS_FILE, files["rabbitmq/enabled_plugins"].content, 0o444),
            Upload(mq_files.DEFINITIONS_FILE, files["rabbitmq/definitions.json"].content, 0o400),
        ],
    )
    docker("start", name)
    wait_healthy(name, 180)
    # The health check's command, as root through docker exec.
    assert exec_in(name, *containers.RABBITMQ_HEALTH_CHECK[1:]).returncode == 0
    assert server_process_uids(name)["beam.smp"] == {999}
    cookie = exec_in(name, "stat", "-c", "%u %a", "/var/lib/rabbitmq/.erlang.cookie")
    assert cookie.stdout.split() == ["999", "400"]

    # The management plugin (enabled_plugins) answers; the admin and the services' vhosts come
    # from the definitions file that only rabbitmq.conf (RABBITMQ_CONFIG_FILE) names.
    port, admin = published_port(name, MANAGEMENT_PORT), config.rabbitmq.admin_user
    # Healthy means the management API answers at once: the live apply that follows the
    # container in `make up` does not wait (a `ping` health check let it meet a reset).
    status, whoami = management_get(port, "/api/whoami", admin, credentials.rabbitmq_admin)
    assert status == 200
    assert whoami["name"] == admin
    status, overview = management_get(port, "/api/overview", admin, credentials.rabbitmq_admin)
    assert overview["node"] == "rabbit@rabbitmq"  # the container's hostname
    status, vhosts = management_get(port, "/api/vhosts", admin, credentials.rabbitmq_admin)
    assert len(vhosts) == len(config.services)
    assert management_get(port, "/api/users/guest", admin, credentials.rabbitmq_admin)[0] == 404
