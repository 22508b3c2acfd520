"""Which version a Redis backup's manifest records: the server's own, whichever engine it is."""

from __future__ import annotations

from infra.backup.dump import redis_server_version

VALKEY_8_0 = (
    "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n"
    "redis_git_sha1:00000000\r\n"
)
REDIS_7_0 = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n"


def test_valkey_records_its_own_version_not_the_compatibility_one() -> None:
    assert redis_server_version(VALKEY_8_0) == "8.0.1"


def test_redis_records_redis_version() -> None:
    assert redis_server_version(REDIS_7_0) == "7.0.15"


def test_no_version_line_is_unknown() -> None:
    assert redis_server_version("# Server\r\n") == "unknown"
