"""A dev stack with ``rabbitmq.nodes: 3``: three containers, one cluster, proven by killing one.

Driven like every e2e stack (``make preview``, ``make up``, the env files ``make up`` writes),
with the broker checked through its own management API and real AMQP clients:

- ``make up`` brings up three RabbitMQ containers that form one cluster (every node's API lists
  all three running) and the service's quorum queue has a member on every node;
- a publisher with confirms, sending numbered persistent messages through ``AMQP_URLS``, goes
  on after ``docker kill`` of the queue's leader: every confirmed message is consumed
  afterwards (0 lost; duplicates and the time to resume reported);
- the stack's scheduled definitions backup is still made and verified while the node is gone;
- adding a service gives it its vhost, user and queue on the running cluster, and restarts no
  node (every container's start time is what it was);
- after a disaster (every container and volume gone), ``make rebuild`` brings up a new cluster
  and restores into it what the application had declared, each quorum queue with a member on
  every new node.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pika
import pika.exceptions
import pytest

from infra.config.model import DEFAULT_ADMIN
from infra.credentials import credentials_from_json
from tests.e2e.conftest import _remove_everything
from tests.e2e.stack import PREFIX, E2eStack, docker, remove_leftovers

ADMIN = DEFAULT_ADMIN  # the e2e stack file keeps the default admin name
NODES = 3
NODE_HOSTS = [f"rabbitmq-{i}" for i in range(1, NODES + 1)]
CONTAINERS = [f"{PREFIX}-{host}" for host in NODE_HOSTS]
# Every container and data volume of the stack: what a disaster takes.
EVERY_CONTAINER = [
    f"{PREFIX}-{name}" for name in ("postgres", "postgres-router", "redis", *NODE_HOSTS, "backup")
]
EVERY_VOLUME = [f"{PREFIX}-{name}-data" for name in ("postgres", "redis", *NODE_HOSTS)]
NODE_NAMES = [f"rabbit@{host}" for host in NODE_HOSTS]
QUEUE = "orders.placed"
MESSAGES = 600
KILL_AT = 200


@pytest.fixture(scope="module")
def stack(
    e2e_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[E2eStack]:
    """The e2e stack with a three-node broker; destroyed afterwards like the lifecycle's."""
    remove_leftovers()
    e2e = E2eStack(tmp_path_factory.mktemp("e2e-cluster"), rabbitmq_nodes=NODES)
    e2e.services = e2e.services[:1]  # one service (orders, its quorum queue) is all this needs
    e2e.write_stack_file()
    yield e2e
    _remove_everything(e2e)


_admin_passwords: dict[int, str] = {}


def management(stack: E2eStack, node: int, path: str) -> Any:
    """GET ``path`` from node ``node``'s (1-based) management API, as the admin (its password
    from the stack's outputs, read once)."""
    if id(stack) not in _admin_passwords:
        credentials = credentials_from_json(stack.outputs()["credentials"])
        _admin_passwords[id(stack)] = credentials.rabbitmq_admin
    return _get(stack.ports["management"] + node - 1, _admin_passwords[id(stack)], path)


