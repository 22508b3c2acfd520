"""The end-to-end stack: this repository's program under the real Pulumi engine, isolated.

An ``E2eStack`` is a Pulumi project directory of its own (Pulumi.yaml copied; the entry
point, ``infra`` and ``.venv`` linked to this checkout), with its own stack file, ports,
container names, local state backend and PULUMI_HOME, so it never touches a developer's ``dev``
stack. It is driven through the Automation API, the same one ``python -m infra rebuild`` uses.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation

from tests.servers.process import free_port

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
    """One isolated stack of the real program; ``services`` is the list in its stack file."""

    def __init__(self, root: Path, images: Mapping[str, str]) -> None:
        self.root = root
        self.project = root / "project"
        self.backups = root / "backups"
        self.images = dict(images)
        self.ports = {name: free_port() for name in ("postgres", "redis", "amqp", "management")}
        self.services: list[dict[str, Any]] = [
            {"name": "orders", "extensions": ["pgcrypto"], "queues": [{"name": "orders.placed"}]},
            {"name": "billing", "connection_limits": {"app": 5, "migrator": 2, "readonly": 3}},
        ]
        self.env = self._environment()
        self._create_project()
        self.stack = automation.create_or_select_stack(
            stack_name=STACK,
            work_dir=str(self.project),
            opts=automation.LocalWorkspaceOptions(
                env_vars=self.env,
                pulumi_home=self.env["PULUMI_HOME"],
                pulumi_command=automation.PulumiCommand(root=str(ENGINE_BIN.parent)),
            ),
        )

    def _environment(self) -> dict[str, str]:
        return engine_environment(self.root)

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
        settings = {
            "platform": "docker",
            "services": self.services,
            "docker": {
                "ports": self.ports,
                "images": self.images,
                "backup_dir": str(self.backups),
                "memory_mb": {"postgres": 512, "redis": 128, "rabbitmq": 512, "backup": 256},
            },
            "postgres": {"shared_buffers_mb": 32},
            "backup": {"schedule": "* * * * *"},
        }
        document = {"config": {f"persistence:{key}": value for key, value in settings.items()}}
        text = yaml.safe_dump(document, sort_keys=False)
        (self.project / f"Pulumi.{STACK}.yaml").write_text(text, encoding="utf-8")

    # The engine's operations, each returning what it did per resource URN.

    def up(self) -> dict[str, str]:
        ops: dict[str, str] = {}
        self.stack.up(on_event=_collect(ops), color="never", on_output=_echo)
        return ops

    def preview_expecting_no_changes(self) -> None:
        self.stack.preview(expect_no_changes=True, color="never", on_output=_echo)

    def refresh_expecting_no_changes(self) -> None:
        self.stack.refresh(expect_no_changes=True, color="never", on_output=_echo)

    def destroy(self) -> None:
        self.stack.destroy(color="never", on_output=_echo)

    def make(self, target: str) -> subprocess.CompletedProcess[str]:
        """``make TARGET`` of this checkout, pointed at this stack (as a workflow runs it)."""
        return subprocess.run(
            [
                "make",
                "--no-print-directory",
                target,
                f"STACK={STACK}",
                f"PROJECT_DIR={self.project}",
            ],
            cwd=REPO,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    def outputs(self) -> dict[str, Any]:
        return {name: output.value for name, output in self.stack.outputs().items()}

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``python -m infra ARGS`` from the project directory, with the stack's environment.

        With ``check``, a failure raises with the command's own output, so the test report says
        what went wrong instead of only the exit status.
        """
        completed = subprocess.run(
            [sys.executable, "-m", "infra", *args],
            cwd=self.project,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if check and completed.returncode != 0:
            raise AssertionError(
                f"python -m infra {' '.join(args)} exited {completed.returncode}\n"
                f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
            )
        return completed

    def env_files(self, out: Path) -> dict[str, dict[str, str]]:
        """Each service's env file, written by ``python -m infra envfiles`` from the outputs."""
        import json

        completed = subprocess.run(
            [sys.executable, "-m", "infra", "envfiles", "--out", str(out)],
            input=json.dumps(self.outputs()["service_env"]),
            capture_output=True,
            text=True,
            check=True,
        )
        assert completed.returncode == 0, completed.stderr
        files: dict[str, dict[str, str]] = {}
        for spec in self.services:
            path = out / "services" / f"{spec['name']}.env"
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
            files[spec["name"]] = dict(
                line.split("=", 1)
                for line in path.read_text(encoding="utf-8").splitlines()
                if line and not line.startswith("#")
            )
        return files


def docker(*args: str, check: bool = True, timeout: float = 300) -> str:
    """The docker CLI; its stdout."""
    completed = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {completed.stderr.strip()}")
    return completed.stdout.strip()


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


def _collect(ops: dict[str, str]) -> Any:
    def on_event(event: automation.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is not None and pre.metadata is not None:
            ops[pre.metadata.urn] = str(getattr(pre.metadata.op, "value", pre.metadata.op))

    return on_event


def _echo(line: str) -> None:
    sys.stdout.write(line)
