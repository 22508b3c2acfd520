"""One function per server container of the dev stack.

Each container gets its rendered config files uploaded by the program itself (no bind mounts of
a local checkout), a named volume for its data, a health check, a restart policy, a memory
limit, and host ports published on the loopback address only.

The uploads are the *boot* files (``infra.render.boot_files``): they do not depend on the
service list, so adding, changing or removing a service never replaces or restarts a container.
``live_config`` declares, per server, the resource that pushes the services' part to the
running server through its admin interface:

- PostgreSQL: the full pg_hba.conf is written into the container and the postmaster gets SIGHUP
  (``pg_reload_conf`` without a login: the admin is no superuser); sessions stay. The per-service
  lines stay (each service's logins reach only its own database). PostgreSQL 15 cannot express
  "a login reaches the database of its own service" without naming each pair (no regex, and
  ``samerole`` would need a role named like each database, which the role model does not have),
  and a service-independent ``all all`` line would lean on CONNECT privileges alone.
- Redis: ``ACL SETUSER``/``ACL DELUSER`` for exactly the managed users (``infra.live.redis_acl``),
  after writing the full users.acl into the container so a restart loads the same users.
- RabbitMQ: the definitions imported through the management API (``infra.broker.live``), and
  managed users and vhosts no longer configured removed.
- PgBouncer: pgbouncer.ini and its auth file written into the container, then SIGHUP (PgBouncer
  reloads both; its clients' connections stay open).

Each takes its container's id as an input: a container replaced for another reason (a new
image) boots from the boot files and gets the configuration delivered again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker as docker

from infra.config.model import StackConfig
from infra.live.resource import LiveConfig, file_spec
from infra.pulumi_credentials import StackPasswords
from infra.render import RenderedFile
from infra.render import pgbouncer as pooler_files
from infra.render import postgres as pg_files
from infra.render import rabbitmq as mq_files
from infra.render import redis as redis_files
from infra.render.endpoints import (
    AMQP_PORT,
    MANAGEMENT_PORT,
    POOLER_PORT,
    POSTGRES_PORT,
    REDIS_PORT,
    for_stack,
    rabbitmq_node_hosts,
)

# The official images run their servers as uid/gid 999.
IMAGE_USER = "999"
# PgBouncer's own uid/gid (infra/images/pgbouncer): never 999, which PostgreSQL's socket admits
# as the superuser by peer.
POOLER_USER = "6432"
# All the pooler's container keeps: its entrypoint's drop from root to POOLER_USER with an empty
# bounding set (SETUID, SETGID, SETPCAP), and the live reload's `kill -s HUP 1` as root (KILL).
# PgBouncer itself runs with none. Named and ordered as the engine reports them back (a refresh
# finds what was declared).
POOLER_CAPABILITIES = ["CAP_KILL", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID"]
# The pooler's files (path, rendered file, private), uploaded at boot and rewritten live.
POOLER_FILES = (
    (pooler_files.CONFIG_FILE, "pgbouncer/pgbouncer.ini", False),
    (pooler_files.AUTH_FILE, "pgbouncer/userlist.txt", True),
)
SECRETS_DIR = "/run/secrets"
POSTGRES_SUPERUSER_FILE = f"{SECRETS_DIR}/postgres-superuser"
REDIS_ADMIN_FILE = f"{SECRETS_DIR}/redis-admin"
INIT_ADMIN_SQL = "/docker-entrypoint-initdb.d/10-platform-admin.sql"
SYNC_ADMIN_SQL = "/etc/postgresql/sync-admin.sql"
# Over TCP, not the socket: the image's entrypoint runs the init scripts on a temporary server
# that listens on the socket only, and a socket check would report healthy while it runs (the
# official image shares the socket directory), so provisioning would race it.
POSTGRES_HEALTH_CHECK = [
    "CMD", "pg_isready", "-h", "127.0.0.1", "-p", str(POSTGRES_PORT), "-d", "postgres",
]  # fmt: skip
# Healthy once the management listener accepts, not once the Erlang node answers (`ping`): the
# broker and its plugins boot seconds after that, and the live apply that follows the container
# talks to the management API at once (a `ping` check let it meet a reset connection).
RABBITMQ_HEALTH_CHECK = [
    "CMD", "rabbitmq-diagnostics", "-q", "check_port_listener", str(MANAGEMENT_PORT),
]  # fmt: skip
# PgBouncer answers the protocol's start-up: accepting connections, whatever the login.
POOLER_HEALTH_CHECK = [
    "CMD", "pg_isready", "-h", "127.0.0.1", "-p", str(POOLER_PORT), "-d", "pgbouncer",
]  # fmt: skip
RABBITMQ_DATA_DIR = "/var/lib/rabbitmq"
# A cluster's Erlang cookie: uploaded here (0400, the server's user), then copied by the start
# command to $HOME/.erlang.cookie, where the node and the CLI tools (the health check) read it.
# The image's HOME is the data directory; the official image's entrypoint drops to its user.
ERLANG_COOKIE_UPLOAD = f"{SECRETS_DIR}/rabbitmq-erlang-cookie"
RABBITMQ_CLUSTER_START = f"""set -eu
install -o {IMAGE_USER} -g {IMAGE_USER} -m 0400 \\
  {ERLANG_COOKIE_UPLOAD} {RABBITMQ_DATA_DIR}/.erlang.cookie
