"""A real rabbitmq-server (Debian's 3.10) started from the rendered rabbitmq.conf and definitions.

The node runs as the ``rabbitmq`` OS user with its own node name, ports, Erlang cookie (HOME),
data and log directories, and its own epmd on a free port, so it never touches the system
service or another test run. The management HTTP API (as the admin user) is how tests and
``broker prune`` look at the broker.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers.process import (
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
EPMD = "/usr/bin/epmd"
BOOT_TIMEOUT = 90


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
    root: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    epmd: subprocess.Popen[bytes] | None = field(default=None, init=False)

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
                },
            )
        )
        chown_tree(self.root, OS_USER)

    def install_definitions(self, source: Path) -> None:
        """Put a (re-)rendered definitions.json where the node reads it at boot."""
        shutil.copy(source, self.definitions_file)
        self.definitions_file.chmod(0o600)
        chown_tree(self.conf_dir, OS_USER)

    @property
    def nodename(self) -> str:
        return f"rabbit-test-{self.amqp_port}@localhost"

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
            f"RABBITMQ_CONFIG_FILE={self.conf_dir / 'rabbitmq.conf'}",
            f"RABBITMQ_ENABLED_PLUGINS_FILE={self.conf_dir / 'enabled_plugins'}",
            f"RABBITMQ_MNESIA_BASE={self.mnesia}",
            f"RABBITMQ_LOG_BASE={self.logs}",
            f"RABBITMQ_PID_FILE={self.root / 'rabbitmq.pid'}",
            # No advanced.config and no rabbitmq-env.conf from /etc: this node is the test's.
            f"RABBITMQ_ADVANCED_CONFIG_FILE={self.conf_dir / 'advanced.config'}",
            f"RABBITMQ_CONF_ENV_FILE={self.conf_dir / 'rabbitmq-env.conf'}",
        ]

    def start(self) -> RabbitmqServer:
        """Start our own epmd (once) and the node; wait until definitions are loaded."""
        if self.epmd is None:
            self.epmd = subprocess.Popen(
                as_user(
                    OS_USER,
                    [
                        require_binary(EPMD, "erlang-base"),
                        "-port",
                        str(self.epmd_port),
                        "-address",
                        "127.0.0.1",
                    ],
                ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_until(lambda: port_open(self.epmd_port), 10, f"epmd on port {self.epmd_port}")
        argv = ["env", *self._environment(), require_binary(SERVER, "rabbitmq-server")]
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            as_user(OS_USER, argv),
            stdout=log,
            stderr=log,
            cwd=self.root,
            start_new_session=True,
        )
        wait_until(
            self._ready, BOOT_TIMEOUT, f"rabbitmq-server on port {self.amqp_port}", self.log_file
        )
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError("rabbitmq-server exited")
        if not port_open(self.amqp_port):
            return False
        return self.api("GET", "/api/health/checks/virtual-hosts") is not None

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

    def _stop(self, sig: int) -> None:
        """Signal the start script (SIGKILL: its whole process group) and wait for the group.

        The script returns before the Erlang VM has exited, so wait for the whole process
        group (the node was started in its own session) before a restart reuses the name.
        """
        if self.process is None:
            return
        group = self.process.pid
        if sig == signal.SIGKILL:
            os.killpg(group, signal.SIGKILL)
        stop_process(self.process, timeout=60, sig=sig)
        self.process = None
        try:
            wait_until(lambda: not _group_alive(group), 60, "rabbitmq-server to exit")
        finally:
            if _group_alive(group):
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
