"""The tooling database under a bad day: created by several runs at once (Pulumi provisions
services in parallel, each in its own process on the first `make up`), and a creator killed
between creating it closed and opening it."""

from __future__ import annotations

import threading

import pytest

from infra.postgres import registry
from tests.integration.postgres_support import catalog
from tests.servers.postgres import PostgresServer

TOOLING = "persistence_tooling"
RUNS = 8
ROUNDS = 5  # a race lost once in a few rounds is still a bug


@pytest.fixture
def no_tooling_database(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server as before the first apply; this process has checked nothing yet."""
    postgres.superuser_psql(f"DROP DATABASE IF EXISTS {TOOLING} WITH (FORCE)")
    monkeypatch.setattr(registry, "_ready", set())


def _is_closed_to_public(postgres: PostgresServer) -> bool:
    query = "SELECT has_database_privilege('public', {db}, 'CONNECT')"
    return catalog(postgres, query, db=TOOLING) == "f"


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_runs_creating_it_at_the_same_moment_all_succeed(
    postgres: PostgresServer,
    no_tooling_database: None,
    monkeypatch: pytest.MonkeyPatch,
    round_: int,
) -> None:
    start = threading.Barrier(RUNS)
    failures: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            registry.ensure(postgres.admin_url)
        except BaseException as error:  # every failure is the finding
            failures.append(error)

    # Each run checks for itself, as separate processes would.
    monkeypatch.setattr(registry, "_ready", _Forgetful())
    threads = [threading.Thread(target=run) for _ in range(RUNS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, f"{len(failures)} of {RUNS} concurrent runs failed: {failures[0]!r}"
    assert _is_closed_to_public(postgres)


def test_a_creator_killed_before_opening_it_is_finished_by_the_next_run(
    postgres: PostgresServer, no_tooling_database: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "OPEN_WAIT_S", 1.0)  # how long a creator may take to open it
    # What a run killed right after CREATE DATABASE ... ALLOW_CONNECTIONS false leaves behind.
    admin = postgres.admin_user
    postgres.superuser_psql(f"CREATE DATABASE {TOOLING} OWNER {admin} ALLOW_CONNECTIONS false")
    registry.ensure(postgres.admin_url)
    with registry.tooling_session(postgres.admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM public.databases").fetchone() == (0,)
    assert _is_closed_to_public(postgres)


class _Forgetful(set[str]):
    """A ``_ready`` that never remembers: every call checks the server again."""

    def add(self, element: str) -> None:
        pass
