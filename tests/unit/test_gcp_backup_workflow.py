"""The Memorystore export workflow: built as data, serialized as YAML, and shaped so that a
backup only counts once every long-running operation (the backup, then its export into the
bucket) has finished without error. The service databases are the backup job's
(test_gcp_backup_job); the workflow must not export them too."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from infra.platforms.gcp import identities, workflow
from tests.unit.gcp_program import ProdRun, run_prod

ARGS: dict[str, Any] = {
    "instance": "persistence-prod-valkey",
    "region": "europe-west1",
    "bucket": "example-bucket",
    "retention_days": 14,
}
CALLS = ("backup_valkey", "export_backup")


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


def test_only_memorystore_is_backed_up_then_exported(definition: dict[str, Any]) -> None:
    main = steps(definition["main"])
    assert list(main) == ["init", *CALLS, "finish"]
    assert set(definition) == {"main", *CALLS, "wait_memorystore"}, "one path per backup"
    init = {k: v for item in main["init"]["assign"] for k, v in item.items()}
    assert init["bucket"] == ARGS["bucket"]
    assert init["instance"] == ARGS["instance"]
    # Memorystore keeps the on-demand backup as long as the bucket keeps its export.
    assert init["ttl"] == f"{ARGS['retention_days'] * 86_400}s"
    assert main["backup_valkey"]["result"] == "backup"
    assert main["export_backup"]["args"]["backup"] == "${backup}", "exports the backup it took"
    assert main["export_backup"]["args"]["bucket"] == "${bucket}"


def test_backup_names_are_unique_per_execution(definition: dict[str, Any]) -> None:
    main = steps(definition["main"])
    init = {k: v for item in main["init"]["assign"] for k, v in item.items()}
    assert "sys.now()" in init["stamp"]
    assert "GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID" in init["execution"]
    assert init["backup_id"] == '${"valkey-" + text.to_lower(stamp + "-" + execution)}'
    assert main["backup_valkey"]["args"]["backup_id"] == "${backup_id}"
    # The backup's resource name: the instance's collection plus the id this execution chose.
    finished = steps(definition["backup_valkey"])["finished"]["return"]
    assert "described.body.backupCollection" in finished, finished
    assert "backup_id" in finished, finished


@pytest.mark.parametrize("call", CALLS)
def test_every_call_waits_for_its_operation(definition: dict[str, Any], call: str) -> None:
    body = steps(definition[call])
    assert list(body)[:2] == ["start", "wait"], f"{call}: {list(body)}"
    assert body["start"]["call"] == "http.post"
    assert body["start"]["args"]["auth"] == {"type": "OAuth2"}
    assert body["wait"]["call"] == "wait_memorystore"
    assert body["wait"]["args"]["name"] == "${operation.body.name}"
    assert list(body)[-1] == "finished", f"{call}: returns only after the wait"


def test_a_failed_or_stuck_operation_fails_the_execution(definition: dict[str, Any]) -> None:
    wait = "wait_memorystore"
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


def test_done_means_done(definition: dict[str, Any]) -> None:
    assert steps(definition["wait_memorystore"])["check"]["switch"][1]["condition"] == (
        '${map.get(operation.body, "done") == true}'
    )


def test_only_apis_the_custom_role_covers(definition: dict[str, Any]) -> None:
    text = yaml.safe_dump(definition)
    hosts = {part.split("/")[2] for part in text.split('"') if part.startswith("https://")}
    assert hosts == {"memorystore.googleapis.com"}, hosts
    services = {p.split(".")[0] for p in identities.BACKUP_PERMISSIONS}
    assert services == {"memorystore", "workflows", "logging"}, services


def test_deployed_workflow_backs_up_the_declared_instance() -> None:
    prod: ProdRun = run_prod()
    (declared,) = prod.run.of_type("gcp:workflows/workflow:Workflow")
    source = yaml.safe_load(declared.inputs["sourceContents"])
    init = {k: v for item in steps(source["main"])["init"]["assign"] for k, v in item.items()}
    assert "databases" not in init, f"{declared}: databases are the backup job's"
    (valkey,) = prod.run.of_type("gcp:memorystore/instance:Instance")
    (bucket,) = prod.run.of_type("gcp:storage/bucket:Bucket")
    assert init["instance"] == valkey.inputs["instanceId"], f"{declared}"
    assert init["region"] == valkey.inputs["location"], f"{declared}"
    assert init["bucket"] == bucket.inputs["name"], f"{declared}"
