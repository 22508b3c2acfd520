"""The one owner of Pulumi's Automation API: drive ``refresh`` and ``up`` of a stack from Python.

The stack runs exactly as ``pulumi up`` would from the project directory: the same Pulumi.yaml,
stack file, backend (``PULUMI_BACKEND_URL``) and secrets passphrase from the environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pulumi import automation

from infra.config.load import REPO_ROOT
from infra.errors import PlatformError


class EngineError(PlatformError):
    """The Pulumi engine could not be started or a stack operation failed."""


def select(stack: str, work_dir: Path = REPO_ROOT) -> automation.Stack:
    """The existing stack ``stack`` of the project in ``work_dir``; never creates one."""
    try:
        return automation.select_stack(stack_name=stack, work_dir=str(work_dir))
    except automation.errors.StackNotFoundError:
        raise EngineError(
            f"no Pulumi stack {stack!r} in {work_dir} for this backend; "
            f"create it first: pulumi stack init {stack}"
        ) from None
    except (automation.errors.CommandError, FileNotFoundError) as error:
        raise EngineError(f"could not start the Pulumi CLI: {_first_line(error)}") from None


def refresh_and_up(stack: automation.Stack, say: Callable[[str], Any]) -> dict[str, Any]:
    """Bring state in line with reality, then converge; return the stack's outputs (plain).

    ``say`` gets one line at a time, without its newline: the engine's output line by line
    (no colours, no progress dots, no carriage-return redraws), so a CI log reads like a
    terminal's scrollback instead of one endless line.
    """

    def lines(chunk: str) -> None:
        for line in chunk.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            if line.strip():
                say(line.rstrip())

    try:
        refreshed = stack.refresh(on_output=lines, color="never", suppress_progress=True)
        say(f"refresh: {_summary(refreshed.summary.resource_changes)}")
        updated = stack.up(on_output=lines, color="never", suppress_progress=True)
        say(f"up: {_summary(updated.summary.resource_changes)}")
    except automation.errors.CommandError as error:
        raise EngineError(f"pulumi failed: {_first_line(error)}") from None
    return {name: output.value for name, output in updated.outputs.items()}


def _summary(changes: Mapping[Any, int] | None) -> str:
    """``2 create, 9 same``: each operation kind with its count."""
    counts = {str(getattr(kind, "value", kind)): n for kind, n in (changes or {}).items()}
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no changes"


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if "error:" in line]
    return lines[-1] if lines else str(error).strip().splitlines()[0]


def record_config(stack: automation.Stack, path: str, value: str) -> None:
    """Set one value of the stack file by its path (``pulumi config set --path``), keeping the
    rest of the file as it is."""
    try:
        stack.set_config(path, automation.ConfigValue(value=value), path=True)
    except automation.errors.CommandError as error:
        raise EngineError(f"pulumi config set --path {path} failed: {_first_line(error)}") from None


def remove_config(stack: automation.Stack, path: str) -> None:
    """Remove one value of the stack file by its path (``pulumi config rm --path``)."""
    try:
        stack.remove_config(path, path=True)
    except automation.errors.CommandError as error:
        raise EngineError(f"pulumi config rm --path {path} failed: {_first_line(error)}") from None


def forget_missing(stack: automation.Stack, resources: list[tuple[str, str]]) -> int:
    """Refresh only ``resources`` (type, name), so that the ones removed by hand leave the state
    and the next ``up`` creates them again. Returns how many were refreshed."""
    state = stack.export_stack().deployment or {}
    urns = [
        str(resource["urn"])
        for resource in state.get("resources", [])
        if any(
            resource.get("type") == kind and str(resource["urn"]).endswith(f"::{name}")
            for kind, name in resources
        )
    ]
    if urns:
        try:
            stack.refresh(target=urns, color="never", suppress_progress=True)
        except automation.errors.CommandError as error:
            raise EngineError(f"pulumi refresh failed: {_first_line(error)}") from None
    return len(urns)
