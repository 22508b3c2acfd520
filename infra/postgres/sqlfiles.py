"""Loads the named SQL blocks kept in ``sql/`` so the SQL lives in SQL files, not in Python.

A block starts with ``-- name: <name>``; other ``--`` lines are documentation and are dropped.
Templates are returned as ``psycopg.sql.SQL`` so they can only be completed with
``sql.Identifier`` / ``sql.Literal`` (never by string formatting).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from psycopg import sql

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


@cache
def blocks(filename: str) -> dict[str, str]:
    """Every named block of ``sql/<filename>``, comment lines removed."""
    named: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in (SQL_DIR / filename).read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("-- name:"):
            current = named.setdefault(stripped.removeprefix("-- name:").strip(), [])
        elif stripped.startswith("--") or current is None:
            continue
        elif stripped:
            current.append(line.rstrip())
    return {name: "\n".join(lines).rstrip(";") for name, lines in named.items()}


def template(name: str) -> sql.SQL:
    """A statement template from ``sql/role_model.sql``."""
    return sql.SQL(blocks("role_model.sql")[name])


def query(name: str) -> sql.SQL:
    """A catalog query from ``sql/catalog.sql`` (values bound as %(name)s parameters)."""
    return sql.SQL(blocks("catalog.sql")[name])