def _get(port: int, password: str, path: str) -> Any:
    token = base64.b64encode(f"{ADMIN}:{password}".encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Basic {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def running_nodes(stack: E2eStack, node: int) -> list[str]:
    return sorted(n["name"] for n in management(stack, node, "/api/nodes") if n.get("running"))


def wait_for(check: Any, timeout: float, what: str) -> float:
    """Poll ``check`` (errors count as not yet) until true; the seconds it took."""
    start = time.monotonic()
    last: object = None
    while time.monotonic() - start < timeout:
        try:
            if check():
                return time.monotonic() - start
        except Exception as error:  # a node still booting: keep polling
            last = error
        time.sleep(1)
    raise AssertionError(f"{what} not within {timeout:.0f} s (last error: {last})")


def started_at(names: list[str]) -> dict[str, str]:
    return {name: docker("inspect", "--format", "{{.State.StartedAt}}", name) for name in names}


class Publisher:
    """A service's publisher as the README tells one to be: persistent messages, publisher
    confirms, and on a lost connection the next URL of ``AMQP_URLS`` (the unconfirmed message
    is sent again: at least once)."""

    def __init__(self, urls: list[str], exchange: str, routing_key: str) -> None:
        self.urls = urls
        self.exchange = exchange
        self.routing_key = routing_key
        self.confirmed: list[int] = []
        self.reconnects = 0
        self.resumed_at: float | None = None  # the first confirm after a failed publish
        self._next = 0
        self._channel: Any = None
        self._connection: pika.BlockingConnection | None = None

    def _connect(self, deadline: float) -> None:
        while True:
            url = self.urls[self._next % len(self.urls)]
            self._next += 1
            try:
                parameters = pika.URLParameters(url)
                parameters.connection_attempts = 1
                parameters.socket_timeout = 5
                parameters.blocked_connection_timeout = 30
                self._connection = pika.BlockingConnection(parameters)
                self._channel = self._connection.channel()
                self._channel.confirm_delivery()
                return
            except pika.exceptions.AMQPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def publish(self, number: int, deadline: float) -> None:
        """Until the broker confirms message ``number``."""
        failed = False
        while True:
            try:
                if self._channel is None:
                    self._connect(deadline)
                self._channel.basic_publish(
                    self.exchange,
                    self.routing_key,
                    str(number).encode(),
                    pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
                    mandatory=True,
                )
            except (pika.exceptions.AMQPError, OSError):
                if time.monotonic() > deadline:
                    raise
                failed = True
                self.reconnects += 1
                self._channel = None
                continue
            self.confirmed.append(number)
            if failed and self.resumed_at is None:
                self.resumed_at = time.monotonic()
            return

    def close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            self._connection.close()


def consume_all(urls: list[str], queue: str, expected: int, timeout: float) -> list[int]:
    """Every message left in ``queue`` (acknowledged), through the first node that answers."""
    received: list[int] = []
    deadline = time.monotonic() + timeout
    for url in urls:
        try:
            connection = pika.BlockingConnection(pika.URLParameters(url))
        except pika.exceptions.AMQPError:
            continue
        with connection:
            channel = connection.channel()
            while len(set(received)) < expected and time.monotonic() < deadline:
                method, _props, body = channel.basic_get(queue)
                if method is None:
                    time.sleep(0.2)
                    continue
                received.append(int(body))
                channel.basic_ack(method.delivery_tag)
            # Whatever else is there (duplicates) without waiting.
            while True:
                method, _props, body = channel.basic_get(queue)
                if method is None:
                    return received
                received.append(int(body))
                channel.basic_ack(method.delivery_tag)
    raise AssertionError(f"no node of {urls} accepted a connection")


def test_a_three_node_dev_cluster_survives_a_node_loss_and_takes_a_new_service_live(
    stack: E2eStack,
) -> None:
    began = time.monotonic()
    stack.make("up")
    up_seconds = time.monotonic() - began

    # One cluster: each node's own API sees all three running, no partition.
    for node in range(1, NODES + 1):
        assert running_nodes(stack, node) == NODE_NAMES, f"node {node} sees another cluster"
    vhost = quote("orders", safe="")
    queue = management(stack, 1, f"/api/queues/{vhost}/{QUEUE}")
    assert queue["type"] == "quorum"
    assert sorted(queue["members"]) == NODE_NAMES, "the quorum queue lacks a member on a node"

    env = stack.env_files()["orders"]
    urls = env["AMQP_URLS"].split(",")
    assert len(urls) == NODES
    assert urls[0] == env["AMQP_URL"]
    assert [pika.URLParameters(u).port for u in urls] == [stack.ports["amqp"] + i for i in range(3)]

    # The node loss: the queue's leader is killed mid-stream, with the publisher on it (its
    # URL first), so the publisher loses its connection as well as the queue its leader.
    leader = queue["leader"]
    victim_index = NODE_NAMES.index(leader) if leader in NODE_NAMES else 0
    victim = CONTAINERS[victim_index]
    publisher = Publisher(urls[victim_index:] + urls[:victim_index], "orders", QUEUE)
    deadline = time.monotonic() + 120
    killed_at, killed_on = 0.0, datetime.now(UTC)
    for number in range(MESSAGES):
        if number == KILL_AT:
            killed_at, killed_on = time.monotonic(), datetime.now(UTC)
            docker("kill", victim)
        publisher.publish(number, deadline)
    publisher.close()
    survivors = [u for u, c in zip(urls, CONTAINERS, strict=True) if c != victim]
    received = consume_all(survivors, QUEUE, len(set(publisher.confirmed)), timeout=60)
    lost = sorted(set(publisher.confirmed) - set(received))
    duplicates = len(received) - len(set(received))
    print(
        f"make up {up_seconds:.0f} s; killed {victim} (leader {leader}) at message {KILL_AT}: "
        f"{len(publisher.confirmed)} confirmed, {len(lost)} lost, {duplicates} duplicates, "
        f"{publisher.reconnects} failed publishes, the first confirm on another node "
        f"{(publisher.resumed_at or killed_at) - killed_at:.2f} s after the kill"
    )
    assert not lost, f"confirmed messages lost: {lost[:20]}"
    assert publisher.reconnects > 0, "the publisher never noticed the kill: not a test of it"

    # The stack's scheduled definitions backup goes on with the node gone: the backup container
    # reaches the broker as `rabbitmq`, which every live node answers to.
    stack.wait_for_verified_backups(killed_on, {("rabbitmq", "server")}, timeout_s=180)
    assert docker("inspect", "--format", "{{.State.Running}}", victim) == "false"

    # The killed node comes back and rejoins by itself.
    docker("start", victim)
    wait_for(lambda: running_nodes(stack, 1) == NODE_NAMES, 240, f"{victim} to rejoin")

    # A new service goes live on the running cluster: no node restarts.
    before = started_at(CONTAINERS)
    stack.services.append(
        {"name": "shipping", "queues": [{"name": "shipping.requested", "type": "quorum"}]}
    )
    stack.write_stack_file()
    planned = stack.up()
    # (The backup container follows the checkout's source, not the service list.)
    servers = [f"Container::{name}" for name in ("postgres", "redis", *NODE_HOSTS)]
    touched = [urn for urn, op in planned.items() if urn.endswith(tuple(servers)) and op != "same"]
    assert not touched, f"adding a service touches server containers: {touched}"
    assert started_at(CONTAINERS) == before, "a node restarted for a new service"
    new = management(stack, 2, f"/api/queues/{quote('shipping', safe='')}/shipping.requested")
    assert sorted(new["members"]) == NODE_NAMES
    shipping = stack.env_files()["shipping"]
    for url in shipping["AMQP_URLS"].split(","):
        pika.BlockingConnection(pika.URLParameters(url)).close()  # every node lets it in
    stack.preview_expecting_no_changes()


def test_make_rebuild_brings_a_new_cluster_back_with_what_the_application_declared(
    stack: E2eStack,
) -> None:
    """After the node-loss test: the application declares its own exchange and quorum queue, the
    scheduled backup exports the definitions, then every container and volume is gone, and
    ``make rebuild`` (as a user runs it) brings up three new nodes and restores them."""
    env = stack.env_files()["orders"]
    urls = env["AMQP_URLS"].split(",")
    declared_at = datetime.now(UTC)
    connection = pika.BlockingConnection([pika.URLParameters(url) for url in urls])
    try:
        channel = connection.channel()
        channel.exchange_declare("app.x", exchange_type="direct", durable=True)
        channel.queue_declare("app.q", durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind("app.q", "app.x", routing_key="k")
    finally:
        connection.close()
    # Every part the rebuild restores: a service whose only backup is still being verified
    # would be reported not restored (shipping joined a few minutes ago).
    parts = {("rabbitmq", "server"), ("postgres", "orders"), ("postgres", "shipping")}
    stack.wait_for_verified_backups(declared_at, parts, timeout_s=180)

    for name in EVERY_CONTAINER:
        docker("rm", "-f", name)
    for volume in EVERY_VOLUME:
        docker("volume", "rm", volume)

    completed = stack.make("rebuild")
    report = json.loads(completed.stdout[completed.stdout.index("\n{") :])
    assert report["rabbitmq"]["ok"], report["rabbitmq"]
    assert report["rabbitmq"]["vhosts"]["orders"]["queues"] >= 1, report["rabbitmq"]
    wait_for(lambda: running_nodes(stack, 1) == NODE_NAMES, 240, "the new cluster to form")
    vhost = quote("orders", safe="")
    restored = management(stack, 1, f"/api/queues/{vhost}/app.q")
    assert restored["type"] == "quorum"
    assert sorted(restored["members"]) == NODE_NAMES, "a new node lacks the queue's member"
    connection = pika.BlockingConnection([pika.URLParameters(url) for url in urls])
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("app.x", "k", b"after the rebuild", mandatory=True)
        deadline = time.monotonic() + 10
        while (got := channel.basic_get("app.q", auto_ack=True))[2] is None:
            assert time.monotonic() < deadline, "the restored binding does not route"
            time.sleep(0.2)
        assert got[2] == b"after the rebuild"
    finally:
        connection.close()
