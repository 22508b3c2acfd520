"""The Memorystore export workflow: built as data, serialized as YAML, and shaped so that an
export only counts once its long-running operation has finished without error. The service
databases are the backup job's (test_gcp_backup_job); the workflow must not export them too."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from infra.platforms.gcp import identities, workflow
from tests.unit.gcp_program import ProdRun, run_prod

ARGS: dict[str, Any] = {
    "redis_instance": "persistence-prod-redis",
    "redis_region": "europe-west1",
    "bucket": "example-bucket",
}


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return workflow.definition(**ARGS)


def steps(block: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A steps list as an ordered name -> body mapping."""
    out: dict[str, dict[str, Any]] = {}
    for step in block["steps"]:
        ((name, body),) = step.items()
        out[name] = body
    return out


def test_serialized_yaml_round_trips_without_anchors(definition: dict[str, Any]) -> None:
    text = workflow.source(**ARGS)
    assert yaml.safe_load(text) == definition
    assert "&id" not in text, "Workflows does not read YAML anchors"
    assert "*id" not in text, "Workflows does not read YAML aliases"


def test_only_memorystore_is_exported(definition: dict[str, Any]) -> None:
    main = steps(definition["main"])
    assert list(main) == ["init", "export_redis", "finish"]
    assert set(definition) == {"main", "export_redis", "wait_redis"}, "one path per backup"
    init = {k: v for item in main["init"]["assign"] for k, v in item.items()}
    assert init["bucket"] == ARGS["bucket"]
    assert main["export_redis"]["call"] == "export_redis"


def test_object_names_are_unique_per_execution(definition: dict[str, Any]) -> None:
    main = steps(definition["main"])
    init = {k: v for item in main["init"]["assign"] for k, v in item.items()}
    assert "sys.now()" in init["stamp"]
    assert "GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID" in init["execution"]
    assert init["suffix"] == '${stamp + "-" + execution}'
    redis_uri = main["export_redis"]["args"]["uri"]
    assert '"gs://" + bucket' in redis_uri, redis_uri
    assert "suffix" in redis_uri, redis_uri


@pytest.mark.parametrize(("export", "wait"), [("export_redis", "wait_redis")])
def test_every_export_waits_for_its_operation(
    definition: dict[str, Any], export: str, wait: str
) -> None:
    body = steps(definition[export])
    assert list(body) == ["start", "wait", "done"], f"{export}: {list(body)}"
    assert body["start"]["call"] == "http.post"
    assert body["start"]["args"]["auth"] == {"type": "OAuth2"}
    assert body["wait"]["call"] == wait
    assert body["wait"]["args"]["name"] == "${operation.body.name}"


@pytest.mark.parametrize("wait", ["wait_redis"])
def test_a_failed_or_stuck_operation_fails_the_execution(
    definition: dict[str, Any], wait: str
) -> None:
    body = steps(definition[wait])
    switch = body["check"]["switch"]
    message = f"{wait}: an operation's error must be checked before it counts as done"
    assert "error" in switch[0]["condition"], message
    assert switch[0]["next"] == "failed", message
    assert switch[1]["next"] == "succeeded"
    assert switch[2]["next"] == "timed_out"
    assert str(workflow.MAX_POLLS) in switch[2]["condition"]
    assert "raise" in body["failed"], f"{wait}: must raise"
    assert "raise" in body["timed_out"], f"{wait}: must raise"
    assert body["count"]["next"] == "poll", f"{wait}: must keep polling until done"
    assert body["pause"]["call"] == "sys.sleep"
    assert body["poll"]["try"]["call"] == "http.get"


def test_redis_done_means_done(definition: dict[str, Any]) -> None:
    assert steps(definition["wait_redis"])["check"]["switch"][1]["condition"] == (
        '${map.get(operation.body, "done") == true}'
    )


def test_only_apis_the_custom_role_covers(definition: dict[str, Any]) -> None:
    text = yaml.safe_dump(definition)
    hosts = {part.split("/")[2] for part in text.split('"') if part.startswith("https://")}
    assert hosts == {"redis.googleapis.com"}, hosts
    services = {p.split(".")[0] for p in identities.BACKUP_PERMISSIONS}
    assert services == {"redis", "workflows", "logging"}, services


def test_deployed_workflow_exports_the_declared_memorystore() -> None:
    prod: ProdRun = run_prod()
    (declared,) = prod.run.of_type("gcp:workflows/workflow:Workflow")
    source = yaml.safe_load(declared.inputs["sourceContents"])
    init = {k: v for item in steps(source["main"])["init"]["assign"] for k, v in item.items()}
    assert "databases" not in init, f"{declared}: databases are the backup job's"
    (redis,) = prod.run.of_type("gcp:redis/instance:Instance")
    (bucket,) = prod.run.of_type("gcp:storage/bucket:Bucket")
    assert init["redis_instance"] == redis.inputs["name"], f"{declared}"
    assert init["bucket"] == bucket.inputs["name"], f"{declared}"
