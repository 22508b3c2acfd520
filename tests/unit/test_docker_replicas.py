"""The dev stack's read replicas under Pulumi mocks, and their rendered files.

What runs on real servers (streaming, routing, ``db lag``) is in
tests/integration/test_replicas.py and the e2e lifecycle; here: what the program declares.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from infra import naming
from infra.config import load_file
from infra.config.model import StackConfig
from infra.credentials import Credentials
from infra.errors import ConfigError
from infra.render import boot_files, render_all
from infra.render import postgres as pg_files
from tests.unit.pulumi_mocks import ProgramRun, is_secret, run_program, stack_config
from tests.unit.test_docker_platform import CONTAINER, DYNAMIC, VOLUME, mock_password, uploads

REPLICAS = 2


@pytest.fixture(scope="module")
def run() -> ProgramRun:
    config = stack_config("dev")
    config["persistence:postgres"] = json.dumps({"replicas": REPLICAS})
    return run_program("dev", config)


def replica(run: ProgramRun, index: int) -> Any:
    return run.one(CONTAINER, pg_files.replica_host(index))


def test_each_replica_is_a_container_of_its_own_with_a_retained_volume(run: ProgramRun) -> None:
    primary = run.one(CONTAINER, "postgres")
    for index in range(1, REPLICAS + 1):
        host = f"postgres-replica-{index}"
        container = replica(run, index)
        assert container.inputs["name"] == f"persistence-dev-{host}"
        assert container.inputs["hostname"] == host
        assert container.inputs["image"] == primary.inputs["image"], "the primary's binaries"
        # Reads reach it through the pooler: nothing is published on the host.
        assert not container.inputs.get("ports"), container.inputs.get("ports")
        assert container.inputs["wait"] is True
        volume = run.one(VOLUME, f"{host}-data")
        assert volume.inputs["name"] == f"persistence-dev-{host}-data"
        assert volume.retain_on_delete
        (mount,) = container.inputs["volumes"]
        assert mount["volumeName"] == volume.inputs["name"]
        # A replica seeds through the router, which runs after the bootstrap server.
        router = run.one(CONTAINER, "postgres-router")
        assert router.urn in container.dependencies
        assert primary.urn in router.dependencies


def test_a_replica_boots_from_the_primarys_files_plus_its_own(run: ProgramRun) -> None:
    files = {path: u["content"] for path, u in uploads(run.one(CONTAINER, "postgres")).items()}
    for index in range(1, REPLICAS + 1):
        placed = uploads(replica(run, index))
        assert placed[pg_files.CONFIG_FILE]["content"] == files[pg_files.CONFIG_FILE]
        assert placed[pg_files.HBA_FILE]["content"] == files[pg_files.HBA_FILE]
        conf = placed[pg_files.REPLICA_CONFIG_FILE]["content"]
        assert conf == pg_files.replica_conf(index)
        assert f"primary_slot_name = 'replica_{index}'" in conf
        assert "include '/etc/postgresql/postgresql.conf'" in conf
        start = " ".join(replica(run, index).inputs["entrypoints"])
        assert f"-C -S replica_{index}" in start
        assert f"--drop-slot --slot=replica_{index}" in start


def test_the_replication_password_reaches_a_replica_as_a_secret_file_only(
    run: ProgramRun,
) -> None:
    password = mock_password("postgres-replication")
    for index in range(1, REPLICAS + 1):
        container = replica(run, index)
        passfile = uploads(container)[pg_files.REPLICATION_PASSFILE]
        assert passfile["permissions"] == "0400"
        assert (passfile["owner"], passfile["group"]) == ("999", "999")
        line = f"postgres-primary:5432:replication:platform_replication:{password}\n"
        assert passfile["content"] == line, "for the router, whichever member is the primary"
        # A secret in the state: the uploads holding it are stored encrypted.
        assert is_secret(container.raw_inputs["uploads"])
        others = uploads(container)
        others.pop(pg_files.REPLICATION_PASSFILE)
        assert password not in json.dumps(others)
        assert password not in json.dumps(container.inputs.get("envs", []))
        assert password not in json.dumps(container.inputs["entrypoints"])


def test_each_replica_gets_the_service_lines_of_pg_hba_live(run: ProgramRun) -> None:
    primary_live = run.one(DYNAMIC, "postgres-live-config")
    files = primary_live.inputs["files"]
    assert set(files) == {pg_files.HBA_FILE, pg_files.REPLICATION_CONFIG_FILE}
    for index in range(1, REPLICAS + 1):
        live = run.one(DYNAMIC, f"postgres-replica-{index}-live-config")
        assert live.inputs["files"] == files, "every member has the primary's files already"
        assert live.inputs["signal"] == "HUP"


def with_replicas(config: StackConfig, count: int) -> StackConfig:
    return replace(config, postgres=replace(config.postgres, replicas=count))


def test_the_pooler_spreads_each_services_reads_over_the_replicas(
    dev_config: StackConfig,
) -> None:
    config = with_replicas(dev_config, 3)
    credentials = Credentials.generate().completed_for(config)
    files = render_all(config, credentials)
    ini = files["pgbouncer/pgbouncer.ini"].content
    hosts = "host=postgres-replica-1,postgres-replica-2,postgres-replica-3 port=5432"
    for spec in config.services:
        alias = naming.replicas_alias(spec.name)
        (line,) = [entry for entry in ini.splitlines() if entry.startswith(f"{alias} = ")]
        assert hosts in line
        assert f"dbname={spec.name} " in line
        assert f"pool_size={spec.connection_limits.readonly} " in line
        env = files[f"services/{spec.name}.env"].content
        urls = dict(line.split("=", 1) for line in env.splitlines() if "_URL=" in line)
        assert urls["READONLY_DATABASE_URL"].endswith(f":16432/{alias}")
        assert urls["DATABASE_URL"].endswith(f":16432/{spec.name}")
        assert urls["MIGRATION_DATABASE_URL"].endswith(f":15432/{spec.name}")
    assert "postgres/replica-3.conf" in files


def test_without_replicas_reads_stay_on_the_primary(dev_config: StackConfig) -> None:
    config = with_replicas(dev_config, 0)
    files = render_all(config, Credentials.generate().completed_for(config))
    assert naming.REPLICAS_ALIAS_SUFFIX not in files["pgbouncer/pgbouncer.ini"].content
    assert not [path for path in files if path.startswith("postgres/replica-")]
    for spec in config.services:
        env = files[f"services/{spec.name}.env"].content
        assert f"/{spec.name}\n" in env.split("READONLY_DATABASE_URL=", 1)[1][:200]


def test_no_rendered_file_holds_the_replication_password(dev_config: StackConfig) -> None:
    config = with_replicas(dev_config, 2)
    credentials = Credentials.generate().completed_for(config)
    for files in (render_all(config, credentials), boot_files(config, credentials)):
        for path, rendered in files.items():
            assert credentials.postgres_replication not in rendered.content, path
    init = pg_files.init_admin_sql(config, credentials)
    assert "CREATE ROLE platform_replication LOGIN REPLICATION NOSUPERUSER" in init
    assert "PASSWORD 'SCRAM-SHA-256$4096:" in init
    hba = pg_files.pg_hba_conf(config)
    assert "host    replication     platform_replication  samenet         scram-sha-256" in hba


def config_problems(tmp_path: Path, postgres: str) -> list[str]:
    path = tmp_path / "Pulumi.bad.yaml"
    body = f"""\
        config:
          persistence:platform: docker
          persistence:services:
            - name: users
          persistence:postgres: {postgres}
        """
    path.write_text(textwrap.dedent(body))
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    return caught.value.problems


def test_bad_replica_settings_are_refused_naming_the_key(tmp_path: Path) -> None:
    (problem,) = config_problems(tmp_path, "{replicas: 9}")
    assert "postgres.replicas" in problem
    assert "Pulumi.bad.yaml: persistence:postgres.replicas: 9" in problem, problem
    assert "allowed: 0 to 5" in problem, problem
    (problem,) = config_problems(tmp_path, "{replicas: 1, pooler: {enabled: false}}")
    assert "postgres.replicas: 1 needs the pooler" in problem, problem


def test_synchronous_replication_is_a_live_file_not_a_restart(
    run: ProgramRun, dev_config: StackConfig
) -> None:
    """postgres.synchronous only changes the file the primary's live configuration writes (and
    reloads): the primary's container inputs are the same either way."""
    live = run.one(DYNAMIC, "postgres-live-config")
    written = live.inputs["files"][pg_files.REPLICATION_CONFIG_FILE]["content"]
    assert "synchronous_standby_names = ''" in written
    config = stack_config("dev")
    config["persistence:postgres"] = json.dumps({"replicas": REPLICAS, "synchronous": True})
    synchronous = run_program("dev", config)
    live = synchronous.one(DYNAMIC, "postgres-live-config")
    written = live.inputs["files"][pg_files.REPLICATION_CONFIG_FILE]["content"]
    assert "synchronous_standby_names = 'ANY 1 (replica_1, replica_2)'" in written
    assert synchronous.one(CONTAINER, "postgres").inputs == run.one(CONTAINER, "postgres").inputs
    conf = pg_files.postgresql_conf(dev_config)
    assert f"include_if_exists '{pg_files.REPLICATION_CONFIG_NAME}'" in conf


