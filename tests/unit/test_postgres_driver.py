"""The one owner of PostgreSQL connections: URLs and error messages, no server needed."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from infra.errors import ServerError, UsageError
from infra.postgres import driver

URL = "postgresql://admin:s3cret-pw@db.example:6543/postgres?sslmode=require"


def test_url_with_replaces_only_what_it_is_given() -> None:
    changed = conninfo_to_dict(driver.url_with(URL, user="users__tool", password="other"))
    assert changed["user"] == "users__tool"
    assert changed["password"] == "other"
    assert (changed["host"], changed["port"], changed["dbname"]) == (
        "db.example",
        "6543",
        "postgres",
    )
    assert changed["sslmode"] == "require"


def test_an_unparsable_url_is_the_users_mistake_with_an_example() -> None:
    with pytest.raises(UsageError, match="postgresql://USER:PASSWORD@HOST:PORT/postgres"):
        driver.params("not a url at all")


def test_a_refused_connection_is_one_line_without_the_password() -> None:
    refused = "postgresql://admin:s3cret-pw@127.0.0.1:1/postgres?connect_timeout=2"
    with pytest.raises(ServerError) as caught:
        driver.connect(refused)
    text = str(caught.value)
    assert "s3cret-pw" not in text
    assert "admin@127.0.0.1:1/postgres" in text
    assert "\n" not in text


def test_a_server_message_is_scrubbed_of_the_password() -> None:
    error = psycopg.OperationalError("could not connect: password=s3cret-pw rejected\nDETAIL")
    assert driver.message(error, URL) == "could not connect: password=******** rejected"


@pytest.mark.parametrize("value", ["soon", "0", "-5"])
def test_a_bad_lock_timeout_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(driver.LOCK_TIMEOUT_ENV, value)
    with pytest.raises(UsageError, match=rf"^PERSISTENCE_LOCK_TIMEOUT_S='{value}' .* e\.g\. 30"):
        driver.lock_timeout_s()


def test_the_lock_timeout_defaults_to_thirty_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(driver.LOCK_TIMEOUT_ENV, raising=False)
    assert driver.lock_timeout_ms() == 30_000
    monkeypatch.setenv(driver.LOCK_TIMEOUT_ENV, "2.5")
    assert driver.lock_timeout_ms() == 2_500
