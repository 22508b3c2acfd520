"""Writes a benchmark's latest table into benchmarks/README.md, between its own markers.

Each benchmark owns one section, fenced by ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``;
``make bench`` rewrites every section, so the README always holds the table of the last run.
A section that is missing is appended, so a new benchmark needs no hand edit of the README.
"""

from __future__ import annotations

from pathlib import Path

from infra import atomic_file
from infra.markdown import replace_section
from infra.markdown import table as table

README = Path(__file__).with_name("README.md")


def write_section(name: str, markdown: str, readme: Path = README) -> None:
    """Replace (or append) the section ``name`` of the README with ``markdown``."""
    text = readme.read_text() if readme.exists() else "# Benchmarks\n"
    atomic_file.write_text(
        readme, replace_section(text, f"bench:{name}", markdown, append=True), 0o644
    )
