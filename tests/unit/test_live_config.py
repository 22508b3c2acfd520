"""Adding a service never touches a server: under Pulumi mocks, for both stacks, the servers'
own resources (containers, the RabbitMQ VM, the Cloud SQL instance) have the same inputs with 2
and with 3 services; only the live-config resources (and the new service's own) differ."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi.output import UNKNOWN as UNKNOWN_VALUE
from pulumi.runtime.rpc import UNKNOWN, wrap_rpc_secret

from infra.live.provider import LiveConfigProvider, check_inputs, unknown, whole_numbers
from tests.unit.pulumi_mocks import (
    ProgramRun,
    is_secret,
    run_program,
    stack_config,
)

CONTAINER = "docker:index/container:Container"
DYNAMIC = "pulumi-python:dynamic:Resource"
PASSWORD = "random:index/randomPassword:RandomPassword"
SERVERS = {
    "dev": [(CONTAINER, name) for name in ("postgres", "redis", "rabbitmq", "backup")]
    + [("docker:index/remoteImage:RemoteImage", f"{n}-image") for n in ("postgres", "redis")],
    "prod": [
        # Prod's default is a three-node cluster: every node's VM.
        *[("gcp:compute/instance:Instance", f"rabbitmq-{n}") for n in (1, 2, 3)],
        ("gcp:sql/databaseInstance:DatabaseInstance", "postgres"),
        ("gcp:memorystore/instance:Instance", "valkey"),
    ],
}


def _with_services(stack: str, count: int) -> ProgramRun:
    config = stack_config(stack)
    services = json.loads(config["persistence:services"])
    assert len(services) >= 3, f"Pulumi.{stack}.yaml needs 3 services for this test"
    config["persistence:services"] = json.dumps(services[:count])
    return run_program(stack, config)


@pytest.fixture(scope="module", params=["dev", "prod"])
def runs(request: pytest.FixtureRequest) -> tuple[str, ProgramRun, ProgramRun]:
    stack = str(request.param)
    return stack, _with_services(stack, 2), _with_services(stack, 3)


def test_servers_inputs_are_the_same_with_2_and_3_services(
    runs: tuple[str, ProgramRun, ProgramRun],
) -> None:
    stack, two, three = runs
    for token, name in SERVERS[stack]:
        before, after = two.one(token, name), three.one(token, name)
        assert before.inputs == after.inputs, f"{stack}: {after} changes with a new service"


def test_only_the_live_config_and_the_new_service_change(
    runs: tuple[str, ProgramRun, ProgramRun],
) -> None:
    stack, two, three = runs
    old = {(r.type, r.name): r.inputs for r in two}
    new = {(r.type, r.name): r.inputs for r in three}
    changed = {key[1] for key in old.keys() & new.keys() if old[key] != new[key]}
    live = {r.name for r in three.of_type(DYNAMIC) if r.name.endswith("-live-config")}
    assert live, "no live-config resource"
    # Resources holding every service at once (the stack's credentials output, a dashboard...)
    # may change; no server may.
    servers = {name for _, name in SERVERS[stack]}
    assert not changed & servers, f"{stack}: servers changed: {changed & servers}"
    assert {n for n in changed if n.endswith("-live-config")} == live


def test_live_config_keeps_its_secrets_secret(runs: tuple[str, ProgramRun, ProgramRun]) -> None:
    _, _, three = runs
    for resource in three.of_type(DYNAMIC):
        if not resource.name.endswith("-live-config"):
            continue
        for key in ("admin_password", "users", "definitions"):
            if key in resource.raw_inputs:
                assert is_secret(resource.raw_inputs[key]), f"{resource}: {key} in plaintext"
        for path, _spec in (resource.inputs.get("files") or {}).items():
            if "secrets" in path or path.endswith(".acl"):
                assert is_secret(resource.raw_inputs["files"]), f"{resource}: {path}"
        assert "server_id" in resource.inputs, f"{resource}: not re-delivered on replacement"


def test_dev_live_config_carries_the_services() -> None:
    """Dev only: prod has no pg_hba, and Memorystore no ACL users."""
    three = _with_services("dev", 3)
    hba = three.one(DYNAMIC, "postgres-live-config").inputs
    assert hba["signal"] == "HUP"
    content = hba["files"]["/etc/postgresql/pg_hba.conf"]["content"]
    redis = three.one(DYNAMIC, "redis-live-config").inputs
    broker = three.one(DYNAMIC, "rabbitmq-live-config").inputs
    names = [s["name"] for s in json.loads(stack_config("dev")["persistence:services"])[:3]]
    for name in names:
        assert f"host    {name}  " in content, f"pg_hba has no line for {name}"
        assert name in redis["users"]
        assert name in {v["name"] for v in broker["definitions"]["vhosts"]}
    for user in redis["users"].values():
        assert user["password_hash"].startswith("#"), "only hashes reach Redis"
    assert all("password" not in u for u in broker["definitions"]["users"])


@pytest.mark.parametrize(
    "value",
    [
        None,
        UNKNOWN,
        UNKNOWN_VALUE,
        wrap_rpc_secret(UNKNOWN_VALUE),
        {"a": UNKNOWN},
        [1, UNKNOWN_VALUE],
        {"files": {"/x": {"content": UNKNOWN_VALUE}}},
    ],
)
def test_every_form_of_unknown_is_unknown(value: Any) -> None:
    assert unknown(value)


def test_check_accepts_unknowns_and_reports_bad_inputs() -> None:
    preview = {
        "kind": "redis",
        "server_id": UNKNOWN,
        "host": "127.0.0.1",
        "port": UNKNOWN,
        "admin_user": "admin",
        "admin_password": UNKNOWN,
        "files": UNKNOWN,
    }
    assert check_inputs(preview) == []
    bad = {**preview, "port": 70000, "files": {"relative/path": {}}, "admin_user": ""}
    assert {f.property for f in check_inputs(bad)} == {"port", "files", "admin_user"}
    assert [f.property for f in check_inputs({"kind": "nope"})] == ["kind"]


def test_check_names_a_bad_node_url_of_a_cluster() -> None:
    broker = {
        "kind": "broker",
        "server_id": "a,b,c",
        "management_url": "http://127.0.0.1:16672",
        "management_urls": ["http://127.0.0.1:16672", UNKNOWN, "127.0.0.1:16674"],
        "admin_user": "admin",
        "admin_password": UNKNOWN,
        "definitions": UNKNOWN,
    }
    (failure,) = check_inputs(broker)
    assert failure.property == "management_urls"
    assert "'127.0.0.1:16674' is not an http(s) URL" in failure.reason


def test_diff_sees_a_new_or_unknown_server_and_nothing_else() -> None:
    provider = LiveConfigProvider()
    olds = {"kind": "files", "server_id": "c1", "files": {"/a": {"content": "x"}}, "signal": ""}
    assert not provider.diff("files", olds, dict(olds)).changes
    assert provider.diff("files", olds, {**olds, "server_id": "c2"}).changes
    assert provider.diff("files", olds, {**olds, "server_id": UNKNOWN}).changes
    assert provider.diff("files", olds, {**olds, "files": {"/a": {"content": UNKNOWN}}}).changes
    assert not provider.diff("files", olds, dict(olds)).replaces


def test_numbers_reach_the_broker_as_the_config_wrote_them() -> None:
    """Pulumi carries numbers as doubles: a max-length of 1000000 arrives as 1000000.0, which
    RabbitMQ refuses ("1.0e6 is not a valid maximum length"), failing the whole import."""
    wire = {"policies": [{"definition": {"max-length": 1000000.0, "message-ttl": 86400000.0}}]}
    restored = whole_numbers(wire)
    definition = restored["policies"][0]["definition"]
    assert definition == {"max-length": 1000000, "message-ttl": 86400000}
    assert all(type(number) is int for number in definition.values())
    assert whole_numbers({"ratio": 0.5, "name": "x", "on": True}) == {
        "ratio": 0.5,
        "name": "x",
        "on": True,
    }
