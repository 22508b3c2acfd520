"""Writes a benchmark's latest table into benchmarks/README.md, between its own markers.

Each benchmark owns one section, fenced by ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``;
``make bench`` rewrites every section, so the README always holds the table of the last run.
A section that is missing is appended, so a new benchmark needs no hand edit of the README.
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).with_name("README.md")


def write_section(name: str, markdown: str, readme: Path = README) -> None:
    """Replace (or append) the section ``name`` of the README with ``markdown``."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = readme.read_text() if readme.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _match: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    readme.write_text(text)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table: one header row, then ``rows``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
