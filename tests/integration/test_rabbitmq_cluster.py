"""A three-node RabbitMQ cluster on loopback survives losing a node (issue 21's proof).

Three real Debian rabbitmq-server nodes form one cluster from the rendered files
(``RabbitmqCluster``: classic_config peer discovery, pause_minority, quorum queues with one
member per node). Real clients drive the faults: a publisher with confirms and a consumer with
manual acks, both given the whole node list (the client-side endpoint), reconnecting on loss.
Every test asserts that no confirmed message is lost and reports the duplicates.

One cluster is shared by the module (booting three nodes costs tens of seconds of CPU); each
test starts from a whole cluster (``healthy``: thawed, every node running, no partition, every
quorum queue at full membership) and uses a quorum queue of its own. ``net_ticktime`` is 10 s
(the default is 60): a frozen node is seen gone within 10 to 12.5 s, while a live node on a
loaded machine still has 10 s to answer a tick.

The measured times (recovery after the leader is killed, partition detection, each rolling
restart step) are recorded as ``measured:*`` properties and printed in the run's summary.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

from infra import naming
from infra.broker.cluster import ReadsApi
from infra.broker.management import quote
from infra.broker.rolling import Node, rolling_restart
from infra.config import StackConfig
from infra.credentials import Credentials
from infra.live.provider import KIND_BROKER, deliver
from infra.render import rabbitmq as mq_render
from tests.integration.amqp_traffic import Consumer, Outcome, Publisher, settle, wait_for
from tests.servers.rabbitmq import RabbitmqCluster, RabbitmqServer

SERVICE = "events"
NET_TICKTIME = 10
# Generous bounds for a loaded 2-core machine; each is a ceiling, never a sleep.
TRAFFIC_SECONDS = 90
DRAIN_SECONDS = 120
# The minority's own log line when it finds it cannot see a majority and stops serving
# (rabbit_node_monitor, pause_minority), before it waits for the majority and rejoins.
PAUSED = "Cluster minority/secondary status detected - awaiting recovery"

Record = Callable[[str, object], None]


@pytest.fixture(scope="module")
def cluster(
    dev_config: StackConfig, dev_rendered: tuple[Path, Credentials]
) -> Iterator[RabbitmqCluster]:
    _, credentials = dev_rendered
    cluster = RabbitmqCluster(
        dev_config, credentials, overrides={"net_ticktime": str(NET_TICKTIME)}
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture(autouse=True)
def healthy(cluster: RabbitmqCluster, record_property: Record) -> Iterator[RabbitmqCluster]:
    """Every test starts from a whole cluster, whatever the previous one left. Boots that
    failed and were relaunched (``RabbitmqCluster.boot``) are reported, never hidden."""
    cluster.heal()
    yield cluster
    if cluster.boot_failures:
        record_property("measured:boot-relaunches", list(cluster.boot_failures))
    if cluster.vhost_starts:
        record_property("measured:vhosts-started-after-boot", list(cluster.vhost_starts))


@pytest.fixture
def service(dev_rendered: tuple[Path, Credentials]) -> tuple[str, str, str]:
    """(vhost, user, password) of the events service: traffic goes through a service login."""
    _, credentials = dev_rendered
    return (
        naming.rabbitmq_vhost(SERVICE),
        naming.rabbitmq_user(SERVICE),
        credentials.for_service(SERVICE).rabbitmq,
    )


def endpoint(
    cluster: RabbitmqCluster, service: tuple[str, str, str], first: RabbitmqServer
) -> list[pika.ConnectionParameters]:
    vhost, user, password = service
    return cluster.connection_parameters(vhost, user, password, first=first)


@pytest.fixture
def quorum_queue(
    cluster: RabbitmqCluster, service: tuple[str, str, str], request: pytest.FixtureRequest
) -> Iterator[str]:
    """A quorum queue of the test's own with a member on every node, deleted afterwards."""
    name = f"cluster-test.{request.node.name[:40]}.{uuid.uuid4().hex[:6]}"
    connection = pika.BlockingConnection(endpoint(cluster, service, cluster[0]))
    try:
        connection.channel().queue_declare(
            name,
            durable=True,
            arguments={"x-queue-type": "quorum", "x-quorum-initial-group-size": 3},
        )
    finally:
        connection.close()
    cluster.wait_whole()
    yield name
    cluster.heal()
    cluster.management(cluster[0]).delete(f"/api/queues/{quote(service[0])}/{quote(name)}")


