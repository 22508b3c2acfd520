"""The cluster parts of rabbitmq.conf and definitions.json, and the single node left unchanged.

``tests/integration/test_rabbitmq_cluster.py`` boots three real nodes from these files and
kills them; these pin the rendered text fast.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from infra.config.load import load_file, load_stack
from infra.config.model import StackConfig
from infra.credentials import Credentials, ServiceCredentials
from infra.render import rabbitmq as mq_files
from infra.render import render_all
from tests.unit.conf_text import key_values

GOLDEN = Path(__file__).parent / "golden" / "rabbitmq"
HOSTS = ("broker-1.internal", "broker-2.internal", "broker-3.internal")
NODES = tuple(mq_files.node_name(host) for host in HOSTS)


def fixed_credentials(config: StackConfig) -> Credentials:
    """Fixed passwords: the hashes in definitions.json are deterministic for a password."""
    services = {
        s.name: ServiceCredentials(
            migrator=f"{s.name}-migrator-pw",
            app=f"{s.name}-app-pw",
            readonly=f"{s.name}-readonly-pw",
            redis=f"{s.name}-redis-pw",
            rabbitmq=f"{s.name}-rabbitmq-pw",
        )
        for s in config.services
    }
    return Credentials("su-pw", "pg-pw", "redis-pw", "rabbit-admin-pw", services)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_a_single_node_renders_byte_for_byte_what_it_did_before_clusters(stack: str) -> None:
    """The golden files are the output of the code before cluster support (commit 45b1eee):
    a single node's rabbitmq.conf and definitions.json, through every entry point, are
    unchanged, so no running single-node broker is restarted or re-declared by this work.
    (prod's default is a cluster now: its single-node case is ``rabbitmq.nodes: 1``.)"""
    loaded = load_stack(stack)
    config = replace(loaded, rabbitmq=replace(loaded.rabbitmq, nodes=1))
    credentials = fixed_credentials(config)
    conf = (GOLDEN / f"{stack}.rabbitmq.conf").read_text()
    document = (GOLDEN / f"{stack}.definitions.json").read_text()
    files = render_all(config, credentials)
    assert files["rabbitmq/rabbitmq.conf"].content == conf
    assert files["rabbitmq/definitions.json"].content == document
    assert mq_files.rabbitmq_conf(config, cluster_nodes=()) == conf
    assert mq_files.rabbitmq_conf(config, cluster_nodes=["rabbit@only"]) == conf
    assert mq_files.definitions_json(config, credentials, cluster_size=1) == document


def test_a_cluster_lists_every_node_and_pauses_the_minority(dev_config: StackConfig) -> None:
    text = mq_files.rabbitmq_conf(dev_config, cluster_nodes=NODES)
    settings = key_values(text)
    assert settings["cluster_formation.peer_discovery_backend"] == "classic_config"
    listed = {k: v for k, v in settings.items() if k.startswith("cluster_formation.classic_config")}
    assert listed == {
        "cluster_formation.classic_config.nodes.1": "rabbit@broker-1.internal",
        "cluster_formation.classic_config.nodes.2": "rabbit@broker-2.internal",
        "cluster_formation.classic_config.nodes.3": "rabbit@broker-3.internal",
    }
    assert settings["cluster_partition_handling"] == "pause_minority"
    assert settings["cluster_formation.target_cluster_size_hint"] == "3"
    # Everything a single node has, a cluster node has too, unchanged.
    single = key_values(mq_files.rabbitmq_conf(dev_config))
    assert single.items() <= settings.items()
    assert "cluster_formation.peer_discovery_backend" not in single
    assert "cluster_partition_handling" not in single


def test_five_nodes_are_listed_and_sized_five(dev_config: StackConfig) -> None:
    nodes = [f"rabbit@b{i}" for i in range(1, 6)]
    settings = key_values(mq_files.rabbitmq_conf(dev_config, cluster_nodes=nodes))
    assert [settings[f"cluster_formation.classic_config.nodes.{i}"] for i in range(1, 6)] == nodes
    assert settings["cluster_formation.target_cluster_size_hint"] == "5"


@pytest.mark.parametrize(
    ("nodes", "says"),
    [
        (["rabbit@a", "rabbit@b"], "not 2"),
        ([f"rabbit@h{i}" for i in range(4)], "not 4"),
        (["rabbit@a", "rabbit@b", "rabbit@a"], "listed twice"),
        (["rabbit@a", "rabbit@b", "broker-3"], "not a node name"),
        (["rabbit@a", "rabbit@b", "rabbit@c\ncluster_partition_handling = ignore"], "node name"),
    ],
)
def test_a_bad_node_list_is_refused_before_rendering(
    dev_config: StackConfig, nodes: list[str], says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        mq_files.rabbitmq_conf(dev_config, cluster_nodes=nodes)


@pytest.mark.parametrize("size", [3, 5])
def test_every_quorum_queue_gets_one_member_per_node_and_classic_queues_stay_plain(
    size: int, tmp_path: Path
) -> None:
    body = """\
config:
  persistence:platform: docker
  persistence:services:
    - name: orders
      queues:
        - {name: placed}
        - {name: audit.tail, type: classic}
"""
    path = tmp_path / "Pulumi.c.yaml"
    path.write_text(body)
    config = load_file(path)
    credentials = Credentials.generate().completed_for(config)
    single = mq_files.definitions(config, credentials)
    document = json.loads(mq_files.definitions_json(config, credentials, cluster_size=size))
    queues = {q["name"]: q["arguments"] for q in document["queues"]}
    before = {q["name"]: q["arguments"] for q in single["queues"]}
    assert queues["placed"] == {**before["placed"], "x-quorum-initial-group-size": size}
    assert queues["orders.dead-letter"] == {
        **before["orders.dead-letter"],
        "x-quorum-initial-group-size": size,
    }
    assert queues["audit.tail"] == before["audit.tail"]
    assert "x-quorum-initial-group-size" not in json.dumps(single)
    # Nothing but the queues' arguments differs.
    assert {k: v for k, v in document.items() if k != "queues"} == {
        k: v for k, v in single.items() if k != "queues"
    }


@pytest.mark.parametrize("size", [0, 2, 4, 7])
def test_definitions_refuse_an_even_cluster(dev_config: StackConfig, size: int) -> None:
    with pytest.raises(ValueError, match="odd number for quorum"):
        mq_files.definitions(dev_config, Credentials.generate().completed_for(dev_config), size)
