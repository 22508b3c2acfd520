"""The end-to-end stack: this repository's program under the real Pulumi engine, isolated.

An ``E2eStack`` is a Pulumi project directory of its own (Pulumi.yaml copied; the entry
point, ``infra`` and ``.venv`` linked to this checkout), with its own stack file, ports,
container names, local state backend and PULUMI_HOME, so it never touches a developer's ``dev``
stack. It is driven the way the README tells a user to drive a stack: ``make`` targets and
``python -m infra`` commands as subprocesses (never the Automation API's shortcuts).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from tests.servers.process import free_port, free_port_range

REPO = Path(__file__).resolve().parents[2]
ENGINE_BIN = REPO / ".tools" / "bin"
PLUGINS = REPO / ".tools" / "plugins"
ENGINE_BINARIES = (
    "bin/pulumi",
    "bin/pulumi-language-python",
    "bin/pulumi-language-python-exec",
    "bin/pulumi-resource-pulumi-python",
    "plugins/pulumi-resource-docker",
    "plugins/pulumi-resource-random",
)
# Provider plugin -> the PyPI SDK that asks the engine for exactly its version.
PROVIDER_SDKS = {"docker": "pulumi-docker", "random": "pulumi-random"}
STACK = "e2e"
PREFIX = f"persistence-{STACK}"
SERVERS = ("postgres", "redis", "rabbitmq")
# The lifecycle stack's read replica (postgres.replicas: 1), a data server of its own.
REPLICAS = ("postgres-replica-1",)


def missing_engine() -> list[str]:
    """The engine binaries `make engine` has not built yet."""
    return [name for name in ENGINE_BINARIES if not os.access(ENGINE_BIN.parent / name, os.X_OK)]


def install_plugins(pulumi_home: Path) -> None:
    """Put the built plugins where the engine looks for a version first: its plugin cache."""
    for name, sdk in PROVIDER_SDKS.items():
        cache = pulumi_home / "plugins" / f"resource-{name}-v{metadata.version(sdk)}"
        cache.mkdir(parents=True, exist_ok=True)
        link = cache / f"pulumi-resource-{name}"
        if not link.exists():
            link.symlink_to(PLUGINS / f"pulumi-resource-{name}")


def engine_environment(root: Path) -> dict[str, str]:
    """The variables that point the built engine at a state backend, passphrase and
    ``PULUMI_HOME`` of its own under ``root`` (created here), never a developer's."""
    state = root / "state"
    state.mkdir(parents=True, exist_ok=True)
    passphrase = root / "passphrase"
    passphrase.write_text(secrets.token_urlsafe(24), encoding="utf-8")
    passphrase.chmod(0o600)
    home = root / "pulumi-home"
    install_plugins(home)
    # The venv first: the language host runs the `python` it finds on PATH.
    path = os.pathsep.join([str(REPO / ".venv" / "bin"), str(ENGINE_BIN), os.environ["PATH"]])
    return {
        "PATH": path,
        "PULUMI_HOME": str(home),
        "PULUMI_BACKEND_URL": f"file://{state}",
        "PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
    }