def queue_info(api: ReadsApi, vhost: str, queue: str) -> dict[str, Any]:
    found = api.get(f"/api/queues/{quote(vhost)}/{quote(queue)}")
    assert isinstance(found, dict), f"queue {queue!r} not found"
    return found


def leader_of(cluster: RabbitmqCluster, vhost: str, queue: str, via: RabbitmqServer) -> str:
    return str(queue_info(cluster.management(via), vhost, queue).get("leader") or "")


def started(publisher: Publisher, consumer: Consumer, count: int = 200) -> None:
    """Start both sides and wait until ``count`` messages went all the way through."""
    consumer.start()
    publisher.start()
    wait_for(
        lambda: consumer.traffic.count() >= count,
        TRAFFIC_SECONDS,
        f"{count} messages published and consumed before the fault",
    )


def resumed(worker: Publisher | Consumer, moment: float) -> float | None:
    """When ``worker``, connected to the node killed at ``moment``, had its first message
    through again: the first confirm (or delivery) after it saw its connection fail. A
    message already on its way at the kill does not count as resuming. It must have lost
    its connection: the kill has to reach the client for the time to mean anything."""
    failures = [when for when, _ in worker.traffic.errors if when >= moment]
    assert failures, f"{type(worker).__name__} never lost its connection to the killed node"
    return worker.traffic.first_after(min(failures))


def more_confirmed(publisher: Publisher, count: int, what: str) -> None:
    target = publisher.traffic.count() + count
    wait_for(lambda: publisher.traffic.count() >= target, TRAFFIC_SECONDS, what)


def check(outcome: Outcome, record: Record, test: str) -> None:
    record(f"measured:{test}:confirmed", outcome.confirmed)
    record(f"measured:{test}:duplicates", outcome.duplicates)
    assert outcome.confirmed > 0
    assert outcome.lost == [], (
        f"{len(outcome.lost)} of {outcome.confirmed} confirmed messages never consumed "
        f"(first: {outcome.lost[:10]}); {outcome.duplicates} duplicates"
    )


def test_killing_the_leader_loses_no_confirmed_message(
    cluster: RabbitmqCluster,
    service: tuple[str, str, str],
    quorum_queue: str,
    record_property: Record,
) -> None:
    """SIGKILL the quorum queue's leader, the node both clients are connected to, mid-stream."""
    vhost = service[0]
    leader = cluster.node(leader_of(cluster, vhost, quorum_queue, cluster[0]))
    survivor = cluster.any_running(but=leader)
    publisher = Publisher(endpoint(cluster, service, leader), quorum_queue)
    consumer = Consumer(endpoint(cluster, service, leader), quorum_queue)
    started(publisher, consumer)

    killed_at = time.monotonic()
    leader.kill()
    more_confirmed(publisher, 200, "200 more confirmed publishes after the leader was killed")
    published_again = resumed(publisher, killed_at)
    wait_for(
        lambda: resumed(consumer, killed_at) is not None,
        TRAFFIC_SECONDS,
        "the consumer receiving again after the kill",
    )
    consumed_again = resumed(consumer, killed_at)
    assert published_again is not None
    assert consumed_again is not None
    new_leader = leader_of(cluster, vhost, quorum_queue, survivor)
    assert new_leader in set(cluster.names) - {leader.nodename}, (
        f"the queue is led by {new_leader or 'nobody'} after {leader.nodename} was killed"
    )
    record_property("measured:node-loss:killed", f"{leader.nodename} (the queue's leader)")
    record_property("measured:node-loss:publish-resumed-s", round(published_again - killed_at, 2))
    record_property("measured:node-loss:consume-resumed-s", round(consumed_again - killed_at, 2))

    # The killed node comes back and rejoins while the traffic goes on.
    cluster.restart(cluster.nodes.index(leader))
    cluster.wait_whole(via=survivor)
    more_confirmed(publisher, 100, "100 more confirmed publishes after the node rejoined")
    check(settle(publisher, consumer, DRAIN_SECONDS), record_property, "node-loss")


