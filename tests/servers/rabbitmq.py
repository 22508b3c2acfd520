"""A real rabbitmq-server (Debian's 3.10) started from the rendered rabbitmq.conf and definitions.

The node runs as the ``rabbitmq`` OS user with its own node name, ports, Erlang cookie (HOME),
data and log directories, and its own epmd on a free port, so it never touches the system
service or another test run. The management HTTP API (as the admin user) is how tests and
``broker prune`` look at the broker.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika

from infra.broker.cluster import start_stopped_vhosts, wait_for_full_membership
from infra.broker.management import ManagementApi
from infra.config.model import StackConfig
from infra.credentials import Credentials
from infra.errors import ServerError
from infra.render import rabbitmq as mq_files
from tests.servers.process import (
    ServerUnavailableError,
    as_user,
    chown_tree,
    free_port,
    port_open,
    private_dir,
    require_binary,
    stop_process,
    wait_until,
)

OS_USER = "rabbitmq"
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
EPMD = "/usr/bin/epmd"
BOOT_TIMEOUT = 90
# Boots of one cluster node before a failure is final (systemd would go on every 10 s).
BOOT_ATTEMPTS = 3
# The vhost health check's answer while some vhosts are not started on the node, and how long
# a booted node may answer it before its vhosts are started for it (``RabbitmqCluster.boot``).
VHOSTS_DOWN = "vhost health 503"
VHOSTS_GRACE_S = 10.0


def local_conf(rendered: str, replacements: dict[str, str]) -> str:
    """The rendered rabbitmq.conf with only the keys in ``replacements`` changed.

    Only what must differ on this machine is rewritten: listener ports (the rendered ones are the
    container's well-known ports, which may be taken here), listener addresses (loopback only),
    and the definitions path (the container's /etc/rabbitmq is not ours). Every other line is the
    rendered file's.
    """
    seen: set[str] = set()
    lines = []
    for line in rendered.splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.$-]+)\s*=", line)
        key = match.group(1) if match else None
        if key is not None and key in replacements:
            lines.append(f"{key} = {replacements[key]}")
            seen.add(key)
        else:
            lines.append(line)
    lines.extend(f"{key} = {value}" for key, value in replacements.items() if key not in seen)
    return "\n".join(lines) + "\n"


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class RabbitmqServer:
    """One RabbitMQ node; its data dir survives ``stop``/``start`` until ``cleanup``."""

    rendered: Path
    admin_user: str
    admin_password: str
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    management_port: int = field(default_factory=free_port)
    prometheus_port: int = field(default_factory=free_port)
    epmd_port: int = field(default_factory=free_port)
    # A cluster's nodes: their own node name, one epmd and one Erlang cookie for all of them
    # (``RabbitmqCluster`` runs that epmd), and test-only rabbitmq.conf overrides.
    node: str = ""
    own_epmd: bool = True
    cookie: str | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    root: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    epmd: subprocess.Popen[bytes] | None = field(default=None, init=False)
    frozen: bool = field(default=False, init=False)
    # Why the last readiness check said no (a closed port, the vhost health answer): what a
    # boot timeout reports, so that a node stuck half-ready says which vhost and why.
    not_ready: str = field(default="not checked yet", init=False)

    def __post_init__(self) -> None:
        self.root = private_dir("rabbitmq-", OS_USER)
        self.conf_dir = self.root / "conf"
        self.home = self.root / "home"
        self.mnesia = self.root / "mnesia"
        self.logs = self.root / "log"
        self.log_file = self.root / "server.log"
        for directory in (self.conf_dir, self.home, self.mnesia, self.logs):
            directory.mkdir()
        self.definitions_file = self.conf_dir / "definitions.json"
        self.install_definitions(self.rendered / "rabbitmq" / "definitions.json")
        shutil.copy(self.rendered / "rabbitmq" / "enabled_plugins", self.conf_dir)
        rendered_conf = (self.rendered / "rabbitmq" / "rabbitmq.conf").read_text()
        (self.conf_dir / "rabbitmq.conf").write_text(
            local_conf(
                rendered_conf,
                {
                    "listeners.tcp.default": f"127.0.0.1:{self.amqp_port}",
                    "management.tcp.port": str(self.management_port),
                    "management.tcp.ip": "127.0.0.1",
                    # Only the port: the rendered prometheus.tcp.ip is what the tests check.
                    "prometheus.tcp.port": str(self.prometheus_port),
                    "definitions.local.path": str(self.definitions_file),
                    **self.overrides,
                },
            )
        )
        if self.cookie is not None:
            cookie = self.home / ".erlang.cookie"
            cookie.write_text(self.cookie)
            cookie.chmod(0o400)
        chown_tree(self.root, OS_USER)

    def install_definitions(self, source: Path) -> None:
        """Put a (re-)rendered definitions.json where the node reads it at boot."""
        shutil.copy(source, self.definitions_file)
        self.definitions_file.chmod(0o600)
        chown_tree(self.conf_dir, OS_USER)

    @property
    def nodename(self) -> str:
        return self.node or f"rabbit-test-{self.amqp_port}@localhost"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def _environment(self) -> list[str]:
        return [
            f"HOME={self.home}",
            f"RABBITMQ_NODENAME={self.nodename}",
            "RABBITMQ_USE_LONGNAME=false",
            f"RABBITMQ_NODE_PORT={self.amqp_port}",
            f"RABBITMQ_DIST_PORT={self.dist_port}",
            f"ERL_EPMD_PORT={self.epmd_port}",
            # Never an epmd of the node's own: the harness starts the only one and stops it by
            # PID. Erlang's default (the boot's "epmd-starter" runs ``epmd -daemon``) detaches
            # from the node's process group, listens on every interface and outlives the run
            # when the node boots while the harness's epmd is not listening. ERL_AFLAGS reaches
            # every erl the node runs, that starter included.
            "ERL_AFLAGS=-start_epmd false",
            f"RABBITMQ_CONFIG_FILE={self.conf_dir / 'rabbitmq.conf'}",
            f"RABBITMQ_ENABLED_PLUGINS_FILE={self.conf_dir / 'enabled_plugins'}",
            f"RABBITMQ_MNESIA_BASE={self.mnesia}",
            f"RABBITMQ_LOG_BASE={self.logs}",
            f"RABBITMQ_PID_FILE={self.root / 'rabbitmq.pid'}",
            # No advanced.config and no rabbitmq-env.conf from /etc: this node is the test's.
            f"RABBITMQ_ADVANCED_CONFIG_FILE={self.conf_dir / 'advanced.config'}",
            f"RABBITMQ_CONF_ENV_FILE={self.conf_dir / 'rabbitmq-env.conf'}",
        ]

    def ctl(self, *args: str) -> str:
        """``rabbitmqctl ARGS`` against this node (as its OS user, with its cookie): stdout."""
        argv = ["env", *self._environment(), require_binary(CTL, "rabbitmqctl")]
        result = subprocess.run(
            as_user(OS_USER, [*argv, "-n", self.nodename, *args]),
            capture_output=True,
            text=True,
            check=False,
            cwd=self.root,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {args[0]} on {self.nodename}: {result.stderr}")
        return result.stdout

    def stop_vhost(self, vhost: str) -> None:
        """Stop ``vhost``'s processes on this node only, data kept: the state a node is left in
        when the vhost was declared while it was still booting (RabbitMQ before 3.13)."""
        self.ctl(
            "eval",
            f'[R] = ets:lookup(rabbit_vhost_sup_sup, <<"{vhost}">>), '
            "ok = supervisor:terminate_child(rabbit_vhost_sup_sup, element(4, R)), "
            f'true = ets:delete(rabbit_vhost_sup_sup, <<"{vhost}">>).',
        )

    def start(self) -> RabbitmqServer:
        """Start our own epmd (once) and the node; wait until definitions are loaded."""
        self.launch()
        self.wait_ready()
        return self

    def launch(self) -> None:
        """Start the node without waiting for it (a cluster's nodes boot together)."""
        if self.own_epmd and self.epmd is None:
            self.epmd = start_epmd(self.epmd_port)
        argv = ["env", *self._environment(), require_binary(SERVER, "rabbitmq-server")]
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            as_user(OS_USER, argv),
            stdout=log,
            stderr=log,
            cwd=self.root,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Until AMQP accepts and the management API says every vhost is up."""
        try:
            what = f"{self.nodename} on port {self.amqp_port}"
            wait_until(self._ready, timeout, what, self.log_file)
        except ServerUnavailableError as error:
            raise ServerUnavailableError(f"{error}\nlast check: {self.not_ready}") from None

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError("rabbitmq-server exited")
        if not port_open(self.amqp_port):
            self.not_ready = f"AMQP port {self.amqp_port} closed"
            return False
        try:
            healthy = self.api("GET", "/api/health/checks/virtual-hosts") is not None
        except urllib.error.HTTPError as error:  # 503 names the vhosts that are down
            self.not_ready = f"vhost health {error.code}: {error.read().decode()[:400]}"
            return False
        except OSError as error:
            self.not_ready = f"management API: {error}"
            return False
        if not healthy:
            self.not_ready = "vhost health check not served yet (404)"
        return healthy

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the management API as the admin user; None for 404."""
        token = base64.b64encode(f"{self.admin_user}:{self.admin_password}".encode()).decode()
        request = urllib.request.Request(  # noqa: S310 - a fixed http:// URL on loopback
            self.management_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise
        return json.loads(text) if text else {}

    def stop(self) -> None:
        """SIGTERM: the start script stops the node cleanly (queues and messages flushed)."""
        self._stop(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to the whole node (start script and Erlang VM): a crash, nothing flushed."""
        self._stop(signal.SIGKILL)

    def freeze(self) -> None:
        """SIGSTOP to the whole node: it neither answers nor knows time passes (a VM paused,
        a long GC, a network that drops everything), until ``thaw``."""
        assert self.process is not None, f"{self.nodename} is not running"
        os.killpg(self.process.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """SIGCONT: the frozen node runs on from where it stopped."""
        assert self.process is not None, f"{self.nodename} is not running"
        os.killpg(self.process.pid, signal.SIGCONT)
        self.frozen = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _stop(self, sig: int) -> None:
        """Signal the start script (SIGKILL: its whole process group) and wait for the group.

        The script returns before the Erlang VM has exited, so wait for the whole process
        group (the node was started in its own session) before a restart reuses the name.
        """
        if self.process is None:
            return
        group = self.process.pid
        if self.frozen:
            # A stopped process ignores SIGTERM until it runs again.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGCONT)
            self.frozen = False
        if sig == signal.SIGKILL:
            # The group is gone already when the node exited by itself (a failed boot).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        stop_process(self.process, timeout=60, sig=sig)
        self.process = None
        try:
            wait_until(lambda: not _group_alive(group), 60, "rabbitmq-server to exit")
        finally:
            if _group_alive(group):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)

    def log_text(self) -> str:
        text = self.log_file.read_text(errors="replace")
        for path in sorted(self.logs.glob("*.log")):
            text += path.read_text(errors="replace")
        return text

    def cleanup(self) -> None:
        """SIGKILL to the node's process group: the data directory is deleted next."""
        self._stop(signal.SIGKILL)
        if self.epmd is not None:
            stop_process(self.epmd)
            self.epmd = None
        shutil.rmtree(self.root, ignore_errors=True)


def boot_error(node: RabbitmqServer) -> str:
    """Why a node's boot failed, in one line from its log."""
    lines = node.log_text().splitlines() if node.log_file.exists() else []
    for line in reversed(lines):
        if "init terminating in do_boot" in line or "ERROR:" in line:
            return line.strip()[:300]
    return "exited (no error line in its log)"


def start_epmd(port: int) -> subprocess.Popen[bytes]:
    """An epmd of our own on loopback ``port``, as the rabbitmq user."""
    epmd = subprocess.Popen(
        as_user(
            OS_USER,
            [require_binary(EPMD, "erlang-base"), "-port", str(port), "-address", "127.0.0.1"],
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: port_open(port), 30, f"epmd on port {port}")
    except ServerUnavailableError:
        stop_process(epmd)
        raise
    return epmd


class RabbitmqCluster:
    """``size`` real RabbitMQ nodes on loopback that form one cluster by themselves.

    Every node boots from the same rendered rabbitmq.conf (``rabbitmq_conf`` with the cluster's
    node list: classic_config peer discovery, pause_minority) and definitions.json (quorum
    queues sized to the cluster), with only its ports and paths rewritten like the single node's
    (``local_conf``) plus ``overrides`` (test-only settings such as a short ``net_ticktime``).
    The nodes share one epmd and one Erlang cookie, as the hosts of a real cluster share a
    cookie and each run an epmd on the same well-known port. Nobody runs ``join_cluster``.
    """

    def __init__(
        self,
        config: StackConfig,
        credentials: Credentials,
        size: int = 3,
        overrides: dict[str, str] | None = None,
    ) -> None:
        self.admin_user = config.rabbitmq.admin_user
        self.admin_password = credentials.rabbitmq_admin
        self.names = [f"rabbit{i}@localhost" for i in range(1, size + 1)]
        self.rendered = Path(tempfile.mkdtemp(prefix="rabbitmq-cluster-"))
        files = self.rendered / "rabbitmq"
        files.mkdir()
        (files / "rabbitmq.conf").write_text(
            mq_files.rabbitmq_conf(config, cluster_nodes=self.names)
        )
        (files / "enabled_plugins").write_text(mq_files.enabled_plugins())
        (files / "definitions.json").write_text(
            mq_files.definitions_json(config, credentials, cluster_size=size)
        )
        self.epmd_port = free_port()
        self.epmd: subprocess.Popen[bytes] | None = None
        self.boot_failures: list[str] = []
        self.vhost_starts: list[str] = []
        cookie = secrets.token_hex(20).upper()
        self.nodes = [
            RabbitmqServer(
                self.rendered,
                self.admin_user,
                self.admin_password,
                epmd_port=self.epmd_port,
                node=name,
                own_epmd=False,
                cookie=cookie,
                overrides=dict(overrides or {}),
            )
            for name in self.names
        ]

    def __getitem__(self, index: int) -> RabbitmqServer:
        return self.nodes[index]

    def node(self, name: str) -> RabbitmqServer:
        """The node called ``name`` (e.g. a queue's ``leader`` from the management API)."""
        return self.nodes[self.names.index(name)]

    def start(self, order: Sequence[int] | None = None, gap: float = 0.0) -> RabbitmqCluster:
        """Launch every node in ``order`` (``gap`` seconds apart), then wait until all run as
        one cluster: any order works, as it must after a whole-cluster stop."""
        if self.epmd is None:
            self.epmd = start_epmd(self.epmd_port)
        launched = []
        for position, index in enumerate(order or range(len(self.nodes))):
            if position and gap:
                time.sleep(gap)
            self.nodes[index].launch()
            launched.append(self.nodes[index])
        self.boot(launched)
        self.wait_formed()
        return self

    def boot(self, nodes: Sequence[RabbitmqServer], timeout: float = BOOT_TIMEOUT * 2) -> None:
        """Until every one of ``nodes`` (launched) is ready, each relaunched when its boot
        fails, as the prod VMs' systemd unit does (Debian's rabbitmq-server.service:
        ``Restart=on-failure``).

        RabbitMQ 3.10 can fail the boot of the node that imports the definitions at a first
        formation: a quorum queue's new leader on a node that has joined but not yet loaded
        its tables crashes (badarg on ets rabbit_queue in
        rabbit_quorum_queue:file_handle_leader_reservation) and the import's call to it fails
        the boot. Started again, the node rejoins and imports. Each relaunch is kept in
        ``boot_failures``; a node that fails ``BOOT_ATTEMPTS`` times fails the wait, as does
        a node not ready within ``timeout``. A dead node is seen at once, never waited out.

        A node can also boot without some vhosts: 3.10 starts a vhost imported while the
        cluster forms only on the nodes fully booted at that moment. A node that answers with
        vhosts down for ``VHOSTS_GRACE_S`` gets them started by the product's own
        ``start_stopped_vhosts`` (what the live apply of ``pulumi up`` runs), kept in
        ``vhost_starts``.
        """
        deadline = time.monotonic() + timeout
        pending = list(nodes)
        stuck: dict[str, float] = {}  # node -> since when it answers with vhosts down
        while pending:
            for node in list(pending):
                if not node.running:
                    failed = [f for f in self.boot_failures if f.startswith(node.nodename + ":")]
                    self.boot_failures.append(f"{node.nodename}: {boot_error(node)}")
                    if len(failed) + 1 >= BOOT_ATTEMPTS:
                        raise ServerUnavailableError(
                            f"{node.nodename} failed to boot {BOOT_ATTEMPTS} times: "
                            + "; ".join(self.boot_failures)
                        )
                    node.kill()  # what is left of its process group
                    node.launch()
                    continue
                try:
                    ready = node._ready()
                except Exception:  # not answering yet, or it just exited: seen next round
                    ready = False
                if ready:
                    pending.remove(node)
                elif node.not_ready.startswith(VHOSTS_DOWN):
                    stuck.setdefault(node.nodename, time.monotonic())
            if any(time.monotonic() - since > VHOSTS_GRACE_S for since in stuck.values()):
                # What `pulumi up` does next for a cluster (the live apply): start them.
                with contextlib.suppress(ServerError):  # API not answering yet: next round
                    self.vhost_starts += start_stopped_vhosts(self.management(self.any_running()))
                stuck.clear()
            if pending and time.monotonic() > deadline:
                why = "; ".join(f"{node.nodename}: {node.not_ready}" for node in pending)
                raise ServerUnavailableError(
                    f"not ready within {timeout:g} s: {why}\n{self.log_tails()}"
                )
            time.sleep(0.2)

    def restart(self, index: int) -> None:
        """Start one stopped or killed node again and wait until the cluster has it back."""
        self.nodes[index].launch()
        self.boot([self.nodes[index]])
        self.wait_formed()

    def stop_all(self, order: Sequence[int] | None = None) -> None:
        """A clean stop of every node, one after another in ``order``."""
        for index in order or range(len(self.nodes)):
            self.nodes[index].stop()

    def wait_formed(self, timeout: float = 120) -> None:
        """Until every running node sees every node of the cluster running, with no partition."""

        def formed() -> bool:
            for node in self.nodes:
                if not node.running or node.frozen:
                    continue
                seen = node.api("GET", "/api/nodes") or []
                running = sorted(n["name"] for n in seen if n.get("running"))
                if running != sorted(self.names) or any(n.get("partitions") for n in seen):
                    return False
            return True

        wait_until(formed, timeout, f"cluster {self.names} to form", self.nodes[0].log_file)

    def management(self, node: RabbitmqServer) -> ManagementApi:
        """The cluster's management API through ``node``, as the admin user (the client the
        rolling restart and ``broker`` commands use)."""
        return ManagementApi(node.management_url, self.admin_user, self.admin_password)

    def wait_whole(self, timeout: float = 180, via: RabbitmqServer | None = None) -> float:
        """Until the cluster is whole as ``via`` (default: any running node) sees it: every
        node running, no partition, every quorum queue led with all members online (the
        rolling restart's own check, ``wait_for_full_membership``). The seconds it took."""
        watcher = via or self.any_running()
        try:
            return wait_for_full_membership(self.management(watcher), timeout, poll=0.5)
        except ServerError as error:
            raise ServerUnavailableError(f"{error}\n{self.log_tails()}") from error

    def wait_seen_down(self, node: RabbitmqServer, timeout: float = 90) -> float:
        """Until every other running node's management API reports ``node`` as not running
        (a killed node at once; a frozen one after net_ticktime). The seconds it took."""
        start = time.monotonic()

        def seen_down() -> bool:
            for other in self.nodes:
                if other is node or not other.running or other.frozen:
                    continue
                listed = {n["name"]: n for n in other.api("GET", "/api/nodes") or []}
                if listed.get(node.nodename, {}).get("running", True):
                    return False
            return True

        wait_until(seen_down, timeout, f"{node.nodename} to be seen down", self.nodes[0].log_file)
        return time.monotonic() - start

    def heal(self, timeout: float = 240) -> None:
        """Back to full health whatever a test left: thaw frozen nodes, start stopped ones
        (together, as after a whole-cluster stop), then wait until the cluster is whole."""
        for node in self.nodes:
            if node.frozen:
                node.thaw()
        if self.epmd is None or self.epmd.poll() is not None:
            self.epmd = start_epmd(self.epmd_port)
        stopped = [node for node in self.nodes if not node.running]
        for node in stopped:
            node.launch()
        self.boot(stopped)
        self.wait_formed(timeout)
        self.wait_whole(timeout)

    def log_tails(self, lines: int = 15) -> str:
        """The last lines of every node's log, to explain a timeout."""
        parts = []
        for node in self.nodes:
            tail = node.log_text().splitlines()[-lines:] if node.log_file.exists() else []
            parts.append(f"--- {node.nodename}\n" + "\n".join(tail))
        return "\n".join(parts)

    def any_running(self, but: RabbitmqServer | None = None) -> RabbitmqServer:
        """A running node (other than ``but``), to ask the management API through."""
        for node in self.nodes:
            if node.running and not node.frozen and node is not but:
                return node
        raise AssertionError("no running node")

    def connection_parameters(
        self, vhost: str, user: str, password: str, first: RabbitmqServer | None = None
    ) -> list[pika.ConnectionParameters]:
        """One entry per node (``first`` first): the client-side node list a service is given,
        so a reconnect goes to whichever node is up."""
        nodes = sorted(self.nodes, key=lambda node: node is not first)
        return [
            pika.ConnectionParameters(
                host="127.0.0.1",
                port=node.amqp_port,
                virtual_host=vhost,
                credentials=pika.PlainCredentials(user, password),
                connection_attempts=1,
                socket_timeout=5,
                blocked_connection_timeout=30,
                heartbeat=10,
            )
            for node in nodes
        ]

    def cleanup(self) -> None:
        """Kill every node, then stop the epmd this cluster started (by its PID), whatever
        fails on the way: one node's error must not leave the others or the epmd running."""
        errors = []
        for node in self.nodes:
            try:
                node.cleanup()
            except Exception as error:  # the others still get cleaned up; raised below
                errors.append(error)
        if self.epmd is not None:
            stop_process(self.epmd)
            self.epmd = None
        shutil.rmtree(self.rendered, ignore_errors=True)
        if errors:
            raise errors[0]
