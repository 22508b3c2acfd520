"""The configuration reference, generated from the model: one table per section.

Every key's type and default come from the dataclass field, what is allowed from its rule (or
its ``Literal`` type), and the description from its ``doc``, so the README's reference cannot
drift from what the loader accepts. ``python -m infra docs`` (``make docs``) writes it.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterator
from dataclasses import Field
from typing import Any, get_args, get_origin

from infra.config.model import PROJECT, StackConfig
from infra.config.rules import Rule
from infra.markdown import cell, table

HEADER = ["key", "type", "default", "allowed", "description"]


def sections(cls: type[Any] = StackConfig, path: str = "") -> Iterator[tuple[str, type[Any]]]:
    """Each settings class with its dotted path (``services[]``, ``backup.keep``), depth first."""
    yield path, cls
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        nested = _nested(hints[field.name])
        if nested is not None:
            suffix = "[]" if get_origin(hints[field.name]) is tuple else ""
            yield from sections(nested, f"{path}.{field.name}{suffix}".lstrip("."))


def config_reference() -> str:
    """The whole reference: a table for the top level, then one per section."""
    parts = []
    for path, cls in sections():
        title = f"`{PROJECT}:{path}`" if path else f"`{PROJECT}:` (top level)"
        intro = (cls.__doc__ or "").strip().split("\n\n")[0]
        parts.append(f"#### {title}\n\n{' '.join(intro.split())}\n\n{section_table(cls)}")
    return "\n\n".join(parts) + "\n"


def section_table(cls: type[Any]) -> str:
    """One row per key of ``cls``."""
    hints = typing.get_type_hints(cls)
    rows = []
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        doc = cell(field.metadata.get("doc", ""))
        rows.append([f"`{field.name}`", type_name(tp), default(field), allowed(field, tp), doc])
    return table(HEADER, rows)


def type_name(tp: Any) -> str:
    """``integer``, ``list of mappings``, ``number or null``... as a YAML author reads them."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(arg) for arg in get_args(tp) if arg is not type(None)) + (
            " or null" if type(None) in get_args(tp) else ""
        )
    if origin is tuple:
        item = type_name(get_args(tp)[0])
        return f"list of {item}s"
    if origin is typing.Literal:
        return "string"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    return names[tp]


def default(field: Field[Any]) -> str:
    """The default as YAML would spell it; ``required`` when there is none."""
    if field.default_factory is not dataclasses.MISSING:
        return "its keys' defaults"
    if field.default is dataclasses.MISSING:
        return "required"
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        return f"`{json.dumps(list(value))}`"
    return f"`{json.dumps(value)}`"


def allowed(field: Field[Any], tp: Any) -> str:
    """What the loader accepts, from the field's rule or its Literal type."""
    rule = field.metadata.get("rule")
    if isinstance(rule, Rule):
        return cell(rule.allowed)
    if get_origin(tp) is typing.Literal:
        return "one of " + ", ".join(f"`{choice}`" for choice in get_args(tp))
    if tp is bool:
        return "`true`, `false`"
    if _nested(tp) is not None:
        return "the keys in its own table"
    return "any"


def _nested(tp: Any) -> type[Any] | None:
    """The settings class a field holds (itself, or as list items), if any."""
    candidates = get_args(tp) if get_origin(tp) is tuple else (tp,)
    for candidate in candidates:
        if dataclasses.is_dataclass(candidate) and isinstance(candidate, type):
            return candidate
    return None
