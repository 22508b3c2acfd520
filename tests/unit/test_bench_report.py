"""The benchmark README writer: sections are replaced in place, never duplicated or lost."""

from __future__ import annotations

from pathlib import Path

from benchmarks.report import table, write_section


def test_a_section_is_appended_once_then_replaced_in_place(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\nintro\n")
    write_section("restore", "old table", readme)
    write_section("converge", "converge table", readme)
    write_section("restore", "new table", readme)
    text = readme.read_text()
    assert text.count("<!-- bench:restore -->") == 1
    assert "old table" not in text
    assert "new table" in text
    assert text.index("new table") < text.index("converge table")
    assert text.startswith("# Benchmarks\n\nintro\n")


def test_table_has_one_separator_cell_per_column() -> None:
    lines = table(["a", "b", "c"], [["1", "2", "3"]]).splitlines()
    assert lines[1].count("---") == 3
    assert lines[2] == "| 1 | 2 | 3 |"
