"""Turns plain YAML/JSON data into frozen dataclasses, collecting every problem with its path.

Each dataclass field may carry a ``rule`` in its metadata: a callable that returns ``None`` when
the value is acceptable, or a sentence saying what is allowed (with an accepted example). The
parser reports unknown keys (with a "did you mean"), missing required keys, wrong types and
rule failures, all at once, so a user fixes their stack file in one pass.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, get_args, get_origin

Rule = Callable[[Any], str | None]
T = TypeVar("T")


def setting(default: Any = dataclasses.MISSING, *, rule: Rule | None = None, doc: str = "") -> Any:
    """Declare a config field with an optional validation rule and a one-line description."""
    metadata = {"rule": rule, "doc": doc}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use tuples or dataclasses for defaults so config stays immutable")
    if dataclasses.is_dataclass(default) and not isinstance(default, type):
        factory = type(default)
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class Problems:
    """Accumulates problems as ``path: message`` lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.lines.append(f"{path}: {message}")


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin is tuple:
        return "a list"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp) if a is not type(None))
    return str(tp)


def _coerce(tp: Any, value: Any, path: str, problems: Problems) -> Any:
    """Check ``value`` against type ``tp``; return the converted value or None after a problem."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None and type(None) in get_args(tp):
            return None
        if len(args) == 1:
            return _coerce(args[0], value, path, problems)
    if origin is typing.Literal:
        if value in get_args(tp):
            return value
        problems.add(path, f"{value!r} is not allowed; use {_describe(tp)}")
        return None
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            problems.add(path, f"expected {_describe(tp)}, got {type(value).__name__}")
            return None
        return parse(tp, value, path, problems)  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(value, list | tuple):
            problems.add(path, f"expected a list, got {type(value).__name__}")
            return None
        (item_type, _ellipsis) = get_args(tp)
        items = [_coerce(item_type, v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
        return tuple(items)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str and isinstance(value, str):
        return value
    problems.add(path, f"expected {_describe(tp)}, got {value!r}")
    return None


def parse(cls: type[T], data: Mapping[str, Any], path: str, problems: Problems) -> T:
    """Build ``cls`` from ``data``; on any problem the result must not be used."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            allowed = ", ".join(sorted(fields))
            problems.add(_join(path, str(key)), f"unknown key{hint}; allowed keys: {allowed}")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key_path = _join(path, name)
        if name not in data:
            if (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                doc = field.metadata.get("doc", "")
                problems.add(key_path, f"required key is missing ({doc})" if doc else "required")
            continue
        before = len(problems.lines)
        value = _coerce(hints[name], data[name], key_path, problems)
        if len(problems.lines) > before:
            continue
        rule = field.metadata.get("rule")
        message = rule(value) if rule is not None and value is not None else None
        if message:
            problems.add(key_path, message)
            continue
        values[name] = value
    if len(values) < len([f for f in fields if f in data]) or problems.lines:
        return _unusable(cls)
    try:
        return cls(**values)
    except ValueError as error:  # cross-field checks in __post_init__
        problems.add(path or "(top level)", str(error))
        return _unusable(cls)


def _unusable(cls: type[T]) -> T:
    """A placeholder returned once a problem is recorded; callers raise before using it."""
    return typing.cast(T, None)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
