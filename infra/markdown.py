"""Markdown for generated reference pages: tables, and sections rewritten in place.

A generated section sits between ``<!-- NAME -->`` and ``<!-- /NAME -->``; rewriting it leaves
every other line of the page as it was, so people edit the prose and generators own the tables.
"""

from __future__ import annotations

import re


def cell(text: str) -> str:
    """Text safe inside a table cell: pipes escaped, on one line."""
    return " ".join(text.split()).replace("|", "\\|")


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table: one header row, then ``rows``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markers(name: str) -> tuple[str, str]:
    """The comments that open and close the generated section ``name``."""
    return f"<!-- {name} -->", f"<!-- /{name} -->"


def replace_section(text: str, name: str, markdown: str, *, append: bool = False) -> str:
    """``text`` with section ``name`` holding ``markdown``.

    A missing section is appended when ``append``, else a ValueError: a page whose markers
    were deleted by hand must not silently lose its generated part.
    """
    begin, end = markers(name)
    block = f"{begin}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _match: block, text)
    if not append:
        raise ValueError(f"no section {begin} ... {end} to rewrite")
    return text.rstrip("\n") + "\n\n" + block + "\n"
