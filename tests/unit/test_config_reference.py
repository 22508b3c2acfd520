"""Every config key is documented where it is declared, and the README's reference is current."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from infra import cli
from infra.commands.docs import README, generated
from infra.config.reference import config_reference, sections
from infra.config.rules import Rule
from infra.markdown import markers
from infra.outputs import outputs_markdown

FIELDS = [(path, field) for path, cls in sections() for field in dataclasses.fields(cls)]


def _key(path: str, field: dataclasses.Field[typing.Any]) -> str:
    return f"{path}.{field.name}".lstrip(".")


def test_the_model_is_walked_whole() -> None:
    keys = {_key(path, field) for path, field in FIELDS}
    assert {"platform", "services[].queues[].max_length", "backup.keep.monthly"} <= keys
    assert len(keys) == len(FIELDS) > 90


@pytest.mark.parametrize(("path", "field"), FIELDS, ids=[_key(p, f) for p, f in FIELDS])
def test_every_field_has_a_description(path: str, field: dataclasses.Field[typing.Any]) -> None:
    doc = field.metadata.get("doc", "")
    assert len(doc.split()) >= 3, f"{_key(path, field)}: say what it does (and its unit)"


@pytest.mark.parametrize(("path", "field"), FIELDS, ids=[_key(p, f) for p, f in FIELDS])
def test_every_rule_says_what_it_allows(path: str, field: dataclasses.Field[typing.Any]) -> None:
    rule = field.metadata.get("rule")
    if rule is not None:
        assert isinstance(rule, Rule), f"{_key(path, field)}: wrap the check in rules.Rule"
        assert rule.allowed.strip(), _key(path, field)


def test_every_key_is_a_row_of_the_reference() -> None:
    reference = config_reference()
    for path, field in FIELDS:
        assert f"| `{field.name}` |" in reference.split(f"`persistence:{path}`", 1)[1]
    assert "| `max_connections` | integer | `300` | 25 to 10000 |" in reference
    assert '| `type` | string | `"quorum"` | one of `quorum`, `classic` |' in reference


def test_the_readme_reference_is_up_to_date() -> None:
    text = README.read_text(encoding="utf-8")
    assert generated(text) == text, "README.md's configuration reference is stale: run make docs"


def test_docs_rewrites_only_its_section_and_check_tells_stale_from_fresh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    begin, end = markers("config-reference")
    outputs_begin, outputs_end = markers("outputs-reference")
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# Title\n\nprose before\n\n{begin}\nstale table\n{end}\n\n"
        f"{outputs_begin}\nstale outputs\n{outputs_end}\n\nprose after\n"
    )
    assert cli.main(["docs", "--readme", str(readme), "--check"]) == 1
    assert cli.main(["docs", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\nprose before\n\n")
    assert text.endswith(f"{outputs_end}\n\nprose after\n")
    assert "stale table" not in text
    assert "stale outputs" not in text
    assert config_reference().strip() in text
    assert outputs_markdown().strip() in text
    assert cli.main(["docs", "--readme", str(readme), "--check"]) == 0
    capsys.readouterr()


def test_a_readme_without_the_markers_is_one_clean_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n")
    assert cli.main(["docs", "--readme", str(readme)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: README.md: no section <!-- config-reference -->")
    assert readme.read_text() == "# Title\n"
