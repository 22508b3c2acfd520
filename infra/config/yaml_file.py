"""Reading a stack file's YAML strictly: what PyYAML's SafeLoader lets through silently.

A key given twice (PyYAML keeps the last; Pulumi's own reader refuses it) and aliases that
expand a few lines into billions of values are refused here, before anything walks them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml


def read_yaml(text: str) -> Any:
    """The document in ``text``; DuplicateKeyError for a repeated key."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


class DuplicateKeyError(yaml.YAMLError):
    """A mapping names one key twice: YAML says keys are unique, PyYAML keeps the last."""

    def __init__(self, key: str, line: int, first: int) -> None:
        super().__init__(f"duplicate key {key!r} at line {line}")
        self.key, self.line, self.first = key, line, first


# libyaml's parser when PyYAML has it (it reads a 200-service stack file ten times faster, and
# every command reads one first); the same safe constructor either way.
if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader
else:
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class UniqueKeyLoader(_SafeLoader):
    """SafeLoader that refuses a repeated key, as Pulumi's own YAML reader does.

    Only explicit keys count: a key given after a ``<<`` merge overrides it on purpose.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKeyError(str(key), line, seen[key])
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


# A stack file holds hundreds of values; YAML aliases can make a few lines stand for billions
# (each alias is a reference, so they cost nothing until something walks them: the validator,
# or ``plan``'s JSON for the mocks, which a fork's pull request runs).
MAX_VALUES = 100_000


def expands_beyond(document: Any, limit: int) -> bool:
    """Whether walking ``document`` (aliases counted every time they occur) exceeds ``limit``
    values; stops as soon as it does, so the walk itself is bounded."""
    pending = [document]
    seen = 0
    while pending:
        value = pending.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False
