"""A rolling restart of a RabbitMQ cluster: one node at a time, never leaving a quorum queue
short of its majority.

Before each node stops, and again after it is back, the restart waits until the cluster is
whole (``infra.broker.cluster.wait_for_full_membership``: every node running, no partition,
every quorum queue led with all its members online), as seen through the management API of a
*different* node, so the watcher never loses the node it watches through. The order of
operations is a pure function of the node list and a ``Fleet`` (how to reach one node's
management API, how to restart one node), so it is unit-tested without a cloud; the prod fleet
is ``GcloudFleet``: IAP tunnels to the management port and ``gcloud compute ssh`` through IAP,
the same path the deploy's broker tunnel takes.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from infra.broker.cluster import ReadsApi, wait_for_full_membership
from infra.broker.management import ManagementApi
from infra.errors import ServerError, UsageError
from infra.render.endpoints import MANAGEMENT_PORT

# Where the restart's own IAP tunnels listen: one local port per node, from this one.
TUNNEL_BASE_PORT = 15690
TUNNEL_START_SECONDS = 60
RESTART_SECONDS = 600
RESTART_COMMAND = "sudo systemctl restart rabbitmq-server"


@dataclass(frozen=True)
class Node:
    """One broker VM, as ``pulumi stack output rabbitmq_nodes`` lists it."""

    instance: str
    zone: str


def parse_nodes(document: Any) -> list[Node]:
    """The ``rabbitmq_nodes`` output ([{instance, zone}, ...]); UsageError names what is wrong."""
    if not isinstance(document, list) or not document:
        raise UsageError(
            "expected the rabbitmq_nodes stack output, a JSON list of {instance, zone} "
            "(pipe `pulumi stack output rabbitmq_nodes --json --stack STACK`)"
        )
    nodes = []
    for entry in document:
        instance = entry.get("instance") if isinstance(entry, dict) else None
        zone = entry.get("zone") if isinstance(entry, dict) else None
        if not isinstance(instance, str) or not isinstance(zone, str) or not instance or not zone:
            raise UsageError(f"rabbitmq_nodes: {entry!r} is not {{instance, zone}}")
        nodes.append(Node(instance=instance, zone=zone))
    if len({n.instance for n in nodes}) != len(nodes):
        raise UsageError("rabbitmq_nodes lists a node twice")
    return nodes


class Fleet(Protocol):
    """What a rolling restart needs of the platform."""

    def api_via(self, node: Node) -> ReadsApi:
        """The cluster's management API, reached through ``node``."""
        ...

    def restart(self, node: Node) -> None:
        """Restart the broker on ``node``; return once the restart command returned."""
        ...


Wait = Callable[[ReadsApi, float], float]


def rolling_restart(
    nodes: Sequence[Node],
    fleet: Fleet,
    timeout: float,
    wait: Wait = wait_for_full_membership,
    report: Callable[[str], None] = print,
) -> list[float]:
    """Restart ``nodes`` in order, one at a time; the seconds each took to be whole again.

    A cluster that is not whole before a node stops, or not whole again ``timeout`` seconds
    after, stops the restart there (ServerError naming the node): the next node is never
    stopped while a quorum queue is short of a member.
    """
    if len(nodes) < 3:
        raise UsageError(
            f"a rolling restart needs a cluster (rabbitmq.nodes 3 or 5), not {len(nodes)} "
            "node(s): a single broker cannot restart without downtime"
        )
    took = []
    for index, node in enumerate(nodes):
        watcher = nodes[(index + 1) % len(nodes)]
        api = fleet.api_via(watcher)
        try:
            wait(api, timeout)
        except ServerError as error:
            raise ServerError(f"not restarting {node.instance}: {error}") from error
        report(f"restarting {node.instance} ({index + 1}/{len(nodes)})")
        fleet.restart(node)
        try:
            seconds = wait(api, timeout)
        except ServerError as error:
            raise ServerError(
                f"{node.instance} restarted but the cluster is not whole again: {error}; "
                "stopping here (the remaining nodes were not touched)"
            ) from error
        report(f"{node.instance}: cluster whole again after {seconds:.1f} s")
        took.append(seconds)
    return took


@dataclass
class GcloudFleet:
    """Prod's broker VMs through Identity-Aware Proxy, with the operator's gcloud login.

    One IAP tunnel per node to its management port (started on first use, stopped by
    ``close``), and the restart itself over ``gcloud compute ssh --tunnel-through-iap``.
    """

    nodes: Sequence[Node]
    admin_user: str
    admin_password: str
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
    _tunnels: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def _gcloud(self) -> str:
        found = shutil.which("gcloud")
        if found is None:
            raise UsageError("gcloud is not on PATH: install the Google Cloud CLI and log in")
        return found

    def _port(self, node: Node) -> int:
        return TUNNEL_BASE_PORT + list(self.nodes).index(node)

    def api_via(self, node: Node) -> ReadsApi:
        port = self._port(node)
        if node.instance not in self._tunnels:
            self._tunnels[node.instance] = subprocess.Popen(
                [
                    self._gcloud(),
                    "compute",
                    "start-iap-tunnel",
                    node.instance,
                    str(MANAGEMENT_PORT),
                    f"--local-host-port=127.0.0.1:{port}",
                    "--zone",
                    node.zone,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            _wait_for_port(port, TUNNEL_START_SECONDS, node)
        return ManagementApi(f"http://127.0.0.1:{port}", self.admin_user, self.admin_password)

    def restart(self, node: Node) -> None:
        completed = self.run(
            [
                self._gcloud(),
                "compute",
                "ssh",
                node.instance,
                "--zone",
                node.zone,
                "--tunnel-through-iap",
                "--command",
                RESTART_COMMAND,
            ],
            capture_output=True,
            text=True,
            timeout=RESTART_SECONDS,
            check=False,
        )
        if completed.returncode != 0:
            detail = (completed.stderr or "").strip().splitlines()[-1:] or ["no output"]
            raise ServerError(f"restarting {node.instance} failed: {detail[0]}")

    def close(self) -> None:
        """Stop the tunnels this fleet started (and only those)."""
        for tunnel in self._tunnels.values():
            tunnel.terminate()
            try:
                tunnel.wait(timeout=10)
            except subprocess.TimeoutExpired:
                tunnel.kill()
        self._tunnels.clear()


def _wait_for_port(port: int, seconds: float, node: Node) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(1)
    raise ServerError(f"the IAP tunnel to {node.instance} did not open within {seconds:g} s")