class E2eStack:
    """One isolated stack of the real program, driven only through the README's commands.

    Every operation is ``make TARGET STACK=e2e PROJECT_DIR=...`` or ``python -m infra ...`` as a
    subprocess, with the user's environment (the engine and the venv taken off ``PATH``, so
    ``make`` must find or build them itself) plus the variables the README documents for
    pointing ``make`` elsewhere: ``PULUMI_BACKEND_URL``, ``PULUMI_CONFIG_PASSPHRASE_FILE`` and
    ``PULUMI_HOME``. ``services`` is the list in its stack file.
    """

    def __init__(
        self,
        root: Path,
        images: Mapping[str, str] | None = None,
        rabbitmq_nodes: int = 1,
        replicas: int = 0,
    ) -> None:
        self.root = root
        self.replicas = replicas
        self.project = root / "project"
        self.backups = root / "backups"
        self.images = dict(images or {})
        self.rabbitmq_nodes = rabbitmq_nodes
        self.ports = {name: free_port() for name in ("postgres", "redis")}
        # A cluster's node N publishes on the configured AMQP and management ports plus N - 1.
        for name in ("amqp", "management"):
            self.ports[name] = (
                free_port() if rabbitmq_nodes == 1 else free_port_range(rabbitmq_nodes)
            )
        self.services: list[dict[str, Any]] = [
            {
                "name": "orders",
                "extensions": ["pgcrypto"],
                # Numbers as the stack file gives them (Pulumi carries them as doubles).
                "queues": [
                    {"name": "orders.placed", "max_length": 100000, "message_ttl_ms": 86400000}
                ],
            },
            {"name": "billing", "connection_limits": {"app": 5, "migrator": 2, "readonly": 3}},
        ]
        self.env = self._environment()
        self.env_dir = self.project / ".envs" / STACK
        self._create_project()

    def _environment(self) -> dict[str, str]:
        """The user's environment, minus what `make` must set up itself, plus the documented
        variables that give this stack its own state, passphrase and plugin cache."""
        state = self.root / "state"
        state.mkdir(parents=True, exist_ok=True)
        ours = (str(REPO / ".venv" / "bin"), str(ENGINE_BIN))
        path = [entry for entry in os.environ["PATH"].split(os.pathsep) if entry not in ours]
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("PULUMI_", "PERSISTENCE_", "VIRTUAL_ENV", "PYTEST_", "COV_"))
        }
        return {
            **env,
            "PATH": os.pathsep.join(path),
            "PULUMI_BACKEND_URL": f"file://{state}",
            "PULUMI_CONFIG_PASSPHRASE_FILE": str(self.root / "passphrase"),
            "PULUMI_HOME": str(self.root / "pulumi-home"),
        }

    def _create_project(self) -> None:
        self.project.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "Pulumi.yaml", self.project / "Pulumi.yaml")
        for name in ("__main__.py", "infra", ".venv"):
            link = self.project / name
            if not link.exists():
                link.symlink_to(REPO / name)
        self.write_stack_file()

    def write_stack_file(self) -> None:
        """Pulumi.e2e.yaml from the current ``services`` (edit the list, then call this)."""
        docker_settings: dict[str, Any] = {
            "ports": self.ports,
            "backup_dir": str(self.backups),
            "memory_mb": {"postgres": 512, "redis": 128, "rabbitmq": 512, "backup": 256},
        }
        if self.images:
            docker_settings["images"] = self.images
        settings = {
            "platform": "docker",
            "services": self.services,
            "docker": docker_settings,
            "postgres": {"shared_buffers_mb": 32, "replicas": self.replicas},
            "backup": {"schedule": "* * * * *"},
        }
        if self.rabbitmq_nodes != 1:
            settings["rabbitmq"] = {"nodes": self.rabbitmq_nodes}
        document = {"config": {f"persistence:{key}": value for key, value in settings.items()}}
        text = yaml.safe_dump(document, sort_keys=False)
        (self.project / f"Pulumi.{STACK}.yaml").write_text(text, encoding="utf-8")

    def make(
        self, target: str, *variables: str, check: bool = True, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        """``make TARGET`` of this checkout for this stack, as the README has a user run it.

        With ``check``, a failure raises with the command's own output.
        """
        argv = ["make", "--no-print-directory", target, f"STACK={STACK}"]
        argv += [f"PROJECT_DIR={self.project}", *variables]
        completed = _run(argv, cwd=REPO, env=self.env, timeout=timeout)
        if check and completed.returncode != 0:
            raise AssertionError(_failure(argv, completed))
        return completed

    def up(self) -> dict[str, str]:
        """``make preview`` as JSON (what a reviewer approves), then ``make up``; the previewed
        operation per resource URN. Tests check what really happened on the servers."""
        planned = self.planned()
        self.make("up")
        return planned

    def planned(self) -> dict[str, str]:
        """Resource URN -> operation, from ``make preview PULUMI_ARGS=--json``."""
        completed = self.make("preview", "PULUMI_ARGS=--json")
        output = completed.stdout
        document = json.loads(output[output.index("\n{") + 1 :])
        return {step["urn"]: step["op"] for step in document.get("steps", [])}

    def preview(self, *flags: str) -> subprocess.CompletedProcess[str]:
        """``make preview`` (with extra pulumi flags, e.g. ``--expect-no-changes``)."""
        return self.make("preview", *([f"PULUMI_ARGS={' '.join(flags)}"] if flags else []))

    def preview_expecting_no_changes(self) -> None:
        self.preview("--expect-no-changes")

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.make("down")

    def shell(self, script: str, *, echo: bool = True) -> subprocess.CompletedProcess[str]:
        """``script`` in bash from the project directory, after the README's one line:
        ``eval "$(make -s shellenv)"`` (for plain ``pulumi`` commands). ``echo=False`` for
        output that holds secrets: it never reaches the test report (or the CI log)."""
        setup = f'eval "$(make -s -C {REPO} shellenv STACK={STACK} PROJECT_DIR={self.project})"'
        argv = ["bash", "-c", f"set -e; {setup}; {script}"]
        return _run(argv, self.project, self.env, 300, echo=echo)

    def outputs(self) -> dict[str, Any]:
        """The stack's outputs, secrets shown: plain ``pulumi stack output`` after shellenv
        (its output, passwords included, is not echoed into the test report)."""
        script = f"pulumi stack output --stack {STACK} --show-secrets --json"
        completed = self.shell(script, echo=False)
        assert completed.returncode == 0, completed.stderr
        outputs: dict[str, Any] = json.loads(completed.stdout)
        return outputs

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``python -m infra ARGS`` from the project directory, in the project's venv, after
        the README's one line (which names the backup key the stack's backups are sealed with).

        With ``check``, a failure raises with the command's own output, so the test report says
        what went wrong instead of only the exit status.
        """
        setup = f'eval "$(make -s -C {REPO} shellenv STACK={STACK} PROJECT_DIR={self.project})"'
        python = REPO / ".venv" / "bin" / "python"
        argv = ["bash", "-c", f'set -e; {setup}; exec {python} -m infra "$@"', "infra", *args]
        completed = _run(argv, cwd=self.project, env=self.env, timeout=900)
        if check and completed.returncode != 0:
            raise AssertionError(_failure(argv, completed))
        return completed

    def wait_for_verified_backups(
        self, since: datetime, parts: set[tuple[str, str]], timeout_s: float = 300
    ) -> None:
        """Until every (kind, service) in ``parts`` has a verified backup started after
        ``since`` (the stack's backup container runs every minute), read with ``list``."""
        deadline = time.monotonic() + timeout_s
        while True:
            listed = json.loads(
                self.cli("list", "--bucket", f"file://{self.backups}", "--json").stdout
            )
            fresh = {
                (item["kind"], item["service"])
                for item in listed
                if item["state"] == "verified"
                and datetime.fromisoformat(item["started_at"]) > since
            }
            if parts <= fresh:
                return
            if time.monotonic() > deadline:
                logs = docker("logs", "--tail", "40", f"{PREFIX}-backup", check=False)
                raise AssertionError(f"no fresh verified backup of {parts - fresh}\n{logs}")
            time.sleep(5)

    def env_files(self) -> dict[str, dict[str, str]]:
        """Each service's env file, as ``make up``/``make env`` wrote it (mode 0600)."""
        files: dict[str, dict[str, str]] = {}
        for spec in self.services:
            path = self.env_dir / "services" / f"{spec['name']}.env"
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
            files[spec["name"]] = dict(
                line.split("=", 1)
                for line in path.read_text(encoding="utf-8").splitlines()
                if line and not line.startswith("#")
            )
        return files


def _run(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float, *, echo: bool = True
) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        list(argv),
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if echo:
        sys.stdout.write(completed.stdout[-20000:])  # shown by pytest when the test fails
    return completed


def _failure(argv: Sequence[str], completed: subprocess.CompletedProcess[str]) -> str:
    return (
        f"{' '.join(argv)} exited {completed.returncode}\n"
        f"stdout:\n{completed.stdout[-6000:]}\nstderr:\n{completed.stderr[-4000:]}"
    )


def docker(*args: str, check: bool = True, timeout: float = 300) -> str:
    """The docker CLI; its stdout."""
    completed = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {completed.stderr.strip()}")
    return completed.stdout.strip()


def remove_leftovers() -> None:
    """Every container (running or not), volume and network carrying the e2e stack's label."""
    label = f"label=persistence.stack={PREFIX}"
    for name in docker("container", "ls", "-aq", "--filter", label).split():
        docker("container", "rm", "-f", name, check=False)
    # And by name: a volume Docker made itself for a container whose volume was removed by hand
    # (the failover test's disaster) carries no label.
    named = docker("volume", "ls", "-q", "--filter", f"name={PREFIX}-").split()
    for name in {*docker("volume", "ls", "-q", "--filter", label).split(), *named}:
        docker("volume", "rm", "-f", name, check=False)
    for name in docker("network", "ls", "-q", "--filter", label).split():
        docker("network", "rm", name, check=False)


def container_health(names: Sequence[str]) -> dict[str, str]:
    """``docker inspect``'s health (or state, for containers without a health check)."""
    found = {}
    for name in names:
        found[name] = docker(
            "inspect",
            "--format",
            "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
            name,
        )
    return found
