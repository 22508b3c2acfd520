"""The broker, one node against three: throughput and publish-confirm latency with RabbitMQ's
own load generator PerfTest, and how long a publisher waits for confirms after a node loss.

Run: make perf-test && .venv/bin/python -m benchmarks.bench_broker [--seconds 20] [--rounds 2]
     [--rate 500] [--rate-seconds 10] [--kills 3]

Starts a single RabbitMQ node and a three-node cluster (``tests/servers/rabbitmq.py``: Debian's
rabbitmq-server, on loopback, each from the dev stack's rendered rabbitmq.conf and
definitions.json; the cluster's from the clustered rendering: classic_config peer discovery,
pause_minority). Both stay up for the whole run, so the two sides run in the same conditions.

Throughput and latency: PerfTest 2.22.1 (``make perf-test``) as the ``events`` service's own
login on its vhost, connected to one node (the cluster's first; the rendered
``queue_leader_locator = balanced`` places a quorum queue's leader, and the table says how
often it was on that node), one producer and one consumer, publisher confirms (``--confirm
100``: at most 100 unconfirmed), persistent 1 kB messages, a fresh durable queue per run
(deleted after):

  max    as fast as the confirms allow, ``--seconds`` per run: sent and received msg/s
         (PerfTest's "sending/receiving rate avg") and confirm latency p50/p99 (its end-of-run
         "confirm latency min/median/75th/95th/99th")
  rate   ``--rate`` msg/s, ``--rate-seconds`` per run: confirm latency p50/p99 below saturation,
         what a service publishing at a steady pace waits

for a quorum queue (``--quorum-queue``; one member on the single node, three on the cluster)
and a classic queue (on the cluster it lives on the node it was declared on, unreplicated). Each
cell runs ``--rounds`` times, its one-node and three-node runs back to back (which goes first
alternates); ratio = sum(three nodes) / sum(one node).

Recovery after a node loss (the cluster only): a publisher with confirms (pika, the repository's
client, given every node's address as a service's client-side node list is) sends persistent
messages, one confirmed at a time, to a quorum queue with a member on every node; the node that
leads the queue gets SIGKILL; recovery = seconds from the kill until the first message published
after it is confirmed. Twice per ``--kills``: once with the publisher connected to the leader (it
must reconnect to another node, and a new leader must be elected) and once connected to a
follower (only the election). The killed node is started again and the queue back at three
online members before the next kill. A SIGKILL on one machine closes the node's sockets at
once, so it is seen gone at once; a host gone silent takes ``net_ticktime`` (60 s by default)
to be declared down, which is not measured here.

All on one machine: the three nodes share its two cores with PerfTest (and, on the machines
this runs on, with other work), so replication's cost shows up as CPU here as much as network
round trips on real VMs. Quote the ratios, not the msg/s. The table goes into
benchmarks/README.md (section "broker").
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pika
import pika.exceptions

from benchmarks.command import REPO
from benchmarks.report import table, write_section
from infra import naming, secrets_file
from infra.config import load_stack
from infra.credentials import Credentials
from tests.conftest import render_to
from tests.servers.process import ServerUnavailableError, wait_until
from tests.servers.rabbitmq import BOOT_TIMEOUT, RabbitmqCluster, RabbitmqServer

PERF_TEST_DIR = REPO / ".tools" / "perf-test"
PERF_TEST_MAIN = "com.rabbitmq.perf.PerfTest"
SERVICE = "events"  # its login and vhost carry the load, as the service's own would
ROUNDS = 2
SECONDS = 20
RATE = 500
RATE_SECONDS = 10
KILLS = 3
CONFIRM_WINDOW = 100
MESSAGE_BYTES = 1000
QUEUE_TYPES = ("quorum", "classic")
NODE_COUNTS = (1, 3)
RECOVERY_TIMEOUT = 60.0

_RATE = re.compile(r"(sending|receiving) rate avg: (\d+) msg/s")
_CONFIRM = re.compile(
    r"confirm latency min/median/75th/95th/99th(?:/max)? (\d+)/(\d+)/\d+/\d+/(\d+)"
)


def say(line: str) -> None:
    print(line, flush=True)


def perf_test_classpath() -> str:
    """PerfTest's jar and its dependencies, as ``make perf-test`` copied them."""
    if not (PERF_TEST_DIR / ".installed").exists() or not list(
        PERF_TEST_DIR.glob("perf-test-*.jar")
    ):
        raise SystemExit(
            f"PerfTest is not installed in {PERF_TEST_DIR.relative_to(REPO)}: run `make perf-test`"
            " (Java and Maven; benchmarks/perftest/pom.xml pins the version)"
        )
    if shutil.which("java") is None:
        raise SystemExit(
            "java is not on PATH: PerfTest needs Java 11+"
            " (apt-get install -y openjdk-17-jre-headless)"
        )
    return str(PERF_TEST_DIR / "*")