def test_a_frozen_node_is_a_paused_minority_and_the_majority_serves(
    cluster: RabbitmqCluster,
    service: tuple[str, str, str],
    quorum_queue: str,
    record_property: Record,
) -> None:
    """SIGSTOP the queue's leader past net_ticktime: the two others carry on without it; once
    it runs again it finds itself in a minority, pauses, and rejoins on its own."""
    vhost = service[0]
    victim = cluster.node(leader_of(cluster, vhost, quorum_queue, cluster[0]))
    majority = cluster.any_running(but=victim)
    publisher = Publisher(endpoint(cluster, service, majority), quorum_queue)
    consumer = Consumer(endpoint(cluster, service, majority), quorum_queue)
    started(publisher, consumer)

    log_mark = len(victim.log_text())
    frozen_at = time.monotonic()
    victim.freeze()
    detected = cluster.wait_seen_down(victim, timeout=NET_TICKTIME * 6)
    record_property("measured:partition:seen-down-s", round(detected, 2))
    seen_at = time.monotonic()
    more_confirmed(publisher, 200, "the majority confirming 200 publishes with a node frozen")
    wait_for(
        lambda: consumer.traffic.first_after(seen_at) is not None,
        TRAFFIC_SECONDS,
        "the majority delivering with a node frozen",
    )
    new_leader = leader_of(cluster, vhost, quorum_queue, majority)
    assert new_leader not in ("", victim.nodename), f"leader {new_leader!r} while frozen"

    # A node cut off by a real partition wakes to a network where the majority is still out of
    # reach. A SIGSTOP'd node wakes to a working one: it can reconnect before its node monitor
    # counts who is left, then never pauses, and both sides keep a recorded partition that
    # pause_minority does not heal (seen in one run of five on a loaded machine). So the
    # majority is frozen while the minority wakes (a few seconds, well under net_ticktime for
    # the two of them), and thawed once the minority has paused.
    others = [node for node in cluster.nodes if node is not victim]
    for node in others:
        node.freeze()
    try:
        victim.thaw()
        wait_for(
            lambda: PAUSED in victim.log_text()[log_mark:],
            NET_TICKTIME * 3,
            f"{victim.nodename} logging that it paused as a minority",
        )
    finally:
        for node in others:
            node.thaw()
    healed = cluster.wait_whole(via=majority)
    cluster.wait_formed()
    record_property("measured:partition:healed-after-thaw-s", round(healed, 2))
    record_property("measured:partition:frozen-s", round(time.monotonic() - frozen_at, 2))
    more_confirmed(publisher, 100, "100 more confirmed publishes after the partition healed")
    check(settle(publisher, consumer, DRAIN_SECONDS), record_property, "partition")


def definitions(cluster: RabbitmqCluster) -> dict[str, Any]:
    """What the broker holds, comparable across a restart (no per-boot fields)."""
    document = cluster.management(cluster.any_running()).get("/api/definitions")
    assert isinstance(document, dict)

    def key(items: list[dict[str, Any]]) -> list[str]:
        return sorted(repr(sorted(item.items())) for item in items)

    return {
        kind: key(document.get(kind) or [])
        for kind in (
            "users",
            "vhosts",
            "permissions",
            "policies",
            "queues",
            "exchanges",
            "bindings",
        )
    }


def publish_numbered(
    cluster: RabbitmqCluster, service: tuple[str, str, str], queue: str, count: int
) -> None:
    publisher = Publisher(endpoint(cluster, service, cluster[0]), queue, interval=0, limit=count)
    publisher.start()
    wait_for(lambda: not publisher.is_alive(), TRAFFIC_SECONDS, f"{count} confirms on {queue}")
    publisher.stop()
    assert publisher.traffic.numbers() == list(range(count))


