"""Our commands as a user runs them: ``python -m infra ...`` in a fresh process, start to exit.

Every benchmark times the command (what a person or a CI job waits for), not a library call:
the interpreter's start-up, imports, argument parsing, connections and the exit all count.
``run`` also gives the child's peak resident memory (``wait4``) and the moment each line of its
output appeared, so a benchmark can read "the service is back" off the command's own report.

The child's environment has no ``PERSISTENCE_*`` variable from the shell that runs the
benchmark: everything it needs is passed on its command line or in ``env``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    """One finished command: its wall time, peak memory and output lines with their times."""

    argv: list[str]
    seconds: float
    peak_rss_mb: float
    returncode: int
    lines: list[tuple[float, str]] = field(default_factory=list)  # (seconds since start, line)
    stderr: str = ""

    @property
    def stdout(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def first_line_with(self, text: str) -> float:
        """Seconds from start until the first output line containing ``text``."""
        for at, line in self.lines:
            if text in line:
                return at
        raise AssertionError(f"no line with {text!r} in the output of {' '.join(self.argv)}")


def clean_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the tool's own variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSISTENCE_")}
    env.pop("PGPASSWORD", None)
    return {**env, **(extra or {})}


def run(args: list[str], env: dict[str, str] | None = None, *, check: bool = True) -> Run:
    """``python -m infra ARGS`` in the repository, timed from spawn to exit."""
    argv = [sys.executable, "-m", "infra", *args]
    lines: list[tuple[float, str]] = []
    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        cwd=REPO,
        env=env if env is not None else clean_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = process.stdout, process.stderr
    assert out is not None
    assert err is not None
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.append(err.read()))
    reader.start()
    for line in out:
        lines.append((time.perf_counter() - started, line.rstrip("\n")))
    # wait4: this child's own rusage (RUSAGE_CHILDREN would mix in every earlier child).
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    done = Run(argv, seconds, usage.ru_maxrss / 1024, process.returncode, lines, "".join(errors))
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[:2])} exited {done.returncode}:\n{done.stdout[-2000:]}\n"
            f"{done.stderr[-2000:]}"
        )
    return done


def write_stack_file(path: Path, settings: dict[str, Any]) -> Path:
    """A ``Pulumi.<stack>.yaml`` holding ``settings`` under the ``persistence:`` namespace (the
    file ``--stack PATH`` reads)."""
    document = {"config": {f"persistence:{key}": value for key, value in settings.items()}}
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def best(times: list[float]) -> float:
    """The fastest of several runs: on a shared machine, noise only ever adds time."""
    return min(times)
