"""The decision a rolling restart waits on, from management API documents (no broker).

``tests/integration/test_rabbitmq_cluster.py`` runs it against three real nodes while they are
restarted under load.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.broker.cluster import (
    NODES_PATH,
    QUEUES_PATH,
    membership_gaps,
    wait_for_full_membership,
)
from infra.errors import ServerError

NAMES = ["rabbit@a", "rabbit@b", "rabbit@c"]


def nodes(*down: str, partitions: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    return [
        {"name": n, "running": n not in down, "partitions": (partitions or {}).get(n, [])}
        for n in NAMES
    ]


def quorum(name: str, online: list[str], leader: str | None = "rabbit@a") -> dict[str, Any]:
    return {
        "name": name,
        "vhost": "users",
        "type": "quorum",
        "leader": leader,
        "members": NAMES,
        "online": online,
    }


def test_a_whole_cluster_has_no_gaps() -> None:
    classic = {"name": "tail", "vhost": "events", "type": "classic", "node": "rabbit@b"}
    assert membership_gaps(nodes(), [quorum("q", NAMES), classic]) == []


def test_a_stopped_node_and_its_offline_members_are_gaps() -> None:
    gaps = membership_gaps(nodes("rabbit@b"), [quorum("q", ["rabbit@a", "rabbit@c"])])
    assert gaps == [
        "node rabbit@b is not running",
        "quorum queue 'q' in vhost 'users' has members offline on rabbit@b",
    ]


def test_every_node_running_is_not_enough_while_a_member_is_still_offline() -> None:
    """The restarted node runs before its quorum members have caught up and come online."""
    gaps = membership_gaps(nodes(), [quorum("q", NAMES), quorum("r", ["rabbit@a"])])
    assert gaps == ["quorum queue 'r' in vhost 'users' has members offline on rabbit@b, rabbit@c"]


def test_a_queue_without_a_leader_and_a_partition_are_gaps() -> None:
    gaps = membership_gaps(
        nodes(partitions={"rabbit@c": ["rabbit@a"]}), [quorum("q", NAMES, leader=None)]
    )
    assert gaps == [
        "node rabbit@c is partitioned from rabbit@a",
        "quorum queue 'q' in vhost 'users' has no leader",
    ]


def test_no_nodes_listed_is_never_whole() -> None:
    assert membership_gaps([], []) == ["the management API listed no nodes"]
    assert membership_gaps(None, None) == ["the management API listed no nodes"]


class ScriptedApi:
    """Answers GETs from a list of (nodes, queues) states, one state per poll; a state may be
    a ServerError, as when the node the wait asks is briefly unreachable."""

    def __init__(self, states: list[Any]) -> None:
        self.states = states
        self.polls = 0

    def get(self, path: str) -> Any:
        state = self.states[min(self.polls, len(self.states) - 1)]
        if isinstance(state, ServerError):
            self.polls += 1
            raise state
        if path == NODES_PATH:
            return state[0]
        assert path == QUEUES_PATH
        self.polls += 1
        return state[1]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_wait_returns_once_whole_and_rides_over_an_unreachable_api() -> None:
    api = ScriptedApi(
        [
            (nodes("rabbit@b"), [quorum("q", ["rabbit@a"])]),
            ServerError("RabbitMQ management API at http://x is unreachable"),
            (nodes(), [quorum("q", ["rabbit@a", "rabbit@b"])]),
            (nodes(), [quorum("q", NAMES)]),
        ]
    )
    clock = FakeClock()
    took = wait_for_full_membership(api, timeout=60, poll=2, clock=clock, sleep=clock.sleep)
    assert took == 6
    assert api.polls == 4


def test_the_wait_times_out_naming_what_is_missing() -> None:
    api = ScriptedApi([(nodes("rabbit@c"), [quorum(f"q{i}", NAMES[:2]) for i in range(7)])])
    clock = FakeClock()
    with pytest.raises(ServerError) as raised:
        wait_for_full_membership(api, timeout=10, poll=1, clock=clock, sleep=clock.sleep)
    message = str(raised.value)
    assert message.startswith("the RabbitMQ cluster is not whole after 10 s: node rabbit@c is not")
    assert "quorum queue 'q0' in vhost 'users' has members offline on rabbit@c" in message
    assert message.endswith("(and 3 more)")
    assert clock.now == 10
