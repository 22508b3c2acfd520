"""rabbitmq.conf, enabled_plugins and definitions.json: a vhost and a user per service."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from infra import hashes, naming, versions
from infra.config.model import QueueSpec, ServiceSpec, StackConfig
from infra.credentials import Credentials
from infra.render.endpoints import (
    AMQP_PORT,
    MANAGEMENT_PORT,
    PROMETHEUS_PORT,
    rabbitmq_node_hosts,
)
from infra.render.environment import render

CONFIG_DIR = "/etc/rabbitmq"
CONFIG_FILE = f"{CONFIG_DIR}/rabbitmq.conf"
DEFINITIONS_FILE = f"{CONFIG_DIR}/definitions.json"
PLUGINS_FILE = f"{CONFIG_DIR}/enabled_plugins"
PLUGINS = ("rabbitmq_management", "rabbitmq_prometheus")
HASHING = "rabbit_password_hashing_sha256"
# The metrics listener has no authentication: loopback only, inside the container or on the VM.
PROMETHEUS_IP = "127.0.0.1"

# Marks the users and vhosts this tool manages, so ``broker prune`` can tell a service that
# left the config from something an operator created by hand (which it never touches).
MANAGED_TAG = "persistence-managed"
SERVICE_PERMISSIONS = {"configure": ".*", "write": ".*", "read": ".*"}

# The node name's prefix on every host: one node per host (VM or container), as RabbitMQ's
# clustering guide advises.
NODE_PREFIX = "rabbit"
_NODE_NAME = re.compile(r"^[A-Za-z0-9_-]+@[A-Za-z0-9][A-Za-z0-9.-]*$")
CLUSTER_SIZES = (3, 5)
# A quorum queue's members at declaration (3.10 has no config key for it; its default is 3).
QUORUM_GROUP_SIZE = "x-quorum-initial-group-size"


def node_name(host: str) -> str:
    """The Erlang node name of the broker on ``host`` (``rabbit@<host>``)."""
    return f"{NODE_PREFIX}@{host}"


def cluster_node_names(config: StackConfig) -> tuple[str, ...]:
    """The Erlang names of the stack's nodes, as each platform places them; () for one node."""
    return tuple(node_name(host) for host in rabbitmq_node_hosts(config))


def check_cluster_nodes(nodes: Sequence[str]) -> tuple[str, ...]:
    """``nodes`` as a tuple: none or one (a single node), or 3 or 5 distinct node names."""
    names = tuple(nodes)
    if len(names) <= 1:
        return names
    if len(names) not in CLUSTER_SIZES:
        raise ValueError(f"a cluster has 3 or 5 nodes (an odd number for quorum), not {len(names)}")
    for name in names:
        if not _NODE_NAME.match(name):
            raise ValueError(f"{name!r} is not a node name; expected e.g. 'rabbit@broker-1'")
    if len(set(names)) != len(names):
        raise ValueError(f"a node is listed twice in {list(names)}")
    return names


def rabbitmq_conf(
    config: StackConfig,
    definitions_file: str = DEFINITIONS_FILE,
    cluster_nodes: Sequence[str] = (),
) -> str:
    """Loads the definitions at boot; alarms for disk and memory.

    ``cluster_nodes`` (node names, e.g. ``node_name(host)`` for each host the platform places a
    node on) makes the nodes form one cluster by themselves; none or one: a single node, whose
    file is exactly what it always was.
    """
    nodes = check_cluster_nodes(cluster_nodes)
    return render(
        "rabbitmq/rabbitmq.conf.j2",
        amqp_port=AMQP_PORT,
        management_port=MANAGEMENT_PORT,
        prometheus_port=PROMETHEUS_PORT,
        prometheus_ip=PROMETHEUS_IP,
        definitions_file=definitions_file,
        disk_free_limit_mb=config.rabbitmq.disk_free_limit_mb,
        memory_high_watermark=config.rabbitmq.memory_high_watermark,
        password_hashing_module=HASHING,
        version=versions.RABBITMQ_VERSION,
        oldest_version=versions.RABBITMQ_OLDEST_VERSION,
        cluster_nodes=nodes if len(nodes) > 1 else (),
    )


def enabled_plugins() -> str:
    """Management (operations) and Prometheus (metrics, on the broker's loopback) stay on."""
    return render("rabbitmq/enabled_plugins.j2", plugins=PLUGINS)


