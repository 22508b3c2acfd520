"""The RabbitMQ test harness leaves nothing behind: the only epmd is the one it starts.

A node that boots while the harness's epmd is not listening (it was stopped first, or the
node was relaunched in a cleanup race) must not start an epmd of its own: Erlang's default is
``epmd -daemon``, which detaches from the node's process group, listens on every interface
and outlives the node and the test run.
"""

from __future__ import annotations

from pathlib import Path

from infra.config import StackConfig
from infra.credentials import Credentials
from tests.servers.process import port_open, wait_until
from tests.servers.rabbitmq import RabbitmqServer


def test_a_node_never_starts_its_own_epmd(
    dev_config: StackConfig, dev_rendered: tuple[Path, Credentials]
) -> None:
    rendered, credentials = dev_rendered
    node = RabbitmqServer(
        rendered, dev_config.rabbitmq.admin_user, credentials.rabbitmq_admin, own_epmd=False
    )
    try:
        node.launch()  # nothing listens on node.epmd_port
        # Either the node gives up (no epmd to register with) or a daemon of its own answers.
        wait_until(
            lambda: port_open(node.epmd_port) or not node.running,
            120,
            f"{node.nodename} to exit or to start an epmd",
        )
    finally:
        node.cleanup()
    assert not port_open(node.epmd_port), (
        f"an epmd the harness did not start listens on port {node.epmd_port} after cleanup"
    )
