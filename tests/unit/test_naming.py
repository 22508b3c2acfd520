"""The 63-byte budget for service names is computed from the one list of derived names."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from infra import naming
from infra.config import rules
from infra.config.model import ConnectionLimits


def postgres_names(service: str) -> list[str]:
    """Every PostgreSQL identifier the platform derives from a service name."""
    return [
        naming.database_name(service),
        *(naming.role_name(service, kind) for kind in naming.ROLE_SUFFIXES),
        naming.tool_login(service),
        *naming.scratch_databases(service),
        naming.old_copy(service, datetime.max),
    ]


def test_every_derived_suffix_is_in_the_list_the_budget_is_computed_from() -> None:
    suffixes = {name.removeprefix("svc") for name in postgres_names("svc")} - {""}
    assert suffixes == set(naming.DERIVED_SUFFIXES)


def test_the_longest_name_of_a_longest_service_is_exactly_the_limit() -> None:
    longest = "a" * naming.MAX_SERVICE_NAME_BYTES
    sizes = {name: len(name.encode()) for name in postgres_names(longest)}
    assert max(sizes.values()) == naming.POSTGRES_IDENTIFIER_BYTES, sizes
    assert rules.service_name(longest) is None
    refused = rules.service_name(longest + "a")
    assert refused is not None
    assert f"at most {naming.MAX_SERVICE_NAME_BYTES} bytes" in refused
    assert naming.LONGEST_SUFFIX in refused


def test_old_copies_are_named_by_the_time_format_the_budget_counts() -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7)
    assert naming.old_copy("users", moment) == "users__old_20260304050607"
    assert len(naming.old_copy("users", moment)) == len(naming.old_copy("users", datetime.max))


def test_connection_limits_have_one_field_per_login_kind() -> None:
    fields = tuple(field.name for field in dataclasses.fields(ConnectionLimits))
    assert sorted(fields) == sorted(naming.LOGIN_SUFFIXES)
    assert set(naming.ROLE_SUFFIXES) == {naming.OWNER_KIND, *naming.LOGIN_SUFFIXES}
