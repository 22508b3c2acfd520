"""A prod stack that ran Memorystore for Redis gets to Valkey in stages, losing no key.

Each stage is what ``python -m infra plan`` (the preview a reviewer sees, no cloud needed) and
the program under mocks declare: ``beside`` keeps the old instance exactly as the last program
before Valkey declared it (golden/legacy_redis.json, taken from that program), serving, while
Valkey is created beside it from the old instance's RDB export; ``switched`` points the
services' name at Valkey and keeps the old instance; ``retiring`` lifts its protection;
``none`` has no trace of it. The data path itself (an RDB exported from a Redis 7 server,
through the bucket, loaded by Valkey) runs on real servers in
tests/integration/test_redis_to_valkey.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import load_stack
from tests.unit.gcp_program import ProdRun, run_prod
from tests.unit.pulumi_mocks import stack_config

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "legacy_redis.json"
LEGACY = "gcp:redis/instance:Instance"
VALKEY = "gcp:memorystore/instance:Instance"
RECORD = "gcp:dns/recordSet:RecordSet"
IMPORT = "gs://example-project-persistence-prod-backups/redis/20261205T010000-export.rdb"
LEGACY_IP, VALKEY_IP = "10.30.2.4", "10.30.1.4"  # the mocks' answers


def stage(name: str, **gcp: Any) -> ProdRun:
    config = stack_config("prod")
    settings = json.loads(config["persistence:gcp"])
    config["persistence:gcp"] = json.dumps({**settings, "redis_migration": name, **gcp})
    return run_prod(config)


def redis_record(prod: ProdRun) -> list[str]:
    (record,) = [r for r in prod.run.of_type(RECORD) if r.inputs["name"].startswith("redis.")]
    return list(record.inputs["rrdatas"])


@pytest.fixture(scope="module")
def bucket_name() -> str:
    return str(stage("none").run.one("gcp:storage/bucket:Bucket").inputs["name"])


def test_the_import_uri_is_in_the_stack_bucket(bucket_name: str) -> None:
    assert IMPORT.startswith(f"gs://{bucket_name}/"), "the test's URI must name prod's bucket"


def test_beside_keeps_the_old_instance_exactly_as_it_was() -> None:
    prod = stage("beside", valkey_import_uris=[IMPORT])
    golden = json.loads(GOLDEN.read_text())
    declared = {r.urn: r for r in prod.run.declared}
    for urn, expected in golden.items():
        assert urn in declared, f"{urn}: gone (a stack that ran it would delete it)"
        found = declared[urn]
        assert json.loads(json.dumps(found.inputs, default=str)) == expected["inputs"], urn
        assert found.protect == expected["protect"], urn
    # The services still reach the old instance by their name; Valkey waits beside it.
    assert redis_record(prod) == [LEGACY_IP]
    assert prod.run.exports["legacy_redis_private_ip"] == LEGACY_IP
    assert prod.run.exports["legacy_redis_auth_secret"]


def test_valkey_loads_the_export_once_and_only_reads_that_object() -> None:
    prod = stage("beside", valkey_import_uris=[IMPORT])
    valkey = prod.run.one(VALKEY)
    assert valkey.inputs["gcsSource"] == {"uris": [IMPORT]}
    # Read at creation only: later edits to the list never replace the instance.
    assert "gcsSource" in valkey.ignore_changes
    reader = prod.run.one(
        "gcp:storage/bucketIAMMember:BucketIAMMember",
        "backups-memorystore-valkey-agent-object-reader",
    )
    assert reader.inputs["role"] == "roles/storage.objectViewer"
    object_name = IMPORT.split("/", 3)[3]
    assert reader.inputs["condition"]["expression"] == (
        f'resource.name == "projects/_/buckets/{IMPORT.split("/")[2]}/objects/{object_name}"'
    )
    assert reader.urn in valkey.dependencies, "the grant must exist before the import"


def test_switched_points_the_services_at_valkey_and_keeps_the_old_instance() -> None:
    prod = stage("switched")
    assert redis_record(prod) == [VALKEY_IP]
    legacy = prod.run.one(LEGACY)
    assert legacy.protect
    assert legacy.inputs["deletionProtection"] is True


def test_retiring_lifts_both_protections_and_none_deletes() -> None:
    retiring = stage("retiring").run.one(LEGACY)
    assert not retiring.protect
    assert retiring.inputs["deletionProtection"] is False
    gone = stage("none")
    assert not gone.run.of_type(LEGACY)
    assert not [r for r in gone.run.declared if "redis-auth" in r.name]
    assert gone.run.exports["legacy_redis_private_ip"] is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("halfway", "use one of: none, beside, switched, retiring"),
        (["beside"], "expected a string"),
    ],
)
def test_a_bad_stage_is_one_clear_error(tmp_path: Path, value: Any, message: str) -> None:
    stack = tmp_path / "Pulumi.moving.yaml"
    document = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    document["config"]["persistence:gcp"]["redis_migration"] = value
    stack.write_text(yaml.safe_dump(document))
    result = plan(stack)
    assert result.returncode == 2, result.stdout
    (line,) = result.stderr.splitlines()
    assert "persistence:gcp.redis_migration" in line, line
    assert "Pulumi.moving.yaml" in line, line
    assert message in line, line


def test_an_import_that_is_not_an_object_is_refused_before_anything(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.moving.yaml"
    document = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    document["config"]["persistence:gcp"]["valkey_import_uris"] = ["/tmp/dump.rdb"]
    stack.write_text(yaml.safe_dump(document))
    result = plan(stack)
    assert result.returncode == 2
    assert "persistence:gcp.valkey_import_uris" in result.stderr
    assert "gs://bucket/redis/x.rdb" in result.stderr


def plan(stack: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra", "plan", "--stack", str(stack), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("name", ["beside", "switched", "retiring", "none"])
def test_plan_shows_each_stage_before_it_happens(tmp_path: Path, name: str) -> None:
    """What a reviewer sees in the pull request that moves the stack one stage on."""
    stack = tmp_path / "Pulumi.moving.yaml"
    document = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    document["config"]["persistence:gcp"]["redis_migration"] = name
    stack.write_text(yaml.safe_dump(document))
    assert load_stack(str(stack)).gcp.redis_migration == name
    result = plan(stack)
    assert result.returncode == 0, result.stderr
    types = [r["type"] for r in json.loads(result.stdout)["resources"]]
    assert VALKEY in types
    assert (LEGACY in types) == (name != "none"), types