exec docker-entrypoint.sh rabbitmq-server
"""
# A PostgreSQL member's volume, and the data directory in it.
DATA_DIR = "/var/lib/postgresql/data"
PGDATA = f"{DATA_DIR}/pgdata"
# Left in a member's volume by `db promote` when it fenced it: its data was moved aside (never
# deleted) and the bootstrap server refuses to start on that volume again (it would initdb an
# empty second primary); only a standby, seeded from the new primary, may use it.
FENCE_MARKER = f"{DATA_DIR}/FENCED"
# Before every start on an initialised volume: set the admin's password from the stack, in
# single-user mode as the server's own user (no network, no password needed), then hand over to
# the image's entrypoint as usual. Redis (users.acl) and RabbitMQ (definitions at boot) already
# take their passwords from the stack at every start; this makes PostgreSQL do the same.
POSTGRES_START = f"""set -eu
if [ -e {FENCE_MARKER} ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "this PostgreSQL was fenced by db promote (see {FENCE_MARKER}): it never starts again" \
    "as a primary; make up makes it a replica of the new primary" >&2
  exit 1
fi
if [ -s "$PGDATA/PG_VERSION" ]; then
  setpriv --reuid=postgres --regid=postgres --init-groups \
    postgres --single -D "$PGDATA" -c config_file={pg_files.CONFIG_FILE} postgres \
    < {SYNC_ADMIN_SQL} > /dev/null
fi
exec docker-entrypoint.sh postgres -c config_file={pg_files.CONFIG_FILE}
"""
# A read replica's start: on an empty volume, seed it from the primary with pg_basebackup through
# its own slot (a stale slot of an earlier replica of that number is dropped first), into a
# side directory that becomes PGDATA only once complete, so a seed killed half way starts over;
# then start as a hot standby. As the server's own user, with the replication login's password
# from its passfile only.
REPLICA_SEED = """set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  seed="$PGDATA.seeding"
  rm -rf "$seed" "$PGDATA"
  install -d -o postgres -g postgres -m 0700 "$seed"
  setpriv --reuid=postgres --regid=postgres --init-groups env PGPASSFILE={passfile} sh -eu -c '
    connect="-h {primary} -p {port} -U {user} --no-password"
    pg_receivewal $connect --drop-slot --slot={slot} 2>/dev/null || true
    pg_basebackup $connect -D "$1" -X stream -C -S {slot} --checkpoint=fast
    touch "$1/standby.signal"
  ' seed "$seed"
  mv "$seed" "$PGDATA"
fi
exec docker-entrypoint.sh postgres -c config_file={config}
"""


def replica_start(index: int) -> str:
    """Replica ``index``'s start command (``REPLICA_SEED``)."""
    return REPLICA_SEED.format(
        passfile=pg_files.REPLICATION_PASSFILE,
        primary=pg_files.PRIMARY_HOST,
        port=POSTGRES_PORT,
        user=pg_files.REPLICATION_USER,
        slot=pg_files.replica_slot(index),
        config=pg_files.REPLICA_CONFIG_FILE,
    )


@dataclass(frozen=True)
class Shared:
    """What every container of the stack is attached to."""

    config: StackConfig
    prefix: str
    network: docker.Network
    files: pulumi.Output[dict[str, RenderedFile]]  # the boot files (infra.render.boot_files)
    live_files: pulumi.Output[dict[str, RenderedFile]]  # with the services (server_files)
    passwords: StackPasswords
    parent: pulumi.Resource


def _upload(
    shared: Shared, path: str, rendered: str, *, private: bool = False, user: str = IMAGE_USER
) -> docker.ContainerUploadArgs:
    """A rendered file placed at ``path``; private files are readable by the server user only."""
    content = shared.files.apply(lambda files: files[rendered].content)
    return docker.ContainerUploadArgs(
        file=path,
        content=pulumi.Output.secret(content) if private else content,
        owner=user,
        group=user,
        permissions="0400" if private else "0444",
    )


def _secret_upload(path: str, password: pulumi.Output[str]) -> docker.ContainerUploadArgs:
    """A password file for the server's own use (entrypoint, health check), never an env var."""
    return docker.ContainerUploadArgs(
        file=path,
        content=pulumi.Output.secret(password),
        owner=IMAGE_USER,
        group=IMAGE_USER,
        permissions="0400",
    )


def network_attachment(
    shared: Shared, aliases: list[str] | None = None
) -> docker.ContainerNetworksAdvancedArgs:
    """The stack's network, with the gateway priority the provider reports back (0), so a
    refresh finds the value it stored."""
    return docker.ContainerNetworksAdvancedArgs(
        name=shared.network.name, aliases=aliases, gw_priority=0
    )


def _image(shared: Shared, server: str, image: str) -> docker.RemoteImage:
    return docker.RemoteImage(
        f"{server}-image",
        name=image,
        keep_locally=True,
        opts=pulumi.ResourceOptions(parent=shared.parent),
    )


def server_container(
    shared: Shared,
    server: str,
    image: str | docker.RemoteImage | pulumi.Output[str],
    memory_mb: int,
    aliases: list[str] | None = None,
    wait_timeout: int = 180,
    depends_on: list[pulumi.Resource] | None = None,
    **args: Any,
) -> docker.Container:
    """A server container with the settings every server shares, plus its own ``args``.

    ``server`` is the resource's name, the container's (after the stack's prefix) and its
    hostname; ``aliases`` are its names on the stack's network (default: ``server``).
    """
    if isinstance(image, str):
        image = _image(shared, server, image)
    return docker.Container(
        server,
        image=image.image_id if isinstance(image, docker.RemoteImage) else image,
        name=f"{shared.prefix}-{server}",
        hostname=server,  # RabbitMQ's node name, and so its data directory, follow the hostname
        networks_advanced=[network_attachment(shared, aliases or [server])],
        restart="unless-stopped",
        memory=memory_mb,
        memory_swap=memory_mb,  # no swap; also what Docker would otherwise report back as 2x
        security_opts=["no-new-privileges:true"],
        log_opts={"max-size": "10m", "max-file": "3"},
        must_run=True,
        wait=True,  # `pulumi up` returns once the health check passes
        wait_timeout=wait_timeout,
        labels=[docker.ContainerLabelArgs(label="persistence.stack", value=shared.prefix)],
        opts=pulumi.ResourceOptions(parent=shared.parent, depends_on=depends_on),
        **args,
    )


def _health_check(tests: list[str], *, start_period: str) -> docker.ContainerHealthcheckArgs:
    """Every 10 s, 5 s to answer, unhealthy after 5 misses; ``start_period`` to boot first."""
    return docker.ContainerHealthcheckArgs(
        tests=tests, interval="10s", timeout="5s", retries=5, start_period=start_period
    )


def published_port(shared: Shared, internal: int, external: int) -> docker.ContainerPortArgs:
    return docker.ContainerPortArgs(
        internal=internal, external=external, ip=shared.config.docker.bind_address, protocol="tcp"
    )


def postgres_image(shared: Shared) -> docker.RemoteImage:
    """The one PostgreSQL image every member runs (same binaries everywhere)."""
    return _image(shared, pg_files.BOOTSTRAP_HOST, shared.config.docker.images.postgres)


def postgres_member(
    shared: Shared,
    index: int,
    image: docker.RemoteImage,
    volume: docker.Volume,
    socket: docker.Volume,
    after: list[pulumi.Resource],
) -> docker.Container:
    """PostgreSQL member ``index``: 0 is the ``postgres`` container, n the ``postgres-replica-n``.

    Member 0 starts as the stack's bootstrap server (``bootstrap_postgres``). Every other member,
    and member 0 too once a failover is recorded (``postgres.primary``), is a ``standby``: its
    container is the same whether it streams or a failover promoted it, so a promotion never
    replaces the new primary. None publishes a port: the router (``postgres-primary``) is the
    primary's one address. ``after``: what must run first (the router, for a standby's seed).
    """
    if index == 0 and pg_files.bootstraps(shared.config):
        return bootstrap_postgres(shared, image, volume, socket)
    return standby(shared, index, image, volume, socket if index == 0 else None, after)


def bootstrap_postgres(
    shared: Shared, image: docker.RemoteImage, volume: docker.Volume, socket: docker.Volume
) -> docker.Container:
    """PostgreSQL 15 with the rendered config; the admin login is created on first start.

    Its socket directory is the ``socket`` volume, which the pooler mounts too (always, so
    turning the pooler on or off never restarts PostgreSQL).
    """
    config = shared.config
    return server_container(
        shared,
        pg_files.BOOTSTRAP_HOST,
        image,
        config.docker.memory_mb.postgres,
        entrypoints=["sh", "-c", POSTGRES_START],
        envs=[f"POSTGRES_PASSWORD_FILE={POSTGRES_SUPERUSER_FILE}", f"PGDATA={PGDATA}"],
        uploads=[
            _upload(shared, pg_files.CONFIG_FILE, "postgres/postgresql.conf"),
            _upload(shared, pg_files.HBA_FILE, "postgres/pg_hba.conf"),
            _upload(shared, INIT_ADMIN_SQL, "postgres/init-admin.sql", private=True),
            _upload(shared, SYNC_ADMIN_SQL, "postgres/sync-admin.sql", private=True),
            _secret_upload(POSTGRES_SUPERUSER_FILE, shared.passwords.postgres_superuser),
        ],
        volumes=[_data_volume(volume), _socket_volume(socket)],
        healthcheck=_health_check(POSTGRES_HEALTH_CHECK, start_period="30s"),
        shm_size=256,
        stop_timeout=60,
    )


def _data_volume(volume: docker.Volume) -> docker.ContainerVolumeArgs:
    return docker.ContainerVolumeArgs(
        volume_name=volume.name, container_path=DATA_DIR, read_only=False
    )


def _socket_volume(socket: docker.Volume) -> docker.ContainerVolumeArgs:
    return docker.ContainerVolumeArgs(
        volume_name=socket.name, container_path=pg_files.SOCKET_DIR, read_only=False
    )


def standby(
    shared: Shared,
    index: int,
    image: docker.RemoteImage,
    volume: docker.Volume,
    socket: docker.Volume | None,
    after: list[pulumi.Resource],
) -> docker.Container:
    """Member ``index`` as a standby: a hot standby of the primary, streaming through its own
    slot, and promoted in place by ``db promote``.

    An empty volume is seeded from the primary through the router. It boots with the shared
    postgresql.conf and pg_hba.conf (the live configuration keeps pg_hba.conf's service lines
    as on the primary) and its own ``replica.conf``; the replication login's password is a
    secret passfile. Member 0 keeps the socket volume the pooler reads, so it is the pooler's
    fast road again when it is the primary.
    """
    config = shared.config
    passfile = shared.passwords.postgres_replication.apply(pg_files.replication_passfile)
    volumes = [_data_volume(volume)] + ([_socket_volume(socket)] if socket is not None else [])
    return server_container(
        shared,
        pg_files.replica_host(index),
        image,
        config.docker.memory_mb.postgres,
        wait_timeout=300,  # the seed copies the whole primary first
        entrypoints=["sh", "-c", replica_start(index)],
        envs=[f"PGDATA={PGDATA}"],
        uploads=[
            _upload(shared, pg_files.CONFIG_FILE, "postgres/postgresql.conf"),
            _upload(shared, pg_files.HBA_FILE, "postgres/pg_hba.conf"),
            _upload(shared, pg_files.REPLICA_CONFIG_FILE, f"postgres/replica-{index}.conf"),
            _secret_upload(pg_files.REPLICATION_PASSFILE, passfile),
        ],
        volumes=volumes,
        healthcheck=_health_check(POSTGRES_HEALTH_CHECK, start_period="1m0s"),
        shm_size=256,
        stop_timeout=60,
        depends_on=after,
    )


def redis(shared: Shared, volume: docker.Volume) -> docker.Container:
    """Valkey 8.0 (the engine prod runs) with AOF + RDB on a named volume and per-service ACL
    users. It keeps the name redis: the protocol, REDIS_URL and the volume are the same."""
    config = shared.config
    ping = (
        f'REDISCLI_AUTH="$(cat {REDIS_ADMIN_FILE})" '
        f"valkey-cli --no-auth-warning --user {config.redis.admin_user} ping | grep -q PONG"
    )
    return server_container(
        shared,
        "redis",
        config.docker.images.redis,
        config.docker.memory_mb.redis,
        command=["valkey-server", redis_files.CONFIG_FILE],
        working_dir=redis_files.DATA_DIR,
        uploads=[
            _upload(shared, redis_files.CONFIG_FILE, "redis/redis.conf"),
            _upload(shared, redis_files.ACL_FILE, "redis/users.acl", private=True),
            _secret_upload(REDIS_ADMIN_FILE, shared.passwords.redis_admin),
        ],
        volumes=[
            docker.ContainerVolumeArgs(
                volume_name=volume.name, container_path=redis_files.DATA_DIR, read_only=False
            )
        ],
        ports=[published_port(shared, REDIS_PORT, config.docker.ports.redis)],
        healthcheck=_health_check(["CMD-SHELL", ping], start_period="10s"),
    )


def pooler(shared: Shared, postgres: docker.Container, socket: docker.Volume) -> docker.Container:
    """PgBouncer in front of PostgreSQL, on the loopback port DATABASE_URL names.

    It boots with no service's pool (the boot files); the live configuration adds them. It has
    no data: a restart loses nothing but its clients' open connections. It reaches PostgreSQL
    through the server's socket (``socket``, read-only here) as uid 6432 with no capability:
    it cannot become the uid 999 that the socket admits as the superuser.
    """
    config = shared.config
    return server_container(
        shared,
        "pooler",
        config.docker.images.pooler,
        config.docker.memory_mb.pooler,
        uploads=[
            _upload(shared, path, rendered, private=private, user=POOLER_USER)
            for path, rendered, private in POOLER_FILES
        ],
        volumes=[
            docker.ContainerVolumeArgs(
                volume_name=socket.name,
                container_path=pooler_files.SERVER_SOCKET_DIR,
                read_only=True,
            )
        ],
        capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=POOLER_CAPABILITIES),
        ports=[published_port(shared, POOLER_PORT, config.docker.ports.pooler)],
        healthcheck=_health_check(POOLER_HEALTH_CHECK, start_period="10s"),
        depends_on=[postgres],
    )


