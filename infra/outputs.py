"""Every stack output, described in one place; the program exports through this table.

Like terraform's ``outputs.tf``: ``outputs.yaml`` gives each output's name, which platforms
export it, what it holds and whether it is a secret. ``export`` refuses an output missing from
the table (and one the table expects but the platform did not give), and marks the secret ones
secret, so the table, the program and the generated reference (``outputs_markdown``) cannot
drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DOCKER = "docker"
GCP = "gcp"
BOOTSTRAP = "bootstrap"
PLATFORMS = (DOCKER, GCP, BOOTSTRAP)


@dataclass(frozen=True)
class StackOutput:
    """One output: where it exists, what it holds, and whether it must stay secret."""

    name: str
    platforms: tuple[str, ...]
    description: str
    secret: bool = False


TABLE = Path(__file__).with_name("outputs.yaml")


def _load(path: Path = TABLE) -> tuple[StackOutput, ...]:
    """The table in outputs.yaml, in its order."""
    document: dict[str, dict[str, Any]] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return tuple(
        StackOutput(
            name=name,
            platforms=tuple(entry["platforms"]),
            description=entry["description"],
            secret=bool(entry.get("secret", False)),
        )
        for name, entry in document.items()
    )


OUTPUTS = _load()
BY_NAME = {output.name: output for output in OUTPUTS}


def for_platform(platform: str) -> tuple[StackOutput, ...]:
    """The outputs a stack of ``platform`` exports, in table order."""
    return tuple(output for output in OUTPUTS if platform in output.platforms)


def outputs_markdown() -> str:
    """The outputs as a Markdown table, for the generated configuration reference."""
    lines = ["| output | stacks | secret | description |", "|---|---|---|---|"]
    for output in OUTPUTS:
        platforms = ", ".join(output.platforms)
        secret = "yes" if output.secret else ""
        lines.append(f"| `{output.name}` | {platforms} | {secret} | {output.description} |")
    return "\n".join(lines) + "\n"
