"""When a RabbitMQ cluster is whole again: the check a rolling restart waits on between nodes,
and the start of vhosts a node formed without (``start_stopped_vhosts``, run by the live apply).

A rolling restart (upgrades, config changes) stops one node at a time. Stopping the next node
before every quorum queue has its restarted member back online can take a queue below its
majority, and then it stops accepting publishes until a node returns. So between nodes the
restart waits until, as the management API of a node that stays up reports it, every node of
the cluster runs, no node reports a partition, and every quorum queue has a leader and all its
members online. The decision (``membership_gaps``) is a pure function of the API's documents;
``wait_for_full_membership`` only polls it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from infra.broker.management import quote
from infra.errors import ServerError

NODES_PATH = "/api/nodes"
QUEUES_PATH = "/api/queues?columns=name,vhost,type,leader,members,online"
VHOSTS_PATH = "/api/vhosts?columns=name,cluster_state"
# A vhost's state on a node, as ``cluster_state`` reports it; "nodedown" is a node's own fault
# (membership_gaps names that), "stopped" is a running node without the vhost's processes.
VHOST_STOPPED = "stopped"
# How many gaps a timeout's message lists (a large broker can have thousands of queues).
SHOWN_GAPS = 5


class ReadsApi(Protocol):
    """What the wait needs of ``infra.broker.management.ManagementApi``."""

    def get(self, path: str) -> Any: ...


def membership_gaps(nodes: Any, queues: Any) -> list[str]:
    """What keeps the cluster from being whole, one line each; empty when it is whole.

    ``nodes`` is ``GET /api/nodes`` and ``queues`` ``GET /api/queues`` of one running node.
    A quorum queue counts with its own members (whatever group size it was declared with);
    classic queues and streams have no quorum to wait for here.
    """
    if not isinstance(nodes, list) or not nodes:
        return ["the management API listed no nodes"]
    gaps = []
    for node in sorted(nodes, key=lambda n: str(n.get("name"))):
        name = node.get("name")
        if not node.get("running"):
            gaps.append(f"node {name} is not running")
        partitions = node.get("partitions") or []
        if partitions:
            gaps.append(f"node {name} is partitioned from {', '.join(map(str, partitions))}")
    for queue in queues if isinstance(queues, list) else []:
        if queue.get("type") != "quorum":
            continue
        label = f"quorum queue {queue.get('name')!r} in vhost {queue.get('vhost')!r}"
        members = set(queue.get("members") or [])
        offline = sorted(members - set(queue.get("online") or []))
        if not members:
            gaps.append(f"{label} reports no members")
        if offline:
            gaps.append(f"{label} has members offline on {', '.join(offline)}")
        if not queue.get("leader"):
            gaps.append(f"{label} has no leader")
    return gaps


def stopped_vhosts(vhosts: Any) -> list[tuple[str, str]]:
    """``(vhost, node)`` for each vhost that a running node has not started, from
    ``GET /api/vhosts`` (its ``cluster_state``). Clients of that vhost that land on that node
    are refused ("vhost is down"), while the other nodes serve it."""
    found = []
    for vhost in vhosts if isinstance(vhosts, list) else []:
        states = vhost.get("cluster_state") if isinstance(vhost, dict) else None
        for node, state in sorted((states or {}).items()):
            if state == VHOST_STOPPED:
                found.append((str(vhost.get("name")), str(node)))
    return found


class StartsVhosts(ReadsApi, Protocol):
    """What ``start_stopped_vhosts`` needs of ``infra.broker.management.ManagementApi``."""

    def post_json(self, path: str, document: Any) -> None: ...


def start_stopped_vhosts(api: StartsVhosts) -> list[str]:
    """Start every vhost that a running node of the cluster has stopped; what was started.

    RabbitMQ 3.10 starts a vhost declared while the cluster forms (the boot definitions of
    nodes booting together) only on the nodes fully booted at that moment, and never later
    (rabbitmq-server#11363 describes it and proposes a periodic reconciliation; operators call
    this same endpoint for it, rabbitmq-management#591): under load one node in a few ends up
    without some vhosts. This is ``rabbitmqctl restart_vhost`` on that node, through the API.
    Idempotent: a vhost running everywhere is left alone.
    """
    started = []
    for vhost, node in stopped_vhosts(api.get(VHOSTS_PATH)):
        api.post_json(f"/api/vhosts/{quote(vhost)}/start/{quote(node)}", {})
        started.append(f"vhost {vhost} on {node}")
    return started


def wait_for_full_membership(
    api: ReadsApi,
    timeout: float,
    poll: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Poll until ``membership_gaps`` is empty; return the seconds it took.

    The API may be briefly unreachable or answer with an error while the cluster settles: that
    counts as not whole yet. On timeout, ServerError names what is still missing.
    """
    start = clock()
    while True:
        try:
            gaps = membership_gaps(api.get(NODES_PATH), api.get(QUEUES_PATH))
        except ServerError as error:
            gaps = [str(error)]
        if not gaps:
            return clock() - start
        if clock() - start >= timeout:
            more = f" (and {len(gaps) - SHOWN_GAPS} more)" if len(gaps) > SHOWN_GAPS else ""
            raise ServerError(
                f"the RabbitMQ cluster is not whole after {timeout:g} s: "
                + "; ".join(gaps[:SHOWN_GAPS])
                + more
            )
        sleep(poll)