def drain(cluster: RabbitmqCluster, service: tuple[str, str, str], queue: str) -> list[int]:
    connection = pika.BlockingConnection(endpoint(cluster, service, cluster[0]))
    try:
        channel = connection.channel()
        numbers: list[int] = []
        while True:
            method, _, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return numbers
            numbers.append(int(body))
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("stop_order", "start_order"),
    [((0, 1, 2), (0, 1, 2)), ((2, 0, 1), (1, 0, 2))],
    ids=["first-stopped-starts-first", "mixed"],
)
def test_whole_cluster_restart_in_any_order_keeps_definitions_and_messages(
    cluster: RabbitmqCluster,
    service: tuple[str, str, str],
    quorum_queue: str,
    stop_order: tuple[int, ...],
    start_order: tuple[int, ...],
) -> None:
    """Stop every node, start them in another order: the definitions and every persistent
    message of a quorum queue and of a durable classic queue are all there."""
    classic = "events.fanout"  # the rendered classic queue: it lives on one node
    drain(cluster, service, classic)  # what an earlier test left there
    count = 300
    publish_numbered(cluster, service, quorum_queue, count)
    publish_numbered(cluster, service, classic, count)
    before = definitions(cluster)

    cluster.stop_all(stop_order)
    cluster.start(start_order, gap=2)
    cluster.wait_whole()

    assert definitions(cluster) == before
    for queue in (quorum_queue, classic):
        assert sorted(drain(cluster, service, queue)) == list(range(count)), queue


class LoopbackFleet:
    """The rolling restart's platform for the loopback cluster: the management API through a
    node, and a clean stop and start of a node."""

    def __init__(self, cluster: RabbitmqCluster) -> None:
        self.cluster = cluster

    def api_via(self, node: Node) -> ReadsApi:
        return self.cluster.management(self.cluster.node(node.instance))

    def restart(self, node: Node) -> None:
        server = self.cluster.node(node.instance)
        server.stop()
        server.launch()
        # Returns once the node has booted, like ``systemctl restart`` of a Type=notify unit.
        self.cluster.boot([server])


def test_rolling_restart_under_load_loses_no_confirmed_message(
    cluster: RabbitmqCluster,
    service: tuple[str, str, str],
    quorum_queue: str,
    record_property: Record,
) -> None:
    """``infra.broker.rolling.rolling_restart``, the command's own code, restarts every node
    while a publisher and a consumer keep going."""
    publisher = Publisher(endpoint(cluster, service, cluster[0]), quorum_queue)
    consumer = Consumer(endpoint(cluster, service, cluster[1]), quorum_queue)
    started(publisher, consumer)

    lines: list[str] = []
    nodes = [Node(instance=name, zone="loopback") for name in cluster.names]
    took = rolling_restart(nodes, LoopbackFleet(cluster), timeout=180, report=lines.append)
    assert len(took) == len(nodes), lines
    record_property("measured:rolling:whole-again-s", [round(t, 1) for t in took])
    more_confirmed(publisher, 100, "100 more confirmed publishes after the rolling restart")
    assert len(publisher.traffic.connects) > 1, "the publisher never had to reconnect"
    check(settle(publisher, consumer, DRAIN_SECONDS), record_property, "rolling")


@pytest.mark.parametrize("reached", ["every-node", "one-url"])
def test_a_node_left_without_a_vhost_gets_it_back_from_the_live_apply(
    cluster: RabbitmqCluster,
    service: tuple[str, str, str],
    dev_config: StackConfig,
    dev_rendered: tuple[Path, Credentials],
    reached: str,
) -> None:
    """RabbitMQ 3.10 starts a vhost imported while the cluster forms only on the nodes already
    booted, never later (seen here under load: two nodes answered "Some virtual hosts are
    down" for minutes). The service's clients that land on such a node are refused. The live
    apply that ``pulumi up`` runs for a cluster (``infra.live.provider.deliver``) starts every
    vhost on every running node, whether it reaches the cluster through every node's API (dev)
    or through one URL (prod's tunnel to the first node that answers)."""
    vhost, user, _ = service
    lonely = cluster[1]
    lonely.stop_vhost(vhost)
    only_that_node = endpoint(cluster, service, lonely)[:1]
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(only_that_node).close()
    _, credentials = dev_rendered
    urls = [node.management_url for node in cluster.nodes]
    where = {"management_urls": urls} if reached == "every-node" else {"management_url": urls[0]}
    deliver(
        {
            "kind": KIND_BROKER,
            **where,
            "admin_user": cluster.admin_user,
            "admin_password": cluster.admin_password,
            "definitions": mq_render.definitions(dev_config, credentials, len(cluster.nodes)),
        },
        None,
    )
    assert lonely.api("GET", "/api/health/checks/virtual-hosts") == {"status": "ok"}
    connection = pika.BlockingConnection(only_that_node)
    try:
        assert connection.is_open, f"{user} cannot open {vhost} on {lonely.nodename}"
    finally:
        connection.close()
