"""``python -m infra render`` on a cluster stack writes what the platform deploys to every node.

A person who renders a stack's files to read or diff them (README, 'Render the files') must see
the cluster's rabbitmq.conf (every node listed, pause_minority) and definitions (one quorum
queue member per node), not a single node's: the command is run as a user runs it, and its
output is compared with what the program hands each container (dev) or VM (prod) under mocks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.platforms.gcp import rabbitmq_vm
from infra.render import rabbitmq
from tests.unit.pulumi_mocks import run_program, stack_config
from tests.unit.test_render import run_render

REPO = Path(__file__).resolve().parents[2]
CONTAINER = "docker:index/container:Container"
INSTANCE = "gcp:compute/instance:Instance"
CASES = [("dev", 3), ("prod", 3), ("prod", 5)]


def stack_file(tmp_path: Path, stack: str, nodes: int) -> Path:
    """The repository's stack file with ``rabbitmq.nodes`` set, as a user would edit it."""
    document = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())
    settings = document["config"].setdefault("persistence:rabbitmq", {})
    settings["nodes"] = nodes
    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def render_command(stack_path: Path, out: Path) -> None:
    result = run_render(out, out.parent / "secrets.json", str(stack_path))
    assert result.returncode == 0, result.stderr


def deployed_confs(stack: str, nodes: int) -> list[str]:
    """Each node's rabbitmq.conf as the program places it, node 1 first."""
    config = stack_config(stack)
    settings = json.loads(config.get("persistence:rabbitmq", "{}"))
    config["persistence:rabbitmq"] = json.dumps({**settings, "nodes": nodes})
    run = run_program(stack, config)
    if stack == "dev":
        containers = sorted(
            (c for c in run.of_type(CONTAINER) if c.name.startswith("rabbitmq-")),
            key=lambda c: c.name,
        )
        return [_upload(c.inputs["uploads"], rabbitmq.CONFIG_FILE) for c in containers]
    vms = sorted(
        (vm for vm in run.of_type(INSTANCE) if vm.name.startswith("rabbitmq")),
        key=lambda vm: vm.name,
    )
    return [str(vm.inputs["metadata"][rabbitmq_vm.CONF_KEY]) for vm in vms]


def _upload(uploads: list[dict[str, Any]], path: str) -> str:
    (found,) = [u["content"] for u in uploads if u["file"] == path]
    return str(found)


@pytest.mark.parametrize(("stack", "nodes"), CASES, ids=[f"{s}-{n}" for s, n in CASES])
def test_render_writes_the_cluster_files_every_node_runs(
    tmp_path: Path, stack: str, nodes: int
) -> None:
    out = tmp_path / "rendered"
    render_command(stack_file(tmp_path, stack, nodes), out)
    conf = (out / "rabbitmq/rabbitmq.conf").read_text()
    deployed = deployed_confs(stack, nodes)
    assert len(deployed) == nodes
    for index, node_conf in enumerate(deployed, start=1):
        assert conf == node_conf, f"node {index} runs a rabbitmq.conf render did not write"
    assert "cluster_partition_handling = pause_minority" in conf
    assert conf.count("cluster_formation.classic_config.nodes.") == nodes
    document = json.loads((out / "rabbitmq/definitions.json").read_text())
    quorum = [q for q in document["queues"] if q["arguments"]["x-queue-type"] == "quorum"]
    assert quorum, f"Pulumi.{stack}.yaml declares quorum queues"
    for queue in quorum:
        assert queue["arguments"][rabbitmq.QUORUM_GROUP_SIZE] == nodes, queue["name"]


def test_render_of_a_single_node_stack_lists_no_peers(tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    render_command(stack_file(tmp_path, "dev", 1), out)
    conf = (out / "rabbitmq/rabbitmq.conf").read_text()
    assert conf == deployed_single_node_conf()
    assert "cluster_formation" not in conf


def deployed_single_node_conf() -> str:
    run = run_program("dev")
    (broker,) = [c for c in run.of_type(CONTAINER) if c.name == "rabbitmq"]
    return _upload(broker.inputs["uploads"], rabbitmq.CONFIG_FILE)
