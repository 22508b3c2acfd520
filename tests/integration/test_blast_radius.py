"""One service can never block the tooling's work for the others (issue 20, class 3).

Every attack runs through a service's real logins on a real PostgreSQL 15, as a compromised
service would: it rewrites its database's comment, makes it a template, takes the tool's old
advisory locks in ``postgres`` (PUBLIC may connect there; the dev pg_hba.conf keeps service
logins out only over TCP, so the attack goes over the socket, as on a server without our
pg_hba), and holds ACCESS EXCLUSIVE on its own tables with ``statement_timeout = 0``. Lock waits
are bounded at 2 s here (``PERSISTENCE_LOCK_TIMEOUT_S``); each command must finish the other
services and exit non-zero naming the one that failed.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra import naming
from infra.backup import fetch, pg
from infra.config import StackConfig
from infra.credentials import Credentials
from infra.errors import ServerError
from infra.postgres import apply, plan, registry
from tests.integration.backup_helpers import cli, login_url, seed
from tests.integration.postgres_support import catalog
from tests.servers.postgres import PostgresServer

Rendered = tuple[Path, Credentials]
BOUND_S = 2
# Long enough for a command to finish every other service; short enough that a hang fails fast.
FINISH_WITHIN_S = 60
TOOLING = "persistence_tooling"


@pytest.fixture(autouse=True)
def short_lock_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSISTENCE_LOCK_TIMEOUT_S", str(BOUND_S))


@pytest.fixture(scope="module")
def converged(
    postgres: PostgresServer, dev_config: StackConfig, dev_rendered: Rendered
) -> Credentials:
    _, credentials = dev_rendered
    apply(postgres.admin_url, dev_config, credentials)
    return credentials


def _socket_url(server: PostgresServer, credentials: Credentials, service: str, db: str) -> str:
    """The service's migrator over the server's socket (the dev pg_hba's ``local all all``)."""
    password = credentials.for_service(service).postgres_password("migrator")
    user = naming.role_name(service, "migrator")
    return (
        f"host={server.socket_dir} port={server.port} user={user} password={password} dbname={db}"
    )


@contextmanager
def migrator_holding_lock(
    server: PostgresServer, credentials: Credentials, service: str, table: str
) -> Iterator[None]:
    """The service's migrator holds ACCESS EXCLUSIVE on ``table`` with no timeout of its own."""
    conn = psycopg.connect(login_url(server, credentials, service, "migrator"))
    try:
        conn.execute("SET statement_timeout = 0")
        conn.execute(f"SET ROLE {naming.role_name(service, 'migrator')}")  # the login itself
        conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        conn.close()


def _finishes(run: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``run`` in a thread; fail (instead of hanging) if it does not finish in time."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(run())
        except BaseException as error:
            errors.append(error)

    started = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(FINISH_WITHIN_S)
    seconds = time.monotonic() - started
    assert not thread.is_alive(), f"still waiting after {FINISH_WITHIN_S} s: no bound on a lock"
    if errors:
        raise errors[0]
    return result[0], seconds


def _says(err: str, *parts: str) -> None:
    missing = [part for part in parts if part not in err]
    assert not missing, f"{missing} not in: {err}"


def test_no_service_login_can_reach_the_tooling_database(
    postgres: PostgresServer, converged: Credentials, dev_config: StackConfig
) -> None:
    """Not by privilege (Cloud SQL has no pg_hba.conf) and not by a real login."""
    for spec in dev_config.services:
        for kind in (*naming.LOGIN_SUFFIXES, naming.OWNER_KIND):
            role = naming.role_name(spec.name, kind)
            may = postgres.superuser_psql(
                f"SELECT has_database_privilege('{role}', '{TOOLING}', 'CONNECT')"
            )
            assert may == "f", f"{role} may connect to {TOOLING}"
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(_socket_url(postgres, converged, "users", TOOLING)).close()
    owner = catalog(
        postgres, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = {db}", db=TOOLING
    )
    assert owner == dev_config.postgres.admin_user


def test_the_tools_old_locks_taken_by_a_service_block_nothing(
    postgres: PostgresServer, converged: Credentials, dev_config: StackConfig
) -> None:
    """The migrator takes every advisory lock the tool used to take in ``postgres``."""
    conn = psycopg.connect(_socket_url(postgres, converged, "users", "postgres"), autocommit=True)
    try:
        conn.execute("SELECT pg_advisory_lock(x'7E57'::int, 0)")  # the old apply lock
        for key in ("users", "restore:users", "tool:users", "apply"):
            conn.execute("SELECT pg_advisory_lock(x'7E57'::int, hashtext(%s))", (key,))
        postgres.superuser_psql("ALTER ROLE auth_app CONNECTION LIMIT 77")
        report, _ = _finishes(lambda: apply(postgres.admin_url, dev_config, converged))
        assert any("auth_app" in line for line in report.executed)
    finally:
        conn.close()


def test_a_migrators_comment_on_its_database_changes_nothing(
    postgres: PostgresServer, converged: Credentials, dev_config: StackConfig
) -> None:
    with psycopg.connect(login_url(postgres, converged, "users", "migrator")) as conn:
        conn.execute("COMMENT ON DATABASE users IS 'not yours any more'")
    planned = plan(postgres.admin_url, dev_config, converged)
    assert not planned.problems, planned.problems
    assert planned.statements == (), [s.text for s in planned.statements]
    assert apply(postgres.admin_url, dev_config, converged).executed == ()


def test_is_template_set_by_the_migrator_is_drift_and_repaired(
    postgres: PostgresServer, converged: Credentials, dev_config: StackConfig
) -> None:
    with psycopg.connect(login_url(postgres, converged, "users", "migrator")) as conn:
        conn.execute("ALTER DATABASE users WITH IS_TEMPLATE true")
    assert (
        postgres.superuser_psql("SELECT datistemplate FROM pg_database WHERE datname = 'users'")
        == "t"
    )
    planned = [s.text for s in plan(postgres.admin_url, dev_config, converged).statements]
    assert planned == ['ALTER DATABASE "users" WITH IS_TEMPLATE false'], planned
    apply(postgres.admin_url, dev_config, converged)
    assert (
        postgres.superuser_psql("SELECT datistemplate FROM pg_database WHERE datname = 'users'")
        == "f"
    )


def test_a_service_login_cannot_rewrite_a_role_marker(
    postgres: PostgresServer, converged: Credentials
) -> None:
    """COMMENT ON ROLE needs CREATEROLE on PostgreSQL 15, even for its own roles."""
    with psycopg.connect(login_url(postgres, converged, "users", "migrator")) as conn:
        for role in ("users_owner", "users_migrator", "users_app"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"COMMENT ON ROLE {role} IS 'mine'")
            conn.rollback()


def test_apply_repairs_the_others_while_a_migrator_holds_its_table(
    postgres: PostgresServer, converged: Credentials, dev_rendered: Rendered
) -> None:
    """REASSIGN OWNED needs the table the migrator holds: apply gives up on it after the bound,
    converges auth's drift all the same, and exits 1 naming users."""
    rendered, _ = dev_rendered
    with psycopg.connect(login_url(postgres, converged, "users", "migrator")) as conn:
        conn.execute("SET ROLE users_migrator")  # so the login owns it: REASSIGN OWNED is due
        conn.execute("CREATE TABLE held (i int)")
    postgres.superuser_psql("ALTER ROLE auth_app CONNECTION LIMIT 66")
    secrets = str(rendered.parent / "dev.secrets.json")
    argv = ["db", "apply", "--stack", "dev", "--secrets", secrets, "--admin-url"]
    try:
        with migrator_holding_lock(postgres, converged, "users", "held"):
            (code, out, err), seconds = _finishes(lambda: cli(*argv, postgres.admin_url))
        assert code == 1, (out, err)
        _says(err, "service users", "REASSIGN OWNED", f"gave up after {BOUND_S} s")
        _says(err, "pg_terminate_backend", "apply failed for users")
        assert "Traceback" not in err
        limit = postgres.superuser_psql(
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'auth_app'"
        )
        assert limit != "66", "auth's drift was not repaired"
        assert seconds < FINISH_WITHIN_S
        code, out, err = cli(*argv, postgres.admin_url)
        assert code == 0, err
        assert 'REASSIGN OWNED BY "users_migrator" TO "users_owner"' in out
    finally:
        postgres.superuser_psql("DROP TABLE IF EXISTS held", "users")


def test_backup_finishes_the_others_while_a_migrator_holds_its_table(
    postgres: PostgresServer,
    converged: Credentials,
    dev_config: StackConfig,
    dev_rendered: Rendered,
    tmp_path: Path,
) -> None:
    rendered, _ = dev_rendered
    seed(postgres, converged, "users")
    bucket = f"file://{tmp_path / 'bucket'}"
    secrets = str(rendered.parent / "dev.secrets.json")
    argv = ["backup", "--stack", "dev", "--secrets", secrets, "--bucket", bucket, "--admin-url"]
    try:
        with migrator_holding_lock(postgres, converged, "users", "orders"):
            (code, out, err), seconds = _finishes(lambda: cli(*argv, postgres.admin_url))
        assert code == 1, (out, err)
        _says(err, "postgres/users: reading users.public.orders", f"gave up after {BOUND_S} s")
        _says(err, "backup failed for users")
        assert "Traceback" not in err
        for spec in dev_config.services:
            if spec.name != "users":
                assert f"postgres/{spec.name} " in out, f"{spec.name} was not backed up: {out}"
        assert seconds < FINISH_WITHIN_S
    finally:
        postgres.superuser_psql(
            "DROP TABLE IF EXISTS documents, orders, accounts; "
            "DROP SEQUENCE IF EXISTS invoice_numbers; "
            "SELECT lo_unlink(oid) FROM pg_largeobject_metadata",
            "users",
        )


CHECKED_SQL = """
CREATE FUNCTION relabel() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('COMMENT ON DATABASE %I IS %L', current_database(), 'relabelled');
  RETURN true;
END $$;
CREATE TABLE checked (i int CHECK (relabel()));
INSERT INTO checked VALUES (1), (2);
"""


def test_a_restore_running_a_function_that_relabels_the_database_changes_nothing(
    postgres: PostgresServer,
    converged: Credentials,
    dev_config: StackConfig,
    dev_rendered: Rendered,
    tmp_path: Path,
) -> None:
    """The restore of auth's own backup runs its CHECK constraint's COMMENT ON DATABASE on
    every row: the restored database is converged and managed like before."""
    rendered, _ = dev_rendered
    seed(postgres, converged, "auth", CHECKED_SQL)
    bucket = f"file://{tmp_path / 'bucket'}"
    common = ["--stack", "dev", "--secrets", str(rendered.parent / "dev.secrets.json")]
    common += ["--admin-url", postgres.admin_url]
    try:
        for step in (
            ["backup", "--service", "auth"],
            ["verify", "--service", "auth"],
            ["restore", "--service", "auth"],
        ):
            code, out, err = cli(*step, *common, "--bucket", bucket)
            assert code == 0, (step, out, err)
        relabelled = postgres.superuser_psql(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'auth'"
        )
        assert relabelled == "relabelled", "the attack did not run: the test proves nothing"
        planned = plan(postgres.admin_url, dev_config, converged)
        assert not planned.problems, planned.problems
        assert planned.statements == (), [s.text for s in planned.statements]
        code, out, err = cli("db", "apply", *common)
        assert code == 0, (out, err)
    finally:
        postgres.superuser_psql("DROP TABLE IF EXISTS checked; DROP FUNCTION relabel()", "auth")


def test_a_strangers_scratch_database_is_left_alone_and_stops_only_its_service(
    postgres: PostgresServer,
    converged: Credentials,
    dev_config: StackConfig,
    dev_rendered: Rendered,
    tmp_path: Path,
) -> None:
    """``events__verify`` made by someone else is neither dropped nor used; the other services'
    backups are verified all the same, and verify exits 1 naming events."""
    rendered, _ = dev_rendered
    bucket = f"file://{tmp_path / 'bucket'}"
    common = ["--stack", "dev", "--secrets", str(rendered.parent / "dev.secrets.json")]
    common += ["--admin-url", postgres.admin_url, "--bucket", bucket]
    code, out, err = cli("backup", *common)
    assert code == 0, (out, err)
    # Owned by the admin itself, so only the registry can stop the admin from dropping it.
    admin = dev_config.postgres.admin_user
    postgres.superuser_psql(f"CREATE DATABASE events__verify OWNER {admin}")
    try:
        code, out, err = cli("verify", *common)
        assert code == 1, (out, err)
        _says(err, "events__verify exists but this tool did not create it for service events")
        assert "Traceback" not in err
        for spec in dev_config.services:
            if spec.name != "events":
                assert re.search(rf"^postgres/{spec.name} \S+ verified", out, re.M), out
        owner = postgres.superuser_psql(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'events__verify'"
        )
        assert owner == admin, "a stranger's database was dropped or replaced"
    finally:
        postgres.superuser_psql("DROP DATABASE IF EXISTS events__verify")


def test_an_existing_stack_is_registered_by_its_next_apply(
    postgres: PostgresServer, converged: Credentials, dev_config: StackConfig
) -> None:
    """A server provisioned before the tooling database (databases marked by comment only):
    plan shows the registration as pending, apply makes it, and the next apply does nothing."""
    apply(postgres.admin_url, dev_config, converged)
    postgres.superuser_psql(f"DROP DATABASE {TOOLING}")
    postgres.superuser_psql("COMMENT ON DATABASE users IS 'managed-by=persistence'")
    planned = plan(postgres.admin_url, dev_config, converged)
    assert not planned.problems, planned.problems
    pending = sorted(s.service for s in planned.services if s.statements)
    assert pending == sorted(spec.name for spec in dev_config.services)
    assert all("INSERT INTO public.databases" in s.text for s in planned.statements)
    apply(postgres.admin_url, dev_config, converged)
    registered = postgres.superuser_psql("SELECT count(*) FROM public.databases", TOOLING)
    assert registered == str(len(dev_config.services))
    assert apply(postgres.admin_url, dev_config, converged).executed == ()


def test_a_tooling_database_that_is_not_the_admins_is_refused_and_public_is_shut_out(
    postgres: PostgresServer,
    converged: Credentials,
    dev_config: StackConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = dev_config.postgres.admin_user
    monkeypatch.setattr(registry, "_ready", set())  # as a new process would see the server
    postgres.superuser_psql(f"GRANT CONNECT ON DATABASE {TOOLING} TO PUBLIC")
    apply(postgres.admin_url, dev_config, converged)
    granted = catalog(
        postgres, "SELECT has_database_privilege('users_app', {db}, 'CONNECT')", db=TOOLING
    )
    assert granted == "f", "PUBLIC's CONNECT on the tooling database was left in place"
    monkeypatch.setattr(registry, "_ready", set())
    postgres.superuser_psql(
        f"CREATE ROLE squatter NOLOGIN; ALTER DATABASE {TOOLING} OWNER TO squatter"
    )
    try:
        with pytest.raises(ServerError, match=f"^database {TOOLING} is owned by squatter, not by"):
            apply(postgres.admin_url, dev_config, converged)
    finally:
        postgres.superuser_psql(f"ALTER DATABASE {TOOLING} OWNER TO {admin}; DROP ROLE squatter")


def test_a_lock_held_on_a_table_pg_restore_loads_is_bounded_too(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """pg_restore runs the archive's own `SET lock_timeout = 0`: where a service's login can
    reach the database restored into (its scratch databases on Cloud SQL), only the watcher
    bounds the wait. Here another session holds the table the data is loaded into."""
    database = "lock_watch_target"
    admin = postgres.admin_url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    target_url = admin.rsplit("/", 1)[0] + f"/{database}"
    with psycopg.connect(target_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 1000)")
    dump = tmp_path / "data.dump"
    subprocess.run(
        [pg.binary("pg_dump"), "--data-only", "--format=custom", f"--file={dump}"],
        env=pg.libpq_environment(admin, database),
        check=True,
    )
    holder = psycopg.connect(target_url)
    try:
        holder.execute("TRUNCATE t")
        holder.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")  # held: the transaction stays open
        with pytest.raises(ServerError) as refused:
            _finishes(lambda: fetch.pg_restore(admin, database, dump, jobs=1))
        _says(
            str(refused.value),
            f"pg_restore into {database}: a session holds a lock it needs; gave up after 2 s",
            "nothing was recorded against it",
        )
    finally:
        holder.rollback()
        holder.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {database} WITH (FORCE)")