@dataclass(frozen=True)
class Cell:
    """One PerfTest run's figures (msg/s and milliseconds)."""

    sent: float
    received: float
    confirm_p50_ms: float
    confirm_p99_ms: float
    leader: str = ""  # a quorum queue's leader node, from the management API


def parse_summary(output: str) -> Cell:
    """PerfTest's end-of-run summary lines; a clear failure when they are not there."""
    rates = {kind: float(value) for kind, value in _RATE.findall(output)}
    confirm = _CONFIRM.search(output)
    if set(rates) != {"sending", "receiving"} or confirm is None:
        raise RuntimeError(f"no PerfTest summary (rates and confirm latency) in:\n{output[-3000:]}")
    return Cell(
        sent=rates["sending"],
        received=rates["receiving"],
        confirm_p50_ms=int(confirm.group(2)) / 1000,
        confirm_p99_ms=int(confirm.group(3)) / 1000,
    )


@dataclass
class Broker:
    """One side of the comparison: a node (or a cluster's first node) PerfTest connects to."""

    nodes: int
    entry: RabbitmqServer
    user: str
    password: str
    vhost: str
    classpath: str
    runs: int = 0

    def uri(self) -> str:
        user, password = (urllib.parse.quote(part, safe="") for part in (self.user, self.password))
        vhost = urllib.parse.quote(self.vhost, safe="")
        return f"amqp://{user}:{password}@127.0.0.1:{self.entry.amqp_port}/{vhost}"

    def perf_test(self, queue_type: str, seconds: int, rate: int | None) -> Cell:
        """One PerfTest run on a fresh durable queue, deleted afterwards."""
        self.runs += 1
        queue = f"bench-{queue_type}-{self.runs}"
        argv = [
            "java", "-cp", self.classpath, PERF_TEST_MAIN,
            "--producers", "1", "--consumers", "1",
            "--confirm", str(CONFIRM_WINDOW), "--flag", "persistent",
            "--size", str(MESSAGE_BYTES), "--time", str(seconds),
            "--queue", queue, "--auto-delete", "false", "--id", queue,
        ]  # fmt: skip
        if queue_type == "quorum":
            argv.append("--quorum-queue")
        if rate is not None:
            argv += ["--rate", str(rate)]
        # The URI (with the service's password) goes in PerfTest's environment, never in argv.
        env = {**os.environ, "URI": self.uri()}
        try:
            done = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=seconds + 120, check=False
            )
        finally:
            path = f"/api/queues/{urllib.parse.quote(self.vhost, safe='')}/{queue}"
            info = None
            with contextlib.suppress(Exception):
                info = self.entry.api("GET", path)
                self.entry.api("DELETE", path)
        if done.returncode != 0:
            raise RuntimeError(
                f"PerfTest exited {done.returncode} against {self.nodes} node(s):\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
        leader = str(info.get("leader", "")) if isinstance(info, dict) else ""
        return dataclasses.replace(parse_summary(done.stdout), leader=leader)


@dataclass
class Results:
    # (mode, queue type, nodes) -> one Cell per round
    cells: dict[tuple[str, str, int], list[Cell]] = field(default_factory=dict)
    # "leader" / "follower" -> seconds from the kill to the first confirm of a later publish
    recovery: dict[str, list[float]] = field(default_factory=dict)
    reconnects: dict[str, list[int]] = field(default_factory=dict)
    entry: str = ""  # the cluster node PerfTest connects to
    loads: list[float] = field(default_factory=list)  # 1-minute load average after each run
    seconds: float = 0.0


def measure(brokers: dict[int, Broker], args: argparse.Namespace, results: Results) -> None:
    """Every cell ``rounds`` times. The one-node and three-node runs of a cell go back to back,
    so both see the same background load (on a shared machine it swings within minutes), and
    which goes first alternates from one pair to the next and between rounds."""
    modes: list[tuple[str, int, int | None]] = [
        ("max", args.seconds, None),
        ("rate", args.rate_seconds, args.rate),
    ]
    pair = 0
    for round_ in range(args.rounds):
        for queue_type in QUEUE_TYPES if round_ % 2 == 0 else QUEUE_TYPES[::-1]:
            for mode, seconds, rate in modes:
                counts = NODE_COUNTS if (pair + round_) % 2 == 0 else NODE_COUNTS[::-1]
                pair += 1
                for nodes in counts:
                    cell = brokers[nodes].perf_test(queue_type, seconds, rate)
                    results.cells.setdefault((mode, queue_type, nodes), []).append(cell)
                    results.loads.append(os.getloadavg()[0])
                    say(
                        f"round {round_ + 1}, {nodes} node(s), {queue_type:<7} {mode:<4}: "
                        f"sent {cell.sent:7.0f} msg/s, received {cell.received:7.0f} msg/s, "
                        f"confirm p50 {cell.confirm_p50_ms:7.1f} ms, "
                        f"p99 {cell.confirm_p99_ms:7.1f} ms"
                        + (f", leader {cell.leader}" if cell.leader else "")
                    )


class Publisher(threading.Thread):
    """Persistent messages with publisher confirms, one at a time, to ``queue``. On a nack (a
    quorum queue with no leader nacks) or a connection or channel failure it connects again
    through the node list (the first node that answers) and publishes the message again.

    A new connection, not the same channel: on Debian's 3.10.8, a channel opened while the
    queue had no leader went on nacking after a new leader was elected (no confirm within 60 s
    in the one run that tried it), while a fresh connection got its confirm within a second.
    """

    def __init__(self, parameters: list[pika.ConnectionParameters], queue: str) -> None:
        super().__init__(daemon=True)
        self.parameters = parameters
        self.queue = queue
        self.confirms: list[tuple[float, float]] = []  # (published at, confirmed at), monotonic
        self.failures: list[tuple[float, str]] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        body = b"x" * MESSAGE_BYTES
        properties = pika.BasicProperties(delivery_mode=2)
        deadline = time.monotonic() + 600  # bounded whatever happens to the main thread
        while not self.stopping.is_set() and time.monotonic() < deadline:
            connection = None
            try:
                connection = pika.BlockingConnection(self.parameters)
                channel = connection.channel()
                channel.confirm_delivery()
                while not self.stopping.is_set():
                    published = time.monotonic()
                    channel.basic_publish("", self.queue, body, properties, mandatory=True)
                    with self.lock:
                        self.confirms.append((published, time.monotonic()))
            except (pika.exceptions.AMQPError, OSError) as error:
                self.failures.append((time.monotonic(), type(error).__name__))
                time.sleep(0.05)  # every node refused: a short pause before the next round
            finally:
                if connection is not None and connection.is_open:
                    with contextlib.suppress(Exception):
                        connection.close()

    def confirmed_after(self, moment: float) -> float | None:
        """When the first message published after ``moment`` was confirmed, if one has been."""
        with self.lock:
            later = [confirmed for published, confirmed in self.confirms if published > moment]
        return later[0] if later else None


def kill_leader(leader: RabbitmqServer, publisher: Publisher) -> tuple[float, int]:
    """Once ``publisher`` has confirms flowing, SIGKILL ``leader``: the seconds until a message
    published after the kill is confirmed, and the publisher's connection failures meanwhile."""
    publisher.start()
    try:
        wait_until(lambda: len(publisher.confirms) >= 50, 30, "confirms flowing")
        killed_at = time.monotonic()
        leader.kill()
        wait_until(
            lambda: publisher.confirmed_after(killed_at) is not None,
            RECOVERY_TIMEOUT,
            f"a confirm after killing {leader.nodename}",
        )
        back = publisher.confirmed_after(killed_at)
        assert back is not None
        failures = [name for at, name in publisher.failures if at > killed_at]
        if failures:
            say(f"  publisher: {', '.join(failures)}")
        return back - killed_at, len(failures)
    finally:
        publisher.stopping.set()
        publisher.join(timeout=30)


def recovery(
    cluster: RabbitmqCluster, credentials: Credentials, kills: int, results: Results
) -> None:
    """SIGKILL the quorum queue's leader under a confirming publisher, ``kills`` times with the
    publisher on the leader and as many on a follower."""
    vhost, user = naming.rabbitmq_vhost(SERVICE), naming.rabbitmq_user(SERVICE)
    password = credentials.for_service(SERVICE).rabbitmq
    queue = "bench-recovery"
    path = f"/api/queues/{urllib.parse.quote(vhost, safe='')}/{queue}"
    with contextlib.closing(
        pika.BlockingConnection(cluster.connection_parameters(vhost, user, password))
    ) as connection:
        connection.channel().queue_declare(
            queue, durable=True, arguments={"x-queue-type": "quorum"}
        )

    def queue_info() -> dict[str, object]:
        info = cluster.any_running().api("GET", path)
        assert isinstance(info, dict), f"queue {queue} is missing"
        return info

    def full_membership() -> bool:
        info = queue_info()
        online = info.get("online")
        return isinstance(online, list) and sorted(online) == sorted(cluster.names)

    try:
        for kill in range(kills):
            for connected in ("leader", "follower") if kill % 2 == 0 else ("follower", "leader"):
                wait_until(full_membership, 120, f"{queue} back at {len(cluster.names)} members")
                leader = cluster.node(str(queue_info()["leader"]))
                first = leader if connected == "leader" else cluster.any_running(but=leader)
                parameters = cluster.connection_parameters(vhost, user, password, first=first)
                say(f"kill {leader.nodename}, the leader (publisher on the {connected})")
                seconds, failures = kill_leader(leader, Publisher(parameters, queue))
                results.recovery.setdefault(connected, []).append(seconds)
                results.reconnects.setdefault(connected, []).append(failures)
                say(f"  confirms again after {seconds:.2f} s ({failures} reconnection(s))")
                cluster.restart(cluster.nodes.index(leader))
    finally:
        with contextlib.suppress(Exception):
            cluster.any_running().api("DELETE", path)


def start_cluster(cluster: RabbitmqCluster) -> None:
    """Three nodes formed into one cluster. On a machine loaded by other work a node's boot can
    outlast the harness's wait (seen: 160 s to the listener at a load of 17 on two cores): the
    nodes are launched by then, so wait for them once more, as long again, before giving up."""
    try:
        cluster.start()
    except ServerUnavailableError as error:
        say(f"the cluster is slow to boot, waiting longer: {str(error).splitlines()[0]}")
        for node in cluster.nodes:
            node.wait_ready(timeout=BOOT_TIMEOUT * 3)
        cluster.wait_formed(timeout=300)


def report(args: argparse.Namespace, results: Results) -> str:
    def runs(values: list[float], digits: int) -> str:
        return " / ".join(f"{value:.{digits}f}" for value in values)

    figures: list[tuple[str, Callable[[Cell], float], int]] = [
        ("sent (msg/s)", lambda cell: cell.sent, 0),
        ("received (msg/s)", lambda cell: cell.received, 0),
        ("confirm p50 (ms)", lambda cell: cell.confirm_p50_ms, 1),
        ("confirm p99 (ms)", lambda cell: cell.confirm_p99_ms, 1),
    ]
    rows = []
    for mode, load in (("max", "as fast as confirms allow"), ("rate", f"{args.rate} msg/s")):
        for queue_type in QUEUE_TYPES:
            for name, value, digits in figures:
                if mode == "rate" and "msg/s" in name:
                    continue
                one = [value(cell) for cell in results.cells[(mode, queue_type, 1)]]
                three = [value(cell) for cell in results.cells[(mode, queue_type, 3)]]
                ratio = sum(three) / sum(one) if sum(one) else float("nan")
                rows.append(
                    [queue_type, load, name, runs(one, digits), runs(three, digits), f"{ratio:.2f}"]
                )
    recovery_rows = [
        [
            f"publisher connected to the {connected}",
            runs(results.recovery[connected], 2),
            f"{statistics.median(results.recovery[connected]):.2f}",
            " / ".join(str(n) for n in results.reconnects[connected]),
        ]
        for connected in ("leader", "follower")
        if connected in results.recovery
    ]
    leaders = [
        cell.leader for mode in ("max", "rate") for cell in results.cells[(mode, "quorum", 3)]
    ]
    local = sum(1 for leader in leaders if leader == results.entry)
    return (
        f"PerfTest 2.22.1 (`make perf-test`), one producer and one consumer as the `{SERVICE}` "
        f"service on one node (the cluster's first), `--confirm {CONFIRM_WINDOW}`, persistent "
        f"{MESSAGE_BYTES}-byte messages, a fresh durable queue per run; max: `--time "
        f"{args.seconds}`, rate: `--rate {args.rate} --time {args.rate_seconds}`. Each cell "
        f"{args.rounds} runs, its one-node and three-node runs back to back (which goes first "
        "alternates); ratio = sum(three nodes) / sum(one node). The quorum queue's leader "
        "(placed by the rendered `queue_leader_locator = balanced`) was on the node PerfTest "
        f"connects to in {local} of the {len(leaders)} three-node runs. Three nodes and PerfTest "
        f"share one machine's {os.cpu_count()} cores, whose 1-minute load average (read after "
        f"each run) went from {min(results.loads):.1f} to {max(results.loads):.1f}: quote the "
        f"ratios. Whole run: {results.seconds:.0f} s."
        "\n\n"
        + table(["queue", "load", "figure", "one node", "three nodes", "three / one"], rows)
        + "\n\nRecovery after SIGKILL of the quorum queue's leader (three nodes, a pika publisher "
        "with confirms, one message at a time, given every node's address): seconds from the kill "
        "until the first message published after it is confirmed. On a nack (a quorum queue "
        "with no leader nacks) or a lost connection the publisher connects again (to the first "
        "node that answers) and publishes the message again. A killed process "
        "on the same machine: its sockets close at once, so the other nodes and the publisher "
        "see it gone at once. A host that goes silent (power, network) is declared down only "
        "after `net_ticktime` (60 s by default), which this does not measure.\n\n"
        + table(["case", "seconds per kill", "median", "reconnections"], recovery_rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=SECONDS, help="each max-throughput run")
    parser.add_argument("--rate", type=int, default=RATE, help="msg/s of the fixed-rate runs")
    parser.add_argument(
        "--rate-seconds", type=int, default=RATE_SECONDS, help="each fixed-rate run"
    )
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help="runs of each cell (even: alternating order)"
    )
    parser.add_argument(
        "--kills", type=int, default=KILLS, help="leader kills per publisher placement"
    )
    parser.add_argument(
        "--no-readme", action="store_true", help="print the table, leave the README alone"
    )
    args = parser.parse_args()
    classpath = perf_test_classpath()
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-broker-"))
    os.chmod(work, 0o700)
    config = load_stack("dev")
    credentials = secrets_file.load_or_create(work / "dev.secrets.json", config)
    rendered = render_to(work / "rendered", config, credentials)
    single = RabbitmqServer(rendered, config.rabbitmq.admin_user, credentials.rabbitmq_admin)
    cluster = RabbitmqCluster(config, credentials, size=3)
    results = Results()
    try:
        single.start()
        start_cluster(cluster)
        say(f"one node and a three-node cluster up in {time.monotonic() - began:.0f} s")
        user, vhost = naming.rabbitmq_user(SERVICE), naming.rabbitmq_vhost(SERVICE)
        password = credentials.for_service(SERVICE).rabbitmq
        brokers = {
            1: Broker(1, single, user, password, vhost, classpath),
            3: Broker(3, cluster[0], user, password, vhost, classpath),
        }
        results.entry = cluster[0].nodename
        measure(brokers, args, results)
        single.cleanup()  # idle from here on: its CPU back for the recovery runs
        recovery(cluster, credentials, args.kills, results)
        results.seconds = time.monotonic() - began
    finally:
        cluster.cleanup()
        single.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    markdown = report(args, results)
    print(markdown)
    if not args.no_readme:
        write_section("broker", markdown)


if __name__ == "__main__":
    main()
