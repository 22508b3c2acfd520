"""Builds statements from the templates in ``sql/role_model.sql`` with psycopg.sql only.

Each Statement carries the query to run and a redacted text for plans, reports and errors:
password verifiers never appear in either text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from psycopg import sql

from infra.hashes import postgres_login_verifier
from infra.postgres.sqlfiles import template

REDACTED = sql.SQL("'[REDACTED]'")

# Keywords that may be spliced into statements; anything read from the catalog must map here.
KEYWORDS: dict[str, sql.SQL] = {
    word: sql.SQL(word)
    for word in [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "TRUNCATE",
        "REFERENCES",
        "TRIGGER",
        "USAGE",
        "CREATE",
        "CONNECT",
        "TEMPORARY",
        "EXECUTE",
        "MAINTAIN",
        "LOGIN",
        "NOLOGIN",
        "NOCREATEDB",
        "NOCREATEROLE",
        "INHERIT",
        "TABLE",
        "SEQUENCE",
        "TABLES",
        "SEQUENCES",
        "FUNCTIONS",
        "SCHEMAS",
        "PUBLIC",
    ]
}


def keyword(word: str) -> sql.SQL:
    """A whitelisted SQL keyword; a KeyError means the catalog showed something unexpected."""
    return KEYWORDS[word]


def privileges(words: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(keyword(word) for word in sorted(words))


def grantee(name: str) -> sql.Composable:
    """A role name, or the PUBLIC keyword."""
    return keyword("PUBLIC") if name == "PUBLIC" else sql.Identifier(name)


@dataclass(frozen=True)
class Statement:
    """One statement of a plan; ``database`` None means the admin connection's own database."""

    query: sql.Composed
    text: str
    database: str | None = None
    transactional: bool = True

    def __str__(self) -> str:
        return self.text


def build(
    name: str,
    *,
    in_database: str | None = None,
    transactional: bool = True,
    password: str | None = None,
    **parts: sql.Composable,
) -> Statement:
    """Fill template ``name``; ``password`` (plaintext) is sent as its SCRAM verifier
    (``hashes.postgres_login_verifier``, the one the pooler's auth file holds).

    ``in_database``: run over a connection to that database (None: the admin URL's database).
    """
    return fill(
        name, parts, in_database=in_database, transactional=transactional, password=password
    )


def fill(
    name: str,
    parts: Mapping[str, sql.Composable],
    *,
    in_database: str | None = None,
    transactional: bool = True,
    password: str | None = None,
) -> Statement:
    """``build`` with the template's parts given as one mapping (when they are composed)."""
    query_parts, shown = dict(parts), dict(parts)
    if password is not None:
        query_parts["password"] = sql.Literal(postgres_login_verifier(password))
        shown["password"] = REDACTED
    elif name == "create_role":
        query_parts["password"] = shown["password"] = sql.NULL
    query = template(name).format(**query_parts)
    text = " ".join(template(name).format(**shown).as_string().split())
    return Statement(query, text, in_database, transactional)