def definitions(
    config: StackConfig, credentials: Credentials, cluster_size: int = 1
) -> dict[str, Any]:
    """The broker's desired state, as RabbitMQ's definitions document.

    On a cluster (``cluster_size`` 3 or 5) every quorum queue is declared with one member per
    node; RabbitMQ 3.10's default is 3 whatever the cluster's size, and no rabbitmq.conf key
    changes it. A single node's document is exactly what it always was.
    """
    if cluster_size != 1 and cluster_size not in CLUSTER_SIZES:
        raise ValueError(
            f"a cluster has 3 or 5 nodes (an odd number for quorum), not {cluster_size}"
        )
    group = cluster_size if cluster_size > 1 else None
    admin = config.rabbitmq.admin_user
    users = [_user(admin, credentials.rabbitmq_admin, tags=["administrator"])]  # implies management
    vhosts: list[dict[str, Any]] = []
    permissions = []
    exchanges: list[dict[str, Any]] = []
    queues: list[dict[str, Any]] = []
    bindings: list[dict[str, Any]] = []
    policies: list[dict[str, Any]] = []
    for service in config.services:
        vhost = naming.rabbitmq_vhost(service.name)
        user = naming.rabbitmq_user(service.name)
        users.append(
            _user(user, credentials.for_service(service.name).rabbitmq, tags=[MANAGED_TAG])
        )
        vhosts.append(_vhost(service.name))
        # The service's user gets rights on its own vhost only; the admin on every vhost.
        permissions.append({"user": user, "vhost": vhost, **SERVICE_PERMISSIONS})
        permissions.append({"user": admin, "vhost": vhost, **SERVICE_PERMISSIONS})
        exchanges.extend(_exchanges(service))
        queues.append(_dead_letter_queue(service, group))
        bindings.append(
            {
                "source": naming.dead_letter_exchange(service.name),
                "vhost": vhost,
                "destination": naming.dead_letter_queue(service.name),
                "destination_type": "queue",
                "routing_key": "",
                "arguments": {},
            }
        )
        for queue in service.queues:
            queues.append(_queue(service, queue, group))
            bindings.append(
                {
                    "source": service.name,
                    "vhost": vhost,
                    "destination": queue.name,
                    "destination_type": "queue",
                    "routing_key": queue.routing_key or queue.name,
                    "arguments": {},
                }
            )
            policies.extend(_policies(service, queue))
    return {
        "rabbit_version": versions.RABBITMQ_VERSION,
        "rabbitmq_version": versions.RABBITMQ_VERSION,
        "users": users,
        "vhosts": vhosts,
        "permissions": permissions,
        "topic_permissions": [],
        "parameters": [],
        "global_parameters": [],
        "policies": policies,
        "queues": queues,
        "exchanges": exchanges,
        "bindings": bindings,
    }


def definitions_json(config: StackConfig, credentials: Credentials, cluster_size: int = 1) -> str:
    """definitions.json through a JSON serializer, never built as text."""
    document = definitions(config, credentials, cluster_size)
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _user(name: str, password: str, tags: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "password_hash": hashes.rabbitmq_password_hash(password),
        "hashing_algorithm": HASHING,
        "tags": tags,
        "limits": {},
    }


def _vhost(service: str) -> dict[str, Any]:
    """Description and tags both at the top level (3.10 reads these) and as metadata (3.13+)."""
    description = f"{service} service ({MANAGED_TAG})"
    tags = [MANAGED_TAG]
    return {
        "name": naming.rabbitmq_vhost(service),
        "description": description,
        "tags": tags,
        "metadata": {"description": description, "tags": tags},
    }


def _exchanges(service: ServiceSpec) -> list[dict[str, Any]]:
    vhost = naming.rabbitmq_vhost(service.name)
    common = {"vhost": vhost, "durable": True, "auto_delete": False, "internal": False}
    return [
        {"name": service.name, "type": "topic", "arguments": {}, **common},
        {
            "name": naming.dead_letter_exchange(service.name),
            "type": "fanout",
            "arguments": {},
            **common,
        },
    ]


def _queue(service: ServiceSpec, queue: QueueSpec, group: int | None) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "x-queue-type": queue.type,
        "x-dead-letter-exchange": naming.dead_letter_exchange(service.name),
    }
    if group is not None and queue.type == "quorum":
        arguments[QUORUM_GROUP_SIZE] = group
    return {
        "name": queue.name,
        "vhost": naming.rabbitmq_vhost(service.name),
        "durable": True,
        "auto_delete": False,
        "arguments": arguments,
    }


def _dead_letter_queue(service: ServiceSpec, group: int | None) -> dict[str, Any]:
    """Where rejected and expired messages end up, instead of being dropped."""
    arguments: dict[str, Any] = {"x-queue-type": "quorum"}
    if group is not None:
        arguments[QUORUM_GROUP_SIZE] = group
    return {
        "name": naming.dead_letter_queue(service.name),
        "vhost": naming.rabbitmq_vhost(service.name),
        "durable": True,
        "auto_delete": False,
        "arguments": arguments,
    }


def _policies(service: ServiceSpec, queue: QueueSpec) -> list[dict[str, Any]]:
    definition: dict[str, Any] = {}
    if queue.message_ttl_ms is not None:
        definition["message-ttl"] = queue.message_ttl_ms
    if queue.max_length is not None:
        definition["max-length"] = queue.max_length
        definition["overflow"] = "reject-publish"
    if not definition:
        return []
    return [
        {
            "vhost": naming.rabbitmq_vhost(service.name),
            "name": f"{queue.name}.limits",
            "pattern": "^" + queue.name.replace(".", r"\.") + "$",
            "apply-to": "queues",
            "definition": definition,
            "priority": 10,
        }
    ]
