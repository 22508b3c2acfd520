"""Loads the ``persistence:`` namespace from a stack file or from a running Pulumi program.

Both paths produce the same raw mapping and go through the same parser, so a stack that
``python -m infra`` accepts is exactly a stack that ``pulumi up`` accepts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from infra import naming
from infra.config.model import PROJECT, RABBITMQ_NODES_BUILT, StackConfig
from infra.config.reserved import name_collisions
from infra.config.rules import QUORUM_NODE_COUNTS
from infra.config.schema import Problems, parse
from infra.config.yaml_file import MAX_VALUES, DuplicateKeyError, expands_beyond, read_yaml
from infra.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]


def stack_file(stack: str, root: Path = REPO_ROOT) -> Path:
    """Where ``stack``'s config lives: ``Pulumi.<stack>.yaml`` at the repository root."""
    return root / f"Pulumi.{stack}.yaml"


def stack_path(stack: str, root: Path = REPO_ROOT) -> Path:
    """The file ``--stack`` means, for every command alike: a stack name (``dev``: the
    repository's ``Pulumi.dev.yaml``) or the path of a stack file (``ends in .yaml``, or has a
    ``/``)."""
    if is_path(stack):
        return Path(stack)
    return stack_file(stack, root)


def is_path(stack: str) -> bool:
    """Whether ``--stack`` was given as a stack file's path rather than a stack's name."""
    return stack.endswith((".yaml", ".yml")) or "/" in stack


def load_stack(stack: str, root: Path = REPO_ROOT) -> StackConfig:
    """Load and validate a stack by name (``dev``, ``prod``), or by the path of its stack file."""
    return load_file(stack_path(stack, root))


def stack_name(stack: str) -> str:
    """``dev`` for ``dev``, ``Pulumi.dev.yaml`` or ``some/dir/Pulumi.dev.yaml``."""
    name = Path(stack).name.removeprefix("Pulumi.")
    return name.removesuffix(".yaml").removesuffix(".yml")


