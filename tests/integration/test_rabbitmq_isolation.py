"""RabbitMQ started from the rendered dev files: one vhost and one user per service, no guest.

Every claim is checked through real AMQP connections (pika) or the broker's own management API,
never by reading the rendered definitions back.
"""

from __future__ import annotations

import itertools
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from infra import naming
from infra.config import StackConfig, load_stack
from infra.config.model import QueueSpec
from infra.credentials import Credentials
from tests.servers.process import wait_until
from tests.servers.rabbitmq import RabbitmqServer

SERVICES = [s.name for s in load_stack("dev").services]
QUEUES = [(s.name, q) for s in load_stack("dev").services for q in s.queues]
REFUSED = (pika.exceptions.ProbableAccessDeniedError, pika.exceptions.ConnectionClosedByBroker)


def connect(
    server: RabbitmqServer, user: str, password: str, vhost: str
) -> pika.BlockingConnection:
    parameters = pika.ConnectionParameters(
        host="127.0.0.1",
        port=server.amqp_port,
        virtual_host=vhost,
        credentials=pika.PlainCredentials(user, password),
        connection_attempts=1,
        blocked_connection_timeout=10,
        socket_timeout=10,
    )
    return pika.BlockingConnection(parameters)


def service_connection(
    server: RabbitmqServer, credentials: Credentials, service: str, vhost: str | None = None
) -> pika.BlockingConnection:
    return connect(
        server,
        naming.rabbitmq_user(service),
        credentials.for_service(service).rabbitmq,
        vhost if vhost is not None else naming.rabbitmq_vhost(service),
    )


@pytest.fixture
def service_channel(
    rabbitmq_server: RabbitmqServer,
    dev_rendered: tuple[Path, Credentials],
    request: pytest.FixtureRequest,
) -> Iterator[tuple[str, BlockingChannel]]:
    """(service, a channel logged in as that service on its own vhost)."""
    service: str = request.param
    connection = service_connection(rabbitmq_server, dev_rendered[1], service)
    yield service, connection.channel()
    connection.close()


def round_trip(channel: BlockingChannel, exchange: str, queue: str, routing_key: str) -> bytes:
    """Publish one persistent message through ``exchange`` and consume it from ``queue``."""
    body = uuid.uuid4().hex.encode()
    channel.confirm_delivery()
    channel.basic_publish(
        exchange,
        routing_key,
        body,
        pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
        mandatory=True,
    )
    for method, _properties, received in channel.consume(queue, inactivity_timeout=10):
        assert method is not None, f"nothing arrived on {queue!r}"
        channel.basic_ack(method.delivery_tag)
        if received == body:
            break
    channel.cancel()
    return body


@pytest.mark.parametrize("service_channel", SERVICES, indirect=True)
def test_service_declares_publishes_and_consumes_in_its_own_vhost(
    service_channel: tuple[str, BlockingChannel],
) -> None:
    service, channel = service_channel
    queue = f"{service}.isolation-test"
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(queue, service, routing_key=queue)
    round_trip(channel, service, queue, queue)
    channel.queue_delete(queue)


@pytest.mark.parametrize(("service", "other"), list(itertools.permutations(SERVICES, 2)))
def test_service_is_refused_on_every_other_vhost(
    rabbitmq_server: RabbitmqServer,
    dev_rendered: tuple[Path, Credentials],
    service: str,
    other: str,
) -> None:
    with pytest.raises(REFUSED) as refused:
        service_connection(rabbitmq_server, dev_rendered[1], service, vhost=other).close()
    assert "refused" in str(refused.value).lower() or "530" in str(refused.value)


@pytest.mark.parametrize("service", SERVICES)
def test_service_is_refused_on_the_default_vhost_and_with_a_wrong_password(
    rabbitmq_server: RabbitmqServer, dev_rendered: tuple[Path, Credentials], service: str
) -> None:
    with pytest.raises(REFUSED):
        service_connection(rabbitmq_server, dev_rendered[1], service, vhost="/").close()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect(rabbitmq_server, naming.rabbitmq_user(service), "wrong", service).close()


@pytest.mark.parametrize("vhost", ["/", *SERVICES])
def test_guest_is_refused(rabbitmq_server: RabbitmqServer, vhost: str) -> None:
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect(rabbitmq_server, "guest", "guest", vhost).close()
    assert rabbitmq_server.api("GET", "/api/users/guest") is None


