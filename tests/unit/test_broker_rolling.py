"""The rolling restart's order of operations, on a fake fleet: one node at a time, the cluster
whole before each stop and again after each restart, seen through another node."""

from __future__ import annotations

import io
import json
import subprocess
from typing import Any

import pytest

from infra.broker import rolling
from infra.broker.cluster import ReadsApi
from infra.broker.rolling import Node
from infra.errors import ServerError, UsageError

NODES = [
    Node(f"persistence-prod-rabbitmq-{n}", f"europe-west1-{z}")
    for n, z in zip("123", "bcd", strict=True)
]


class NodeApi:
    """Stands for one node's management API; the fake wait reads only which node."""

    def __init__(self, instance: str) -> None:
        self.instance = instance

    def get(self, path: str) -> Any:
        raise AssertionError(f"the fake wait reads nothing ({path})")


class FakeFleet:
    """Records every call; a node is "down" between its restart and the next wait."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def api_via(self, node: Node) -> ReadsApi:
        self.log.append(f"api {node.instance}")
        return NodeApi(node.instance)

    def restart(self, node: Node) -> None:
        self.log.append(f"restart {node.instance}")


def waiting(fleet: FakeFleet, fail_at: int | None = None) -> Any:
    calls = []

    def wait(api: Any, timeout: float) -> float:
        calls.append(api)
        fleet.log.append(f"wait via {api.instance}")
        if fail_at is not None and len(calls) == fail_at:
            raise ServerError("quorum queue 'audit.events' has members offline on rabbit@x")
        return 1.5

    return wait


def test_each_node_restarts_alone_between_two_waits_through_another_node() -> None:
    fleet = FakeFleet()
    took = rolling.rolling_restart(NODES, fleet, 30, wait=waiting(fleet), report=lambda _: None)
    assert took == [1.5, 1.5, 1.5]
    restarts = [line for line in fleet.log if line.startswith("restart")]
    assert restarts == [f"restart {n.instance}" for n in NODES]
    for node in NODES:
        at = fleet.log.index(f"restart {node.instance}")
        before, after = fleet.log[at - 1], fleet.log[at + 1]
        assert before.startswith("wait via "), fleet.log
        assert after.startswith("wait via "), fleet.log
        assert node.instance not in before, f"watched {node.instance} through itself"
        assert node.instance not in after, f"watched {node.instance} through itself"


def test_a_cluster_that_does_not_come_back_stops_the_restart_there() -> None:
    fleet = FakeFleet()
    with pytest.raises(ServerError, match="rabbitmq-1 restarted but the cluster is not whole"):
        rolling.rolling_restart(NODES, fleet, 30, wait=waiting(fleet, 2), report=lambda _: None)
    assert [line for line in fleet.log if line.startswith("restart")] == [
        f"restart {NODES[0].instance}"
    ]


def test_a_cluster_not_whole_to_begin_with_restarts_nothing() -> None:
    fleet = FakeFleet()
    with pytest.raises(ServerError, match="not restarting persistence-prod-rabbitmq-1"):
        rolling.rolling_restart(NODES, fleet, 30, wait=waiting(fleet, 1), report=lambda _: None)
    assert not [line for line in fleet.log if line.startswith("restart")]


def test_a_single_node_is_refused() -> None:
    with pytest.raises(UsageError, match="needs a cluster"):
        rolling.rolling_restart(NODES[:1], FakeFleet(), 30, report=lambda _: None)


def test_the_node_list_is_the_stack_output() -> None:
    document = [{"instance": n.instance, "zone": n.zone} for n in NODES]
    assert rolling.parse_nodes(document) == NODES
    for bad in ([], {"instance": "x"}, [{"instance": "x"}], document + document[:1]):
        with pytest.raises(UsageError):
            rolling.parse_nodes(bad)


def test_the_restart_goes_through_iap_ssh(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 1, "", "ERROR: (gcloud) no route\n")

    monkeypatch.setattr("infra.broker.rolling.shutil.which", lambda _: "/usr/bin/gcloud")
    fleet = rolling.GcloudFleet(NODES, "platform_admin", "pw", run=run)
    with pytest.raises(ServerError, match=r"restarting persistence-prod-rabbitmq-2 failed: ERROR"):
        fleet.restart(NODES[1])
    assert seen == [
        [
            "/usr/bin/gcloud", "compute", "ssh", NODES[1].instance, "--zone", NODES[1].zone,
            "--tunnel-through-iap", "--command", rolling.RESTART_COMMAND,
        ]
    ]  # fmt: skip


def test_the_command_refuses_a_dev_stack_and_bad_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from infra.cli import main

    monkeypatch.setenv("RABBITMQ_ADMIN_PASSWORD", "from-the-environment")
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps([])))
    assert main(["broker", "rolling-restart", "--stack", "dev"]) != 0
    assert "platform gcp" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("not json"))
    assert main(["broker", "rolling-restart", "--stack", "prod"]) != 0
    assert "pulumi stack output rabbitmq_nodes --json" in capsys.readouterr().err