def _rabbitmq_args(shared: Shared, volume: docker.Volume, amqp: int, management: int) -> Any:
    """What every RabbitMQ container has, a single node or a cluster's node."""
    return {
        "volumes": [
            docker.ContainerVolumeArgs(
                volume_name=volume.name, container_path=RABBITMQ_DATA_DIR, read_only=False
            )
        ],
        "ports": [
            published_port(shared, AMQP_PORT, amqp),
            published_port(shared, MANAGEMENT_PORT, management),
        ],
        "healthcheck": docker.ContainerHealthcheckArgs(
            tests=RABBITMQ_HEALTH_CHECK,
            interval="15s",
            timeout="10s",
            retries=5,
            start_period="1m0s",  # Go's duration form: what Docker reports back (no diff)
        ),
        "stop_timeout": 60,
    }


def rabbitmq(shared: Shared, volume: docker.Volume) -> docker.Container:
    """RabbitMQ 3 (management image) loading the rendered definitions at boot."""
    config = shared.config
    return server_container(
        shared,
        "rabbitmq",
        config.docker.images.rabbitmq,
        config.docker.memory_mb.rabbitmq,
        envs=[f"RABBITMQ_CONFIG_FILE={mq_files.CONFIG_FILE}"],
        uploads=[
            _upload(shared, mq_files.CONFIG_FILE, "rabbitmq/rabbitmq.conf"),
            _upload(shared, mq_files.PLUGINS_FILE, "rabbitmq/enabled_plugins"),
            _upload(shared, mq_files.DEFINITIONS_FILE, "rabbitmq/definitions.json", private=True),
        ],
        **_rabbitmq_args(shared, volume, config.docker.ports.amqp, config.docker.ports.management),
    )


