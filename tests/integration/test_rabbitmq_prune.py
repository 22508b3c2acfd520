"""``broker prune`` on a real broker: a service that left the config loses its user and vhost.

The broker boots from definitions rendered for the dev stack plus a ``retired`` service (as if
that service had been deployed before); the command then runs against the plain dev stack.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest

from infra import secrets_file
from infra.broker.management import ManagementApi
from infra.config import StackConfig
from infra.config.model import QueueSpec, ServiceSpec
from infra.credentials import Credentials
from infra.errors import ServerError
from infra.render.rabbitmq import MANAGED_TAG
from tests.conftest import render_to
from tests.servers.process import free_port
from tests.servers.rabbitmq import RabbitmqServer

REPO = Path(__file__).resolve().parents[2]
RETIRED = "retired"
MANUAL = "hand-made"


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory,
    dev_config: StackConfig,
    dev_rendered: tuple[Path, Credentials],
) -> Iterator[tuple[RabbitmqServer, Credentials]]:
    """A broker that still has the retired service, plus a user and vhost made by hand."""
    _, credentials = dev_rendered
    before = dataclasses.replace(
        dev_config,
        services=(
            *dev_config.services,
            ServiceSpec(name=RETIRED, queues=(QueueSpec(name="retired.jobs"),)),
        ),
    )
    before_credentials = credentials.completed_for(before)
    rendered = render_to(tmp_path_factory.mktemp("before"), before, before_credentials)
    server = RabbitmqServer(
        rendered, dev_config.rabbitmq.admin_user, credentials.rabbitmq_admin
    ).start()
    server.api("PUT", f"/api/vhosts/{MANUAL}", {"description": "made by an operator"})
    server.api("PUT", f"/api/users/{MANUAL}", {"password": "operator-pass", "tags": ""})
    yield server, before_credentials
    server.cleanup()


@pytest.fixture(scope="module")
def secrets(
    tmp_path_factory: pytest.TempPathFactory, dev_rendered: tuple[Path, Credentials]
) -> Path:
    """The dev stack's secrets file, as an operator would pass it with --secrets."""
    path = tmp_path_factory.mktemp("prune-secrets") / "dev.secrets.json"
    secrets_file.write(path, dev_rendered[1])
    return path


def prune(management_url: str, secrets: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "infra",
            "broker",
            "prune",
            "--stack",
            "dev",
            "--management-url",
            management_url,
            "--secrets",
            str(secrets),
            *extra,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def login(server: RabbitmqServer, user: str, password: str, vhost: str) -> None:
    pika.BlockingConnection(
        pika.ConnectionParameters(
            host="127.0.0.1",
            port=server.amqp_port,
            virtual_host=vhost,
            credentials=pika.PlainCredentials(user, password),
            connection_attempts=1,
        )
    ).close()


def names(server: RabbitmqServer, collection: str) -> set[str]:
    return {entry["name"] for entry in server.api("GET", f"/api/{collection}")}


def test_retired_service_is_marked_as_managed(
    deployed: tuple[RabbitmqServer, Credentials],
) -> None:
    server, _ = deployed
    assert MANAGED_TAG in server.api("GET", f"/api/users/{RETIRED}")["tags"]
    assert RETIRED in names(server, "vhosts")


def test_dry_run_lists_and_deletes_nothing(
    deployed: tuple[RabbitmqServer, Credentials],
    secrets: Path,
) -> None:
    server, credentials = deployed
    result = prune(server.management_url, secrets)
    assert result.returncode == 0, result.stderr
    assert f"would delete user '{RETIRED}'" in result.stdout
    assert f"would delete vhost '{RETIRED}'" in result.stdout
    assert MANUAL not in result.stdout
    login(server, RETIRED, credentials.for_service(RETIRED).rabbitmq, RETIRED)


def test_apply_removes_the_retired_login_and_vhost_only(
    deployed: tuple[RabbitmqServer, Credentials],
    secrets: Path,
    dev_config: StackConfig,
) -> None:
    server, credentials = deployed
    result = prune(server.management_url, secrets, "--apply")
    assert result.returncode == 0, result.stderr
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        login(server, RETIRED, credentials.for_service(RETIRED).rabbitmq, RETIRED)
    assert RETIRED not in names(server, "vhosts")
    assert RETIRED not in names(server, "users")
    assert server.api("GET", f"/api/queues/{RETIRED}/retired.jobs") is None
    # Everything else is untouched: configured services, the admin, hand-made objects.
    for spec in dev_config.services:
        login(server, spec.name, credentials.for_service(spec.name).rabbitmq, spec.name)
    assert {MANUAL, dev_config.rabbitmq.admin_user} <= names(server, "users")
    assert MANUAL in names(server, "vhosts")


def test_second_run_finds_nothing(
    deployed: tuple[RabbitmqServer, Credentials],
    secrets: Path,
) -> None:
    server, _ = deployed
    result = prune(server.management_url, secrets, "--apply")
    assert result.returncode == 0, result.stderr
    assert "nothing to prune" in result.stdout


def test_wrong_admin_password_is_one_clean_line(
    deployed: tuple[RabbitmqServer, Credentials],
    secrets: Path,
    tmp_path: Path,
) -> None:
    server, _ = deployed
    data = json.loads(secrets.read_text())
    data["rabbitmq_admin"] = "not-the-password"
    wrong = tmp_path / "wrong.secrets.json"
    wrong.write_text(json.dumps(data))
    wrong.chmod(0o600)
    result = prune(server.management_url, wrong)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "refused user 'platform_admin'" in result.stderr
    assert "Traceback" not in result.stderr
    assert "not-the-password" not in result.stderr + result.stdout


def test_unreachable_broker_and_missing_secrets_are_clean_errors(
    secrets: Path,
    tmp_path: Path,
) -> None:
    down = prune(f"http://127.0.0.1:{free_port()}", secrets)
    assert down.returncode == 1
    assert "unreachable" in down.stderr
    assert "Traceback" not in down.stderr
    missing = prune("http://127.0.0.1:1", tmp_path / "absent.json")
    assert missing.returncode == 2
    assert "no secrets file" in missing.stderr
    creds_in_url = prune("http://admin:pw@127.0.0.1:1", secrets)
    assert creds_in_url.returncode == 2
    assert "must not contain credentials" in creds_in_url.stderr


def test_the_one_client_exports_definitions_and_reads_the_version(
    deployed: tuple[RabbitmqServer, Credentials], dev_config: StackConfig
) -> None:
    """What the RabbitMQ backup stores comes through the same client ``broker prune`` uses."""
    server, credentials = deployed
    api = ManagementApi(
        server.management_url + "/", dev_config.rabbitmq.admin_user, credentials.rabbitmq_admin
    )
    exported = json.loads(api.get_bytes("/api/definitions"))
    assert {"users", MANUAL} <= {vhost["name"] for vhost in exported["vhosts"]}
    assert "users.created" in {queue["name"] for queue in exported["queues"]}
    assert api.version() == server.api("GET", "/api/overview")["rabbitmq_version"]
    assert api.version().startswith("3.")
    refused = ManagementApi(server.management_url, dev_config.rabbitmq.admin_user, "wrong")
    with pytest.raises(ServerError, match="refused user 'platform_admin'"):
        refused.get_bytes("/api/definitions")
