"""Every prod setting reaches the resource that enforces it, and nothing hard-codes it.

Echoing ``Pulumi.prod.yaml``'s values back (``tier == config.tier``) passes even when the
program ignores the setting and hard-codes the same value. Here every setting is changed to a
value no default or stack file uses, and each must show up at its resource's input.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.gcp_program import ProdRun, run_prod
from tests.unit.pulumi_mocks import stack_config

SQL = "gcp:sql/databaseInstance:DatabaseInstance"
VALKEY = "gcp:memorystore/instance:Instance"
VM = "gcp:compute/instance:Instance"
DISK = "gcp:compute/disk:Disk"
POLICY = "gcp:compute/resourcePolicy:ResourcePolicy"
BUCKET = "gcp:storage/bucket:Bucket"
REGION = "europe-west1"

GCP: dict[str, Any] = {
    "subnet_cidr": "10.44.8.0/22",
    "private_services_prefix_length": 18,
    "sql_tier": "db-perf-optimized-N-8",
    "sql_disk_size_gb": 123,
    "sql_backup_location": "europe-north1",
    "backup_region": "europe-north1",
    "sql_retained_backups": 9,
    "sql_log_retention_days": 5,
    "valkey_node_type": "HIGHMEM_MEDIUM",
    "valkey_replicas": 2,
    "rabbitmq_machine_type": "e2-standard-8",
    "rabbitmq_disk_size_gb": 77,
    "maintenance_day": 3,
    "maintenance_hour": 4,
    "zone_suffix": "c",
}
BACKUP: dict[str, Any] = {
    "schedule": "17 2 * * *",
    "retention_days": 21,
    "soft_delete_days": 11,
    "coldline_after_days": 45,
    "delete_after_days": 500,
}
POSTGRES = {"slow_statement_ms": 777}
REDIS_SETTINGS = {"maxmemory_policy": "allkeys-lru"}

# (resource type, resource name or None for the only one, dotted input path, wanted value)
WIRING: list[tuple[str, str | None, str, Any]] = [
    ("gcp:compute/subnetwork:Subnetwork", None, "ipCidrRange", GCP["subnet_cidr"]),
    (
        "gcp:compute/globalAddress:GlobalAddress",
        None,
        "prefixLength",
        GCP["private_services_prefix_length"],
    ),
    (SQL, "postgres", "settings.tier", GCP["sql_tier"]),
    (SQL, "postgres", "settings.diskSize", GCP["sql_disk_size_gb"]),
    (SQL, "postgres", "settings.backupConfiguration.location", GCP["sql_backup_location"]),
    (
        SQL,
        "postgres",
        "settings.backupConfiguration.transactionLogRetentionDays",
        GCP["sql_log_retention_days"],
    ),
    (
        SQL,
        "postgres",
        "settings.backupConfiguration.backupRetentionSettings.retainedBackups",
        GCP["sql_retained_backups"],
    ),
    (SQL, "postgres", "settings.maintenanceWindow.day", GCP["maintenance_day"]),
    (SQL, "postgres", "settings.maintenanceWindow.hour", GCP["maintenance_hour"]),
    (VALKEY, None, "nodeType", GCP["valkey_node_type"]),
    (VALKEY, None, "replicaCount", GCP["valkey_replicas"]),
    (VALKEY, None, "engineConfigs.maxmemory-policy", REDIS_SETTINGS["maxmemory_policy"]),
    (VALKEY, None, "automatedBackupConfig.retention", f"{BACKUP['retention_days'] * 86400}s"),
    (
        VALKEY,
        None,
        "automatedBackupConfig.fixedFrequencySchedule.startTime.hours",
        GCP["maintenance_hour"],
    ),
    # Prod's default three-node cluster: node 1 sits in gcp.zone_suffix's zone.
    (VM, "rabbitmq-1", "machineType", GCP["rabbitmq_machine_type"]),
    (VM, "rabbitmq-1", "zone", f"{REGION}-{GCP['zone_suffix']}"),
    (DISK, "rabbitmq-1-data", "zone", f"{REGION}-{GCP['zone_suffix']}"),
    (DISK, "rabbitmq-3-data", "size", GCP["rabbitmq_disk_size_gb"]),
    (
        POLICY,
        "rabbitmq-2-data-snapshots",
        "snapshotSchedulePolicy.retentionPolicy.maxRetentionDays",
        BACKUP["retention_days"],
    ),
    (
        POLICY,
        "rabbitmq-2-data-snapshots",
        "snapshotSchedulePolicy.snapshotProperties.storageLocations",
        GCP["backup_region"],
    ),
    (BUCKET, None, "location", GCP["backup_region"].upper()),
    (BUCKET, None, "retentionPolicy.retentionPeriod", str(BACKUP["retention_days"] * 86400)),
    (
        BUCKET,
        None,
        "softDeletePolicy.retentionDurationSeconds",
        BACKUP["soft_delete_days"] * 86400,
    ),
    ("gcp:cloudscheduler/job:Job", "backup-schedule", "schedule", BACKUP["schedule"]),
    ("gcp:cloudscheduler/job:Job", "backup-job-schedule", "schedule", BACKUP["schedule"]),
]


def dig(inputs: dict[str, Any], dotted: str) -> Any:
    value: Any = inputs
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


@pytest.fixture(scope="module")
def changed() -> ProdRun:
    config = stack_config("prod")
    for key, values in (
        ("gcp", GCP),
        ("backup", BACKUP),
        ("postgres", POSTGRES),
        ("redis", REDIS_SETTINGS),
    ):
        current = json.loads(config.get(f"persistence:{key}", "{}"))
        config[f"persistence:{key}"] = json.dumps({**current, **values})
    return run_prod(config)


@pytest.mark.parametrize(
    ("token", "name", "path", "wanted"), WIRING, ids=[f"{t}:{p}" for t, _, p, _ in WIRING]
)
def test_each_setting_reaches_its_resource(
    changed: ProdRun, token: str, name: str | None, path: str, wanted: Any
) -> None:
    resource = changed.run.one(token, name)
    assert dig(resource.inputs, path) == wanted, f"{resource}: {path}"


def test_lifecycle_and_flags_follow_the_settings(changed: ProdRun) -> None:
    bucket = changed.run.one(BUCKET)
    rules = {r["action"]["type"]: r["condition"]["age"] for r in bucket.inputs["lifecycleRules"]}
    assert rules == {
        "SetStorageClass": BACKUP["coldline_after_days"],
        "Delete": BACKUP["delete_after_days"],
    }, f"{bucket}"
    sql = changed.run.one(SQL, "postgres")
    flags = {f["name"]: f["value"] for f in sql.inputs["settings"]["databaseFlags"]}
    assert flags["log_min_duration_statement"] == str(POSTGRES["slow_statement_ms"]), f"{sql}"
    valkey = changed.run.one(VALKEY)
    window = valkey.inputs["maintenancePolicy"]["weeklyMaintenanceWindows"][0]
    assert (window["day"], window["startTime"]["hours"]) == ("WEDNESDAY", GCP["maintenance_hour"])