def rabbitmq_cluster(
    shared: Shared, volumes: list[docker.Volume], cookie: pulumi.Output[str]
) -> list[docker.Container]:
    """One container per node, forming one cluster by themselves (classic_config).

    Every node gets the rendered files prod's VMs get: the same ``rabbitmq.conf`` listing every
    node (``rabbit@rabbitmq-<n>``, the container's hostname) and the same boot definitions
    (quorum queues with one member per node). Each has its own volume and publishes its own
    ports (node N: ``docker.ports.amqp`` and ``.management`` plus N - 1). On the stack's network
    every node also answers to ``rabbitmq``, so whatever reaches the broker by that name (the
    backup container) reaches any live node. The Erlang cookie is a Pulumi secret uploaded as a
    file only the server's user reads; the start command copies it to where the node and the
    CLI read it ($HOME/.erlang.cookie on the data volume, mode 0400) at every start, so it is in
    no command line, environment variable or log.
    """
    config = shared.config
    hosts = rabbitmq_node_hosts(config)
    image = _image(shared, "rabbitmq", config.docker.images.rabbitmq)
    nodes = []
    for host, volume, (amqp, management) in zip(
        hosts, volumes, config.docker_rabbitmq_ports(), strict=True
    ):
        nodes.append(
            server_container(
                shared,
                host,
                image,
                config.docker.memory_mb.rabbitmq,
                aliases=[host, "rabbitmq"],
                # Three nodes boot at once on the same machine, each waiting for the others.
                wait_timeout=300,
                entrypoints=["sh", "-c", RABBITMQ_CLUSTER_START],
                envs=[f"RABBITMQ_CONFIG_FILE={mq_files.CONFIG_FILE}"],
                uploads=[
                    _upload(shared, mq_files.CONFIG_FILE, "rabbitmq/rabbitmq.conf"),
                    _upload(shared, mq_files.PLUGINS_FILE, "rabbitmq/enabled_plugins"),
                    _upload(
                        shared, mq_files.DEFINITIONS_FILE, "rabbitmq/definitions.json", private=True
                    ),
                    _secret_upload(ERLANG_COOKIE_UPLOAD, cookie),
                ],
                **_rabbitmq_args(shared, volume, amqp, management),
            )
        )
    return nodes