def load_file(path: Path) -> StackConfig:
    """Load and validate one stack file; raise ConfigError naming the file and every bad key."""
    label = path.name
    if not path.is_file():
        raise ConfigError([f"{path}: no such stack file (expected Pulumi.<stack>.yaml)"])
    try:
        document = read_yaml(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise ConfigError(
            [f"{label}: not UTF-8 text (byte {error.start} is {error.object[error.start]:#04x})"]
        ) from None
    except OSError as error:
        raise ConfigError([f"{label}: cannot be read ({error.strerror})"]) from None
    except DuplicateKeyError as error:
        raise ConfigError(
            [
                f"{label}: line {error.line}: duplicate key {error.key!r} (first at line "
                f"{error.first}); each key may appear once in a mapping: remove one"
            ]
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            [f"{label}:{where}: not valid YAML ({error.__class__.__name__})"]
        ) from None
    if expands_beyond(document, MAX_VALUES):
        raise ConfigError(
            [
                f"{label}: expands to more than {MAX_VALUES} values through YAML aliases (an "
                "alias bomb?); write the values out instead of nesting aliases"
            ]
        )
    if not isinstance(document, Mapping) or not isinstance(document.get("config", {}), Mapping):
        raise ConfigError([f"{label}: expected a mapping with a 'config:' section"])
    return from_raw(namespace(document.get("config") or {}), label)


def load_pulumi() -> StackConfig:
    """Load the running Pulumi stack's config (real engine or ``pulumi.runtime.set_mocks``)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    raw = {}
    for key, value in namespace(merged).items():
        raw[key] = _decode(value)
    return from_raw(raw, f"Pulumi.{pulumi.get_stack()}.yaml")


def namespace(config: Mapping[str, Any]) -> dict[str, Any]:
    """The keys under ``persistence:``, with the prefix removed."""
    prefix = f"{PROJECT}:"
    return {k[len(prefix) :]: v for k, v in config.items() if str(k).startswith(prefix)}


def from_raw(raw: Mapping[str, Any], label: str) -> StackConfig:
    """Validate a raw namespace mapping; ``label`` names the stack file in messages."""
    problems = Problems()
    config = parse(StackConfig, raw, "", problems)
    _platform_keys(raw, problems)
    _collisions(raw, problems)
    name_collisions(raw, problems)
    if problems.lines:
        raise ConfigError([f"{label}: {PROJECT}:{line}" for line in problems.lines])
    return config


SERVICE_PLATFORMS = ("docker", "gcp")


def _platform_keys(raw: Mapping[str, Any], problems: Problems) -> None:
    """Which sections each platform needs or refuses, so a stack file never carries dead keys.

    Checked on the raw data, next to every other problem; ``platform`` itself is checked by
    the parser.
    """
    platform = raw.get("platform")
    _rabbitmq_nodes(raw, platform, problems)
    if platform in SERVICE_PLATFORMS:
        if "services" not in raw:
            problems.add(
                "services", "required key is missing (a list of services, e.g. [{name: users}])"
            )
        if "bootstrap" in raw:
            problems.add(
                "bootstrap",
                f"only platform 'bootstrap' reads this section, not {platform!r}; remove it "
                "(it belongs in Pulumi.bootstrap.yaml)",
            )
    elif platform == "bootstrap":
        if "services" in raw:
            problems.add(
                "services",
                "platform 'bootstrap' declares no services; remove this key (services live in "
                "Pulumi.dev.yaml and Pulumi.prod.yaml)",
            )
        section = raw.get("bootstrap")
        if not isinstance(section, Mapping) or not section.get("github_repository"):
            problems.add(
                "bootstrap.github_repository",
                "required for platform 'bootstrap': the repository whose workflows may "
                "authenticate (e.g. 'example-org/persistence')",
            )


def _rabbitmq_nodes(raw: Mapping[str, Any], platform: Any, problems: Problems) -> None:
    """A node count the rule accepts but the platform cannot build yet is refused, not ignored:
    a stack that says 3 must never quietly run 1."""
    section = raw.get("rabbitmq")
    nodes = section.get("nodes") if isinstance(section, Mapping) else None
    built = RABBITMQ_NODES_BUILT.get(platform) if isinstance(platform, str) else None
    if (
        built is None
        or not isinstance(nodes, int)
        or isinstance(nodes, bool)
        or nodes not in QUORUM_NODE_COUNTS
        or nodes in built
    ):
        return
    can = " or ".join(str(n) for n in built)
    problems.add(
        "rabbitmq.nodes",
        f"platform {platform!r} cannot build a {nodes}-node RabbitMQ cluster yet (it builds "
        f"{can} for now); remove the key or set it to {built[-1]} "
        f"(e.g. rabbitmq: {{nodes: {built[-1]}}})",
    )


def _collisions(raw: Mapping[str, Any], problems: Problems) -> None:
    """Names must be unique (services, queues, generated queues).

    Checked on the raw data, so these show up next to every other problem in one run.
    """
    services = raw.get("services")
    if isinstance(services, list) and not services and raw.get("platform") != "bootstrap":
        problems.add("services", "list at least one service, e.g. [{name: users}]")
    if not isinstance(services, list):
        return
    _report_repeats(
        [s.get("name") if isinstance(s, Mapping) else None for s in services],
        "services[{}].name",
        "service",
        problems,
    )
    for index, service in enumerate(services):
        queues = service.get("queues") if isinstance(service, Mapping) else None
        if isinstance(queues, list):
            queue_names = [q.get("name") if isinstance(q, Mapping) else None for q in queues]
            path = f"services[{index}].queues[{{}}].name"
            _report_repeats(queue_names, path, "queue", problems)
            _report_generated(service, queue_names, path, problems)


def _report_repeats(names: list[Any], path: str, what: str, problems: Problems) -> None:
    seen: dict[Any, int] = {}
    for index, name in enumerate(names):
        if name is None or not isinstance(name, str):
            continue
        if name in seen:
            problems.add(
                path.format(index),
                f"duplicate {what} {name!r} (already at {path.format(seen[name])}); "
                f"each {what} must be listed once",
            )
        else:
            seen[name] = index


def _decode(value: Any) -> Any:
    """Pulumi passes structured config as JSON text and plain strings as themselves."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _report_generated(
    service: Mapping[str, Any], queue_names: list[Any], path: str, problems: Problems
) -> None:
    """A configured queue may not take the name of the queue we generate for dead letters."""
    name = service.get("name")
    if not isinstance(name, str):
        return
    generated = naming.dead_letter_queue(name)
    for index, queue in enumerate(queue_names):
        if queue == generated:
            problems.add(
                path.format(index),
                f"{queue!r} is the service's generated dead-letter queue; choose another name "
                f"(e.g. '{name}.failed')",
            )
