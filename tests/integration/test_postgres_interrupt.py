"""An apply interrupted at any point (an error, or its connection killed) is finished by the next.

Each case uses its own fresh service so it starts from nothing; the engine runs as the
non-superuser admin, and the result is checked through real logins.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

from infra import postgres as pg_engine
from infra.config import StackConfig
from infra.config.model import ServiceSpec
from infra.credentials import Credentials
from infra.errors import ServerError
from infra.postgres.statements import Statement
from tests.integration.postgres_support import catalog, login_error
from tests.servers.postgres import PostgresServer

Rendered = tuple[Path, Credentials]


class CrashError(Exception):
    """Stands in for a crash of the process running apply."""


def one_service(config: StackConfig, name: str) -> StackConfig:
    return replace(config, services=(ServiceSpec(name=name, extensions=("pgcrypto",)),))


def interrupt_at(index: int, action: Callable[[], None]) -> Callable[[Statement], None]:
    seen = []

    def hook(statement: Statement) -> None:
        seen.append(statement)
        if len(seen) == index:
            action()

    return hook


def statements_from_empty(
    server: PostgresServer, config: StackConfig, credentials: Credentials
) -> list[str]:
    return [s.text for s in pg_engine.plan(server.admin_url, config, credentials).statements]


def crash() -> None:
    raise CrashError


@pytest.mark.parametrize(
    "where", ["first", "middle-of-roles", "create-database", "first-in-database", "last"]
)
@pytest.mark.parametrize("how", ["crash", "connection-killed"])
def test_an_interrupted_apply_is_finished_by_the_next(
    postgres: PostgresServer,
    dev_config: StackConfig,
    dev_rendered: Rendered,
    where: str,
    how: str,
) -> None:
    name = f"cut_{where.replace('-', '_')}_{how.replace('-', '_')}"
    config = one_service(dev_config, name)
    credentials = dev_rendered[1].completed_for(config)
    planned = statements_from_empty(postgres, config, credentials)
    create = planned.index(f'CREATE DATABASE "{name}" OWNER "{name}_owner" ALLOW_CONNECTIONS false')
    index = {
        "first": 1,
        "middle-of-roles": create // 2,
        "create-database": create + 1,
        "first-in-database": create + 2,
        "last": len(planned),
    }[where]

    def kill() -> None:
        catalog(
            postgres,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE usename = {admin} AND pid <> pg_backend_pid()",
            admin=dev_config.postgres.admin_user,
        )

    hook = interrupt_at(index, crash if how == "crash" else kill)
    with pytest.raises(CrashError if how == "crash" else ServerError):
        pg_engine.apply(postgres.admin_url, config, credentials, on_statement=hook)

    finished = pg_engine.apply(postgres.admin_url, config, credentials)
    assert finished.executed, "the second apply must have had something left to do"
    assert pg_engine.apply(postgres.admin_url, config, credentials).executed == ()
    passwords = credentials.for_service(name)
    for kind in ("migrator", "app", "readonly"):
        # pg_hba.conf only lists the stack's own services over TCP, so log in over the socket.
        url = make_conninfo(
            host=str(postgres.socket_dir),
            port=postgres.port,
            dbname=name,
            user=f"{name}_{kind}",
            password=passwords.postgres_password(kind),
        )
        assert login_error(url) is None, f"{kind} cannot log in after the finishing apply"
    owner = catalog(
        postgres,
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = {name}",
        name=name,
    )
    assert owner == f"{name}_owner"


def test_services_converge_in_parallel_like_pulumi_runs_them(
    postgres: PostgresServer, dev_config: StackConfig, dev_rendered: Rendered
) -> None:
    """Pulumi creates one provisioning resource per service concurrently; none may trip another."""
    names = [f"parallel_{i}" for i in range(6)]
    config = replace(dev_config, services=tuple(ServiceSpec(name=name) for name in names))
    credentials = dev_rendered[1].completed_for(config)
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        reports = list(
            pool.map(
                lambda name: pg_engine.apply(
                    postgres.admin_url, config, credentials, services=[name]
                ),
                names,
            )
        )
    assert [report.changed for report in reports] == [(name,) for name in names]
    assert pg_engine.apply(postgres.admin_url, config, credentials).executed == ()