def test_synchronous_needs_the_dev_replicas(tmp_path: Path) -> None:
    (problem,) = config_problems(tmp_path, "{synchronous: true}")
    assert "postgres.synchronous: true needs the dev stack's replicas" in problem, problem


@pytest.fixture(scope="module")
def failed_over() -> ProgramRun:
    """The same stack after `db promote` recorded replica 1 as the primary."""
    config = stack_config("dev")
    config["persistence:postgres"] = json.dumps(
        {"replicas": REPLICAS, "primary": "postgres-replica-1", "synchronous": True}
    )
    return run_program("dev", config)


def test_after_a_failover_the_promoted_replica_is_not_replaced(
    run: ProgramRun, failed_over: ProgramRun
) -> None:
    """What `make preview` compares: the promoted member's container inputs are the same
    before and after the record, so the convergence never restarts the new primary."""
    before, after = replica(run, 1).inputs, replica(failed_over, 1).inputs
    assert after == before
    assert replica(failed_over, 2).inputs == replica(run, 2).inputs


def test_after_a_failover_member_0_becomes_a_standby_and_everything_points_at_the_new_primary(
    run: ProgramRun, failed_over: ProgramRun
) -> None:
    first = failed_over.one(CONTAINER, "postgres")
    assert first.inputs["entrypoints"][2] != run.one(CONTAINER, "postgres").inputs["entrypoints"][2]
    script = first.inputs["entrypoints"][2]
    assert "pg_basebackup" in script, "seeded, never initdb"
    assert "-S replica_0" in script
    placed = uploads(first)
    assert "primary_slot_name = 'replica_0'" in placed[pg_files.REPLICA_CONFIG_FILE]["content"]
    assert "/docker-entrypoint-initdb.d/10-platform-admin.sql" not in placed
    router = failed_over.one(CONTAINER, "postgres-router")
    assert router.inputs["uploads"][0]["content"] == "postgres-replica-1:5432\n"
    assert router.urn in first.dependencies, "member 0 seeds through the router"
    pooler_files = failed_over.one(DYNAMIC, "pooler-live-config").inputs["files"]
    ini = pooler_files["/etc/pgbouncer/pgbouncer.ini"]
    text = json.dumps(ini)
    assert "host=postgres-replica-1 port=5432 dbname=" in text, "writes go to the new primary"
    assert "host=postgres,postgres-replica-2 " in text, "reads go to the other members"
    live = failed_over.one(DYNAMIC, "postgres-replica-1-live-config")
    sync = live.inputs["files"][pg_files.REPLICATION_CONFIG_FILE]["content"]
    assert "'ANY 1 (replica_0, replica_2)'" in sync


def test_primary_must_be_a_member_of_the_stack(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(
        textwrap.dedent(
            """\
            config:
              persistence:platform: docker
              persistence:services: [{name: users}]
              persistence:postgres: {replicas: 1, primary: postgres-replica-2}
            """
        )
    )
    with pytest.raises(ConfigError) as raised:
        load_file(stack)
    assert "postgres.primary: postgres-replica-2 is not one of" in str(raised.value)
    assert "Pulumi.dev.yaml" in str(raised.value)