def test_only_the_admin_is_an_administrator(
    rabbitmq_server: RabbitmqServer, dev_config: StackConfig
) -> None:
    users = {u["name"]: u["tags"] for u in rabbitmq_server.api("GET", "/api/users")}
    assert set(users) == {dev_config.rabbitmq.admin_user, *SERVICES}
    administrators = [name for name, tags in users.items() if "administrator" in tags]
    assert administrators == [dev_config.rabbitmq.admin_user]
    for service in SERVICES:
        permissions = rabbitmq_server.api("GET", f"/api/users/{service}/permissions")
        assert [p["vhost"] for p in permissions] == [service], service


def test_vhosts_are_exactly_the_services(rabbitmq_server: RabbitmqServer) -> None:
    vhosts = {v["name"] for v in rabbitmq_server.api("GET", "/api/vhosts")}
    assert vhosts == set(SERVICES)


@pytest.mark.parametrize(("service", "queue"), QUEUES, ids=[q.name for _, q in QUEUES])
def test_configured_queues_exist_durable_with_their_type_and_dead_letter_exchange(
    rabbitmq_server: RabbitmqServer, service: str, queue: QueueSpec
) -> None:
    found = rabbitmq_server.api("GET", f"/api/queues/{service}/{queue.name}")
    assert found is not None, f"queue {queue.name!r} missing in vhost {service!r}"
    assert found["durable"] is True
    assert found["auto_delete"] is False
    assert found["type"] == queue.type
    assert found["arguments"]["x-dead-letter-exchange"] == naming.dead_letter_exchange(service)
    bindings = rabbitmq_server.api("GET", f"/api/queues/{service}/{queue.name}/bindings")
    keys = {(b["source"], b["routing_key"]) for b in bindings}
    assert (service, queue.routing_key or queue.name) in keys


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_its_topic_exchange_and_dead_letter_exchange(
    rabbitmq_server: RabbitmqServer, service: str
) -> None:
    topic = rabbitmq_server.api("GET", f"/api/exchanges/{service}/{service}")
    assert (topic["type"], topic["durable"]) == ("topic", True)
    dlx_name = naming.dead_letter_exchange(service)
    dlx = rabbitmq_server.api("GET", f"/api/exchanges/{service}/{dlx_name}")
    assert dlx["durable"] is True
    dlq_name = naming.dead_letter_queue(service)
    dlq = rabbitmq_server.api("GET", f"/api/queues/{service}/{dlq_name}")
    assert dlq is not None, f"dead-letter queue {dlq_name!r} missing"
    assert dlq["durable"] is True
    bindings = rabbitmq_server.api("GET", f"/api/queues/{service}/{dlq_name}/bindings")
    assert dlx_name in {b["source"] for b in bindings}


def test_ttl_and_max_length_policies_are_in_force(
    rabbitmq_server: RabbitmqServer, dev_config: StackConfig
) -> None:
    for spec in dev_config.services:
        policies = rabbitmq_server.api("GET", f"/api/policies/{spec.name}") or []
        for queue in spec.queues:
            expected: dict[str, int] = {}
            if queue.message_ttl_ms is not None:
                expected["message-ttl"] = queue.message_ttl_ms
            if queue.max_length is not None:
                expected["max-length"] = queue.max_length
            # RabbitMQ matches a policy's pattern as a regular expression against queue names.
            matching = [
                p["definition"]
                for p in policies
                if p["apply-to"] in ("queues", "all") and re.search(p["pattern"], queue.name)
            ]
            if expected:
                assert matching, f"no policy for {spec.name}/{queue.name}"
                assert expected.items() <= matching[0].items()
            else:
                assert not matching


@pytest.mark.parametrize("service_channel", ["users"], indirect=True)
def test_rejected_message_is_dead_lettered(service_channel: tuple[str, BlockingChannel]) -> None:
    """The service's DLX and dead-letter queue catch what a consumer rejects."""
    _, channel = service_channel
    body = uuid.uuid4().hex.encode()
    channel.confirm_delivery()
    channel.basic_publish(
        "users",
        "users.created",
        body,
        pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
    )
    for method, _properties, received in channel.consume("users.created", inactivity_timeout=10):
        assert method is not None
        channel.basic_reject(method.delivery_tag, requeue=False)
        if received == body:
            break
    channel.cancel()
    for method, _properties, received in channel.consume(
        naming.dead_letter_queue("users"), inactivity_timeout=10
    ):
        assert method is not None, "rejected message did not reach the dead-letter queue"
        channel.basic_ack(method.delivery_tag)
        if received == body:
            break
    channel.cancel()


