"""A Docker engine for the end-to-end tests: the one already answering, or one started here.

``ensure_docker()`` returns a handle whose ``stop()`` ends only a ``dockerd`` this module
started (by its PID), never an engine that was already running::

    engine = ensure_docker()
    try:
        ...
    finally:
        engine.stop()
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

# `docker info` on a live engine answers in well under a second; a hung socket must not hang us.
INFO_TIMEOUT_S = 15.0
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0


class DockerUnavailableError(Exception):
    """No Docker engine can be used; the message (one line) says why and what to do."""


def docker_answers() -> bool:
    """Whether ``docker info`` reaches an engine (the one DOCKER_HOST or the default names)."""
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=INFO_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return info.returncode == 0


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"


@dataclass
class DockerEngine:
    """A usable engine; ``process`` is set only when this module started ``dockerd``."""

    process: subprocess.Popen[bytes] | None = None
    log_file: Path | None = None

    @property
    def started_here(self) -> bool:
        return self.process is not None

    def stop(self) -> None:
        """End the dockerd started here (SIGTERM, then SIGKILL); a no-op for a found engine."""
        if self.process is None:
            return
        if self.process.poll() is None:
            # SIGTERM lets dockerd stop its containers and the containerd it spawned itself.
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        """Stop the dockerd started here and start a new one; containers follow their policy."""
        if self.process is None:
            raise DockerUnavailableError(
                "this engine was not started by the tests; restarting it would disturb others"
            )
        self.stop()
        fresh = ensure_docker()
        self.process, self.log_file = fresh.process, fresh.log_file

    def __enter__(self) -> DockerEngine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def ensure_docker(timeout_s: float = START_TIMEOUT_S) -> DockerEngine:
    """An engine that answers ``docker info``: the running one, else a ``dockerd`` started now.

    The started engine uses dockerd's defaults (data root /var/lib/docker, overlay2, iptables,
    the default bridge) and logs to a temporary file named in any error.
    """
    if shutil.which("docker") is None:
        raise DockerUnavailableError("docker not found on PATH: apt-get install -y docker.io")
    if docker_answers():
        return DockerEngine()
    if os.environ.get("DOCKER_HOST"):
        # Starting a local engine would not help a client pointed elsewhere.
        raise DockerUnavailableError(f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer")
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise DockerUnavailableError(
            "the Docker engine is not running and dockerd is not on PATH: "
            "apt-get install -y docker.io"
        )
    if os.geteuid() != 0:
        raise DockerUnavailableError(
            "the Docker engine is not running and starting dockerd needs root"
        )
    handle, name = tempfile.mkstemp(prefix="persistence-e2e-dockerd-", suffix=".log")
    log_file = Path(name)
    with os.fdopen(handle, "wb") as log:
        # A session of its own: a Ctrl-C in the test run does not reach dockerd, which is
        # stopped by stop() instead, after the tests' containers are gone.
        process = subprocess.Popen(
            [dockerd], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    engine = DockerEngine(process=process, log_file=log_file)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DockerUnavailableError(
                f"dockerd exited with code {process.returncode}: {_last_line(log_file)} "
                f"(log: {log_file})"
            )
        if docker_answers():
            return engine
        time.sleep(0.5)
    engine.stop()
    raise DockerUnavailableError(
        f"dockerd did not answer within {timeout_s:.0f}s: {_last_line(log_file)} (log: {log_file})"
    )