def _live_file(
    shared: Shared, rendered: str, *, private: bool, user: str = IMAGE_USER
) -> dict[str, Any]:
    """A file of the full (per-service) rendering, as the matching upload places it."""
    content = shared.live_files.apply(lambda files: files[rendered].content)
    uid = int(user)
    return file_spec(content, uid=uid, gid=uid, mode=0o400 if private else 0o444, secret=private)


def live_config(
    shared: Shared,
    members: list[docker.Container],
    redis: docker.Container,
    rabbit: list[docker.Container],
    pooler: docker.Container | None,
) -> dict[str, LiveConfig]:
    """Per server, the resource that applies the services' configuration to it while it runs.

    ``members``: PostgreSQL's, member 0 first; ``rabbit``: the broker's containers, one (a
    single node) or a cluster's nodes; ``pooler``: PgBouncer's, where the stack runs one.
    """
    config = shared.config
    endpoints = for_stack(config)

    def opts(*containers: docker.Container) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=shared.parent, depends_on=list(containers))

    everything = shared.passwords.everything
    live = member_live_config(shared, members) | {
        "redis": LiveConfig.redis(
            "redis-live-config",
            server_id=redis.id,
            host=endpoints.redis_host,
            port=endpoints.redis_port,
            admin_user=config.redis.admin_user,
            admin_password=shared.passwords.redis_admin,
            users=everything.apply(lambda c: redis_files.service_users(config, c)),
            files={redis_files.ACL_FILE: _live_file(shared, "redis/users.acl", private=True)},
            opts=opts(redis),
        ),
        "rabbitmq": _broker_live_config(shared, rabbit, opts(*rabbit)),
    }
    if pooler is not None:
        live["pooler"] = LiveConfig.files(
            "pooler-live-config",
            server_id=pooler.id,
            files={
                path: _live_file(shared, rendered, private=private, user=POOLER_USER)
                for path, rendered, private in POOLER_FILES
            },
            signal="HUP",
            opts=opts(pooler),
        )
    return live