def test_no_plaintext_password_in_definitions(dev_rendered: tuple[Path, Credentials]) -> None:
    rendered, credentials = dev_rendered
    text = (rendered / "rabbitmq" / "definitions.json").read_text()
    passwords = [credentials.rabbitmq_admin] + [
        credentials.for_service(s).rabbitmq for s in SERVICES
    ]
    for password in passwords:
        assert password not in text


def node_stats(server: RabbitmqServer) -> dict[str, Any]:
    """The node's entry in the management API, once its first stats are in (every 5 s)."""
    found: dict[str, Any] = {}

    def collected() -> bool:
        found.update(server.api("GET", "/api/nodes")[0])
        return "disk_free_limit" in found

    wait_until(collected, 30, "RabbitMQ node stats")
    return found


def test_watermarks_and_plugins_from_the_rendered_config(
    rabbitmq_server: RabbitmqServer, dev_config: StackConfig
) -> None:
    node = node_stats(rabbitmq_server)
    # RabbitMQ reads "MB" as 10^6 bytes, and the relative watermark against the RAM it sees.
    assert node["disk_free_limit"] == dev_config.rabbitmq.disk_free_limit_mb * 1_000_000
    meminfo = Path("/proc/meminfo").read_text().split()
    total = int(meminfo[meminfo.index("MemTotal:") + 1]) * 1024
    assert node["mem_limit"] == pytest.approx(
        total * dev_config.rabbitmq.memory_high_watermark, rel=0.01
    )
    assert {"rabbitmq_management", "rabbitmq_prometheus"} <= set(node["enabled_plugins"])
    url = f"http://127.0.0.1:{rabbitmq_server.prometheus_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert b"rabbitmq_" in response.read()


# Another address of this machine than the one the metrics listener is bound to: where a
# service on the docker network (or the VPC) would knock, as opposed to the broker's own loopback.
SERVICE_SIDE = "127.0.0.2"
METRICS_PATHS = (
    "/metrics",
    "/metrics/per-object",
    "/metrics/detailed?family=queue_coarse_metrics&family=queue_metrics",
)


@pytest.mark.parametrize("path", METRICS_PATHS)
def test_metrics_are_not_served_where_services_connect(
    rabbitmq_server: RabbitmqServer, path: str
) -> None:
    """rabbitmq_prometheus has no login in 3.10, and its per-object and detailed endpoints list
    every vhost's queues and their depths: it listens on the broker's loopback only."""
    url = f"http://{SERVICE_SIDE}:{rabbitmq_server.prometheus_port}{path}"
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        urllib.request.urlopen(url, timeout=10)


def test_the_metrics_a_local_agent_reads_name_no_vhost_or_queue(
    rabbitmq_server: RabbitmqServer,
) -> None:
    url = f"http://127.0.0.1:{rabbitmq_server.prometheus_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    assert "rabbitmq_queue_messages" in text, "aggregated queue metrics are still there"
    assert 'vhost="' not in text
    assert 'queue="' not in text
    for _service, queue in QUEUES:
        assert queue.name not in text


def test_persistent_message_survives_a_broker_restart(
    rabbitmq_server: RabbitmqServer, dev_rendered: tuple[Path, Credentials]
) -> None:
    """Runs last in this module: one restart, one quorum and one classic queue."""
    credentials = dev_rendered[1]
    sent: dict[tuple[str, str], bytes] = {}
    targets = [("users", "users.created", "users.created"), ("events", "events.fanout", "events.x")]
    for service, queue, routing_key in targets:
        connection = service_connection(rabbitmq_server, credentials, service)
        channel = connection.channel()
        channel.confirm_delivery()
        body = f"before-restart {uuid.uuid4().hex}".encode()
        channel.basic_publish(
            service,
            routing_key,
            body,
            pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
            mandatory=True,
        )
        sent[(service, queue)] = body
        connection.close()

    rabbitmq_server.stop()
    rabbitmq_server.start()

    for (service, queue), body in sent.items():
        connection = service_connection(rabbitmq_server, credentials, service)
        channel = connection.channel()
        received = []
        while True:
            method, _properties, message = channel.basic_get(queue, auto_ack=True)
            if method is None:
                break
            received.append(message)
        connection.close()
        assert body in received, f"{service}/{queue} lost its message across the restart"
