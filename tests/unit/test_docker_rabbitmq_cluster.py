"""``rabbitmq.nodes: 3`` in dev: three broker containers that form one cluster, under mocks.

Invariants of what the program declares (that the containers really form a cluster and survive
a node's loss is ``tests/e2e/test_cluster.py``'s job, under the real engine and Docker).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from infra.config.model import StackConfig
from infra.platforms.docker import containers
from infra.render import rabbitmq as mq_files
from infra.render.endpoints import AMQP_PORT, MANAGEMENT_PORT
from tests.unit.pulumi_mocks import OUTPUT_HOOKS, ProgramRun, is_secret, run_program, stack_config

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
DYNAMIC = "pulumi-python:dynamic:Resource"
PASSWORD = "random:index/randomPassword:RandomPassword"
NODES = ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3")
NODE_NAMES = [f"rabbit@{host}" for host in NODES]
PORTS = {"postgres": 25001, "redis": 25002, "amqp": 25010, "management": 25020}
COOKIE = str(OUTPUT_HOOKS[PASSWORD]("rabbitmq-erlang-cookie", {})["result"])


@pytest.fixture(scope="module")
def run() -> ProgramRun:
    config = stack_config("dev")
    config["persistence:rabbitmq"] = json.dumps({"nodes": 3})
    config["persistence:docker"] = json.dumps({"ports": PORTS})
    return run_program("dev", config)


@pytest.fixture(scope="module")
def cluster_config(dev_config: StackConfig) -> StackConfig:
    rabbitmq = replace(dev_config.rabbitmq, nodes=3)
    return replace(dev_config, rabbitmq=rabbitmq)


def uploads(container: Any) -> dict[str, dict[str, Any]]:
    return {u["file"]: u for u in container.inputs["uploads"]}


def nodes(run: ProgramRun) -> list[Any]:
    return [run.one(CONTAINER, host) for host in NODES]


def test_one_container_per_node_and_no_single_broker(run: ProgramRun) -> None:
    names = sorted(c.name for c in run.of_type(CONTAINER))
    replica = "postgres-replica-1"  # Pulumi.dev.yaml's postgres.replicas: 1
    assert names == sorted(
        ["postgres", replica, "postgres-router", "pooler", "redis", *NODES, "backup"]
    )
    for node in nodes(run):
        assert node.inputs["hostname"] == node.name, f"{node.urn}: node name follows hostname"
        assert node.inputs["name"] == f"persistence-dev-{node.name}"


def test_every_node_has_its_own_retained_volume(run: ProgramRun) -> None:
    mounted = []
    for node in nodes(run):
        (volume,) = node.inputs["volumes"]
        assert volume["containerPath"] == "/var/lib/rabbitmq", node.urn
        mounted.append(volume["volumeName"])
    assert len(set(mounted)) == len(NODES), f"nodes share a volume: {mounted}"
    for host in NODES:
        declared = run.one(VOLUME, f"{host}-data")
        assert declared.inputs["name"] in mounted
        assert declared.retain_on_delete, f"{declared.urn} must outlive the stack"


def test_node_n_publishes_the_configured_ports_plus_n_minus_one_on_loopback(
    run: ProgramRun,
) -> None:
    for index, node in enumerate(nodes(run)):
        published = {p["internal"]: (p["external"], p["ip"]) for p in node.inputs["ports"]}
        assert published == {
            AMQP_PORT: (PORTS["amqp"] + index, "127.0.0.1"),
            MANAGEMENT_PORT: (PORTS["management"] + index, "127.0.0.1"),
        }, node.urn


def test_nodes_find_each_other_by_name_and_answer_to_the_shared_name(run: ProgramRun) -> None:
    for node in nodes(run):
        (network,) = node.inputs["networksAdvanced"]
        # Their own name for Erlang distribution; "rabbitmq" (any live node) for the backup
        # container, as it reaches a single broker.
        assert network["aliases"] == [node.name, "rabbitmq"], node.urn


def test_every_node_gets_the_same_cluster_config_and_definitions_prod_renders(
    run: ProgramRun, cluster_config: StackConfig
) -> None:
    expected_conf = mq_files.rabbitmq_conf(cluster_config, cluster_nodes=NODE_NAMES)
    assert "cluster_formation.peer_discovery_backend = classic_config" in expected_conf
    assert "cluster_partition_handling = pause_minority" in expected_conf
    for node in nodes(run):
        placed = uploads(node)
        assert placed["/etc/rabbitmq/rabbitmq.conf"]["content"] == expected_conf, node.urn
        definitions = json.loads(placed["/etc/rabbitmq/definitions.json"]["content"])
        assert definitions["queues"] == [], "boot definitions hold no service (live apply does)"
        assert placed["/etc/rabbitmq/definitions.json"]["permissions"] == "0400"


def test_the_erlang_cookie_is_a_secret_file_never_an_env_var_or_a_command_line(
    run: ProgramRun,
) -> None:
    cookie = run.one(PASSWORD, "rabbitmq-erlang-cookie")
    assert cookie.inputs["special"] is False, "the cookie file holds it as is: letters, digits"
    assert cookie.inputs["length"] >= 32
    for node in nodes(run):
        assert is_secret(node.raw_inputs["uploads"]), node.urn
        upload = uploads(node)[containers.ERLANG_COOKIE_UPLOAD]
        assert upload["content"] == COOKIE
        assert (upload["permissions"], upload["owner"]) == ("0400", containers.IMAGE_USER)
        visible = repr([node.inputs.get(k) for k in ("envs", "entrypoints", "command", "labels")])
        assert COOKIE not in visible, f"{node.urn}: the cookie is visible in its inputs"
        # It reaches the node's and the CLI's $HOME/.erlang.cookie, 0400, by file copy only.
        script = node.inputs["entrypoints"][-1]
        assert "-m 0400" in script
        assert "/var/lib/rabbitmq/.erlang.cookie" in script
        assert script.rstrip().endswith("exec docker-entrypoint.sh rabbitmq-server")
    for resource in run:
        if resource.type == PASSWORD:
            continue
        for key, value in resource.raw_inputs.items():
            if not is_secret(value):
                assert COOKIE not in repr(value), f"{resource.urn}: {key} holds the cookie"


def test_the_live_apply_reaches_every_node_and_sizes_quorum_queues_to_the_cluster(
    run: ProgramRun,
) -> None:
    live = run.one(DYNAMIC, "rabbitmq-live-config")
    node_urns = {node.urn for node in nodes(run)}
    assert node_urns <= set(live.dependencies), "the import must wait for every node"
    urls = [f"http://127.0.0.1:{PORTS['management'] + i}" for i in range(len(NODES))]
    assert live.inputs["management_urls"] == urls
    assert live.inputs["management_url"] == urls[0]
    queues = live.inputs["definitions"]["queues"]
    quorum = [q for q in queues if q["arguments"]["x-queue-type"] == "quorum"]
    assert quorum, "the dev stack file declares quorum queues"
    for queue in quorum:
        assert queue["arguments"][mq_files.QUORUM_GROUP_SIZE] == len(NODES), queue["name"]


def test_the_backup_container_starts_after_every_node(run: ProgramRun) -> None:
    backup = run.one(CONTAINER, "backup")
    assert {node.urn for node in nodes(run)} <= set(backup.dependencies)


def test_env_files_list_every_node_after_the_first(run: ProgramRun) -> None:
    for service, text in run.exports["service_env"].items():
        env = dict(line.split("=", 1) for line in text.splitlines() if "=" in line[:30])
        urls = env["AMQP_URLS"].split(",")
        assert urls[0] == env["AMQP_URL"], service
        ports = [int(url.split("@", 1)[1].split("/")[0].rsplit(":", 1)[1]) for url in urls]
        assert ports == [PORTS["amqp"] + i for i in range(len(NODES))], service
        assert all(url.endswith(f"/{service}") for url in urls), f"{service}: its own vhost"


def test_a_single_node_env_file_has_no_node_list() -> None:
    for service, text in run_program("dev").exports["service_env"].items():
        assert "AMQP_URLS" not in text, service