def member_live_config(shared: Shared, members: list[docker.Container]) -> dict[str, LiveConfig]:
    """Every PostgreSQL member's pg_hba.conf (each service's logins reach their own database, on
    the primary and the replicas alike) and replication.conf (the primary's synchronous
    standbys; a standby ignores it), written in and reloaded with SIGHUP: the same on every
    member, so a promoted replica has them already. After every member: the primary names
    its synchronous standbys once they run."""
    files = {
        pg_files.HBA_FILE: _live_file(shared, "postgres/pg_hba.conf", private=False),
        pg_files.REPLICATION_CONFIG_FILE: _live_file(
            shared, "postgres/replication.conf", private=False
        ),
    }
    return {
        pg_files.replica_host(index): LiveConfig.files(
            f"{pg_files.replica_host(index)}-live-config",
            server_id=member.id,
            files=files,
            signal="HUP",
            opts=pulumi.ResourceOptions(parent=shared.parent, depends_on=list(members)),
        )
        for index, member in enumerate(members)
    }


def _broker_live_config(
    shared: Shared, nodes: list[docker.Container], opts: pulumi.ResourceOptions
) -> LiveConfig:
    """The services' definitions, imported into the running broker. A cluster's go through any
    live node's management API, with quorum queues of one member per node; the resource takes
    every node's id, so a node replaced gets the definitions again (and a single node's inputs
    are exactly what they always were)."""
    config = shared.config
    count = len(nodes)
    urls = [
        f"http://{config.docker.bind_address}:{management}"
        for _, management in config.docker_rabbitmq_ports()
    ]
    server_id: pulumi.Input[str] = (
        nodes[0].id if count == 1 else pulumi.Output.all(*[n.id for n in nodes]).apply(",".join)
    )
    return LiveConfig.broker(
        "rabbitmq-live-config",
        server_id=server_id,
        management_url=urls[0],
        admin_user=config.rabbitmq.admin_user,
        admin_password=shared.passwords.rabbitmq_admin,
        definitions=shared.passwords.everything.apply(
            lambda c: mq_files.definitions(config, c, count)
        ),
        cluster_urls=urls if count > 1 else None,
        opts=opts,
    )
