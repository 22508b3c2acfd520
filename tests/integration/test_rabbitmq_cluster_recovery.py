"""A cluster's definitions: backed up through any live node, restored into a new cluster.

Real nodes (``tests.servers.rabbitmq.RabbitmqCluster``: three Debian rabbitmq-server nodes on
loopback, formed by themselves from the rendered cluster config). An application declares its
own quorum queue, exchange and binding through node 1; node 1 is then killed, and ``backup``
exports the cluster's definitions through node 2 (what the dev backup container does through
the name every node answers to, and prod's through the first node whose tunnel answers). The
disaster takes the whole cluster; ``rebuild``'s own restore function imports the backup into a
new cluster through its node 3, and the queue is back with a member on every node.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pika
import pytest

from infra.backup.dump import Target
from infra.backup.recovery import restore_rabbitmq
from infra.backup.storage import FileBucket
from infra.broker.management import LoginRefusedError, any_live_node
from infra.config import StackConfig
from infra.credentials import Credentials
from infra.errors import ServerError
from infra.live.push import push_broker
from tests.integration.backup_helpers import cli
from tests.servers.rabbitmq import RabbitmqCluster, RabbitmqServer

APP = "users"


@pytest.fixture(scope="module")
def cluster_config(dev_config: StackConfig) -> StackConfig:
    return replace(dev_config, rabbitmq=replace(dev_config.rabbitmq, nodes=3))


def connect(node: RabbitmqServer, credentials: Credentials) -> pika.BlockingConnection:
    return pika.BlockingConnection(
        pika.ConnectionParameters(
            host="127.0.0.1",
            port=node.amqp_port,
            virtual_host=APP,
            credentials=pika.PlainCredentials(APP, credentials.for_service(APP).rabbitmq),
            connection_attempts=1,
            socket_timeout=10,
        )
    )


@pytest.fixture(scope="module")
def first(
    cluster_config: StackConfig, dev_rendered: tuple[Path, Credentials]
) -> Iterator[RabbitmqCluster]:
    """The cluster that is lost: running until the module is done."""
    cluster = RabbitmqCluster(cluster_config, dev_rendered[1])
    try:
        yield cluster.start()
    finally:
        cluster.cleanup()


@pytest.fixture(scope="module")
def backed_up(
    first: RabbitmqCluster,
    common: list[str],
    dev_rendered: tuple[Path, Credentials],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The first cluster's definitions, backed up through node 2 after node 1 was killed."""
    _, credentials = dev_rendered
    with connect(first[0], credentials) as connection:
        channel = connection.channel()
        channel.exchange_declare("dr.orders", exchange_type="direct", durable=True)
        channel.queue_declare("dr.invoices", durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind("dr.invoices", "dr.orders", routing_key="invoice")
    first[0].kill()
    bucket = tmp_path_factory.mktemp("cluster-bucket")
    backup = ["--bucket", f"file://{bucket}", "--management-url", first[1].management_url]
    code, out, err = cli("backup", *common, *backup)
    assert code == 0, err + out
    code, out, err = cli("verify", *common, "--bucket", f"file://{bucket}")
    assert code == 0, err + out
    return bucket


def test_the_tooling_reaches_the_cluster_through_the_first_node_that_answers(
    first: RabbitmqCluster, backed_up: Path, dev_rendered: tuple[Path, Credentials]
) -> None:
    """What a cluster's live apply does before importing: node 1 is dead (killed above)."""
    _, credentials = dev_rendered
    urls = [node.management_url for node in first.nodes]
    api = any_live_node(urls, first.admin_user, credentials.rabbitmq_admin)
    assert api.base_url == urls[1]
    assert api.get(f"/api/vhosts/{APP}")["name"] == APP
    # A refused login is an answer, not a dead node: said at once, not hidden behind node 3.
    with pytest.raises(LoginRefusedError):
        any_live_node(urls, first.admin_user, "not-the-password")
    with pytest.raises(ServerError, match="no RabbitMQ node answers") as nobody:
        any_live_node(urls[:1], first.admin_user, credentials.rabbitmq_admin)
    assert urls[0] in str(nobody.value)


def test_a_new_cluster_gets_the_backed_up_definitions_with_a_member_on_every_node(
    first: RabbitmqCluster,
    backed_up: Path,
    cluster_config: StackConfig,
    dev_rendered: tuple[Path, Credentials],
) -> None:
    _, credentials = dev_rendered
    first.cleanup()  # the disaster: every node and its data gone
    second = RabbitmqCluster(cluster_config, credentials)
    try:
        second.start()
        assert second[2].api("GET", f"/api/queues/{APP}/dr.invoices") is None  # a new cluster
        report = restore_rabbitmq(
            Target(FileBucket(backed_up), None),
            second[2].management_url,
            cluster_config,
            credentials,
            started=time.monotonic(),
        )
        assert report["ok"], report
        assert report["vhosts"][APP]["queues"] == 1, report
        queue = second[0].api("GET", f"/api/queues/{APP}/dr.invoices")
        assert queue["type"] == "quorum"
        assert sorted(queue["members"]) == sorted(second.names), "a node lacks a member"
        with connect(second[1], credentials) as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish("dr.orders", "invoice", b"after the rebuild", mandatory=True)
            deadline = time.monotonic() + 10
            body = None
            while body is None and time.monotonic() < deadline:
                _, _, body = channel.basic_get("dr.invoices", auto_ack=True)
            assert body == b"after the rebuild"

        # `db apply/rotate --management-url` push the services' definitions to the cluster
        # through any node (3.10 accepts a quorum queue's group size differing from the
        # declared one; the push sends the cluster's size all the same).
        pushed = push_broker(
            second[1].management_url,
            credentials.rabbitmq_admin,
            cluster_config,
            credentials,
            [APP],
        )
        assert pushed == [APP]
    finally:
        second.cleanup()
