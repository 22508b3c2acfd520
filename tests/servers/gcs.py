"""The real GCS JSON API emulator (``gcp-storage-emulator``) on a free loopback port.

google-cloud-storage talks to it when STORAGE_EMULATOR_HOST is set, so the gs:// code paths run
unchanged against it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers.process import free_port, port_open, stop_process, wait_until

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"


@dataclass
class GcsEmulator:
    """One in-memory emulator process; ``bucket`` is created at start."""

    bucket: str = "backups"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GcsEmulator:
        executable = Path(sys.executable).with_name("gcp-storage-emulator")
        if not executable.exists():
            raise RuntimeError(f"{executable} missing: pip install gcp-storage-emulator")
        self.log_file = Path(tempfile.mkstemp(prefix="gcs-emulator-", suffix=".log")[1])
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [
                str(executable),
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--in-memory",
                "--default-bucket",
                self.bucket,
            ],
            stdout=log,
            stderr=log,
        )
        wait_until(
            lambda: port_open(self.port), 20, f"GCS emulator on port {self.port}", self.log_file
        )
        return self

    def environment(self) -> dict[str, str]:
        """What a client process needs to reach the emulator."""
        return {EMULATOR_ENV: self.endpoint}

    def install(self) -> None:
        """Point this process's google-cloud-storage clients at the emulator."""
        os.environ[EMULATOR_ENV] = self.endpoint

    def cleanup(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
        os.environ.pop(EMULATOR_ENV, None)
        self.log_file.unlink(missing_ok=True)
