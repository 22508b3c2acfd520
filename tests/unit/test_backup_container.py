"""The dev backup container, as the real dev program declares it under Pulumi mocks."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest

from infra.backup import crypto
from infra.config.load import load_file
from infra.config.model import StackConfig
from infra.platforms.docker.backup import (
    BACKUP_DIR,
    BUILD_INPUTS,
    DOCKERFILE,
    KEY_FILE,
    REPO_ROOT,
    SECRETS_FILE,
    backup_dir,
    build_context_hash,
)
from tests.unit.pulumi_mocks import ProgramRun, is_secret, run_program

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"


@pytest.fixture(scope="module")
def run() -> ProgramRun:
    return run_program("dev")


def test_the_image_is_built_from_the_repository_dockerfile(
    run: ProgramRun, dev_config: StackConfig
) -> None:
    image = run.one(IMAGE, "backup-image")
    assert image.inputs["build"]["context"] == str(REPO_ROOT)
    assert REPO_ROOT / image.inputs["build"]["dockerfile"] == DOCKERFILE
    assert image.inputs["build"]["buildArgs"] == {
        "BASE_IMAGE": dev_config.docker.images.backup,
        "UID": str(os.getuid()),
        "GID": str(os.getgid()),
    }
    assert image.inputs["triggers"] == {"context": build_context_hash()}, "rebuilt on any change"


def test_any_change_to_what_the_image_copies_changes_its_trigger(tmp_path: Path) -> None:
    for name in BUILD_INPUTS:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    before = build_context_hash(tmp_path)
    assert before == build_context_hash(REPO_ROOT)
    (tmp_path / "sql" / "catalog.sql").write_text("-- changed\n", encoding="utf-8")
    assert build_context_hash(tmp_path) != before


def test_backup_container_runs_the_schedule_loop_into_the_host_bucket(
    run: ProgramRun, dev_config: StackConfig
) -> None:
    container = run.one(CONTAINER, "backup").inputs
    stack_file = container["command"][2]
    assert container["command"] == ["backup-loop", "--stack", stack_file, "--secrets", SECRETS_FILE]
    envs = dict(item.split("=", 1) for item in container["envs"])
    assert envs["PERSISTENCE_BACKUP_BUCKET"] == f"file://{BACKUP_DIR}"
    assert (
        envs["PERSISTENCE_ADMIN_URL"]
        == "postgresql://platform_admin@postgres-primary:5432/postgres"
    )
    assert envs["PERSISTENCE_REDIS_URL"] == "redis://redis:6379"
    (mount,) = container["mounts"]
    assert mount == {
        "type": "bind",
        "source": str(backup_dir(dev_config, "dev")),
        "target": BACKUP_DIR,
        "readOnly": False,  # the loop writes there
    }
    assert container["user"] == str(os.getuid()), "the bucket stays the user's"
    assert "ports" not in container, "nothing published on the host"


def test_the_loop_reads_a_stack_file_with_only_what_backups_use(
    run: ProgramRun, dev_config: StackConfig, tmp_path: Path
) -> None:
    container = run.one(CONTAINER, "backup").inputs
    stack_file = container["command"][2]
    assert stack_file not in {u["file"] for u in container["uploads"]}, "delivered live only"
    live = run.one("pulumi-python:dynamic:Resource", "backup-live-config").inputs
    assert live["server_id"] == "backup-id", "re-delivered when the container is replaced"
    content = live["files"][stack_file]["content"]
    written = tmp_path / Path(stack_file).name
    written.write_text(content, encoding="utf-8")
    loaded = load_file(written)
    assert loaded.backup == dev_config.backup
    assert [s.name for s in loaded.services] == [s.name for s in dev_config.services]
    assert "connection_limits" not in content, "only what backups use"


def test_credentials_reach_the_container_only_as_a_private_secret_file(run: ProgramRun) -> None:
    declared = run.one(CONTAINER, "backup")
    (upload,) = [u for u in declared.inputs["uploads"] if u["file"] == SECRETS_FILE]
    assert upload["file"] == SECRETS_FILE
    assert upload["permissions"] == "0400"
    assert is_secret(declared.raw_inputs["uploads"]), "stays a Pulumi secret in state"
    credentials = json.loads(upload["content"])
    everything = repr(declared.inputs["envs"]) + repr(declared.inputs["command"])
    for password in (
        credentials["postgres_admin"],
        credentials["redis_admin"],
        credentials["rabbitmq_admin"],
    ):
        assert password not in everything


def test_the_backup_key_reaches_the_loop_as_a_private_file_the_environment_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`make up` exports PERSISTENCE_BACKUP_KEY_FILE: the program hands the key to the loop."""
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    key_file = tmp_path / "backup-key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)
    monkeypatch.setenv(crypto.KEY_FILE_ENV, str(key_file))
    declared = run_program("dev").one(CONTAINER, "backup")
    (upload,) = [u for u in declared.inputs["uploads"] if u["file"] == KEY_FILE]
    assert upload["content"] == key
    assert upload["permissions"] == "0400"
    assert upload["owner"] == str(os.getuid())
    assert is_secret(declared.raw_inputs["uploads"]), "the key stays a Pulumi secret in state"
    assert f"{crypto.KEY_FILE_ENV}={KEY_FILE}" in declared.inputs["envs"]
    everything = repr(declared.inputs["envs"]) + repr(declared.inputs["command"])
    assert key not in everything, "the key itself never travels in the environment"


def test_without_a_key_the_loop_gets_none_and_the_program_still_evaluates(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)
    monkeypatch.delenv(crypto.KEY_FILE_ENV, raising=False)
    declared = run_program("dev").one(CONTAINER, "backup")
    assert "no backup key" in caplog.text, "the deployer is told, not left to find out"
    assert KEY_FILE not in [u["file"] for u in declared.inputs["uploads"]]
    assert not [e for e in declared.inputs["envs"] if e.startswith("PERSISTENCE_BACKUP_KEY")]


def test_the_container_is_unhealthy_when_backups_stop(run: ProgramRun) -> None:
    container = run.one(CONTAINER, "backup").inputs
    stack_file = container["command"][2]
    check = container["healthcheck"]
    assert check["tests"] == [
        "CMD", "/venv/bin/python", "-m", "infra", "backup-health",
        "--stack", stack_file, "--bucket", f"file://{BACKUP_DIR}",
    ]  # fmt: skip
    assert check["retries"] >= 1, check
