"""Alerts under mocks: every policy reaches every configured channel and says what to do, and
each watches the right thing (the job, the instance, the verified-backup line backup-run
writes), with thresholds taken from the stack config."""

from __future__ import annotations

import json

import pytest

from infra.commands.backup import VERIFIED_EVENT
from infra.config import StackConfig
from tests.unit.gcp_program import ProdRun, run_prod
from tests.unit.pulumi_mocks import Declared, stack_config

POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
CHANNEL = "gcp:monitoring/notificationChannel:NotificationChannel"


@pytest.fixture(scope="module")
def prod() -> ProdRun:
    return run_prod()


def policy(prod: ProdRun, key: str) -> Declared:
    return prod.run.one(POLICY, f"alert-{key}")


def only_condition(found: Declared) -> dict[str, object]:
    (condition,) = found.inputs["conditions"]
    return dict(condition)


def test_channels_are_the_configured_addresses(prod: ProdRun, prod_config: StackConfig) -> None:
    channels = prod.run.of_type(CHANNEL)
    assert sorted(c.inputs["labels"]["email_address"] for c in channels) == sorted(
        prod_config.alerts.emails
    )
    assert all(c.inputs["type"] == "email" for c in channels)


def test_every_policy_has_every_channel_and_documentation(prod: ProdRun) -> None:
    channels = {
        f"projects/example-project/notificationChannels/{c.name}" for c in prod.run.of_type(CHANNEL)
    }
    policies = prod.run.of_type(POLICY)
    assert len(policies) >= 7, [str(p) for p in policies]
    for found in policies:
        assert set(found.inputs.get("notificationChannels") or []) == channels, f"{found}"
        docs = found.inputs.get("documentation") or {}
        assert docs.get("mimeType") == "text/markdown", f"{found}"
        content = docs.get("content", "")
        assert len(content) > 100, f"{found}: documentation too short to say what to do"
        assert "1." in content, f"{found}: documentation needs numbered steps"


def test_failed_job_execution(prod: ProdRun) -> None:
    job = prod.run.one("gcp:cloudrunv2/job:Job")
    condition = only_condition(policy(prod, "backup-job-failed"))["conditionThreshold"]
    assert isinstance(condition, dict)
    text = condition["filter"]
    assert "run.googleapis.com/job/completed_execution_count" in text
    assert f'resource.label.job_name = "{job.inputs["name"]}"' in text
    assert 'metric.label.result = "failed"' in text
    assert condition["thresholdValue"] == 0
    assert condition["comparison"] == "COMPARISON_GT"


def test_no_verified_backup_within_two_periods_per_service(
    prod: ProdRun, prod_config: StackConfig
) -> None:
    metric = prod.run.one("gcp:logging/metric:Metric")
    job = prod.run.one("gcp:cloudrunv2/job:Job")
    assert f'jsonPayload.event = "{VERIFIED_EVENT}"' in metric.inputs["filter"]
    assert f'resource.labels.job_name = "{job.inputs["name"]}"' in metric.inputs["filter"]
    assert metric.inputs["labelExtractors"] == {"service": "EXTRACT(jsonPayload.service)"}
    condition = only_condition(policy(prod, "no-verified-backup"))
    query = condition["conditionPrometheusQueryLanguage"]
    assert isinstance(query, dict)
    # Pulumi.prod.yaml: every 6 hours, so two periods are 12 hours.
    assert prod_config.backup.schedule == "0 */6 * * *"
    for spec in prod_config.services:
        term = (
            f"absent_over_time(logging_googleapis_com:user_{metric.inputs['name']}"
            f'{{service="{spec.name}"}}[43200s])'
        )
        assert term in query["query"], f"{spec.name}: {query['query']}"


def test_cloud_sql_thresholds_come_from_the_config(prod: ProdRun, prod_config: StackConfig) -> None:
    sql = prod.run.one("gcp:sql/databaseInstance:DatabaseInstance")
    flags = {f["name"]: f["value"] for f in sql.inputs["settings"]["databaseFlags"]}
    assert flags["max_connections"] == str(prod_config.postgres.max_connections)
    wanted = {
        "sql-disk": ("disk/utilization", 0.80),
        "sql-cpu": ("cpu/utilization", 0.85),
        "sql-connections": ("postgresql/num_backends", 0.9 * prod_config.postgres.max_connections),
    }
    for key, (metric, threshold) in wanted.items():
        condition = only_condition(policy(prod, key))["conditionThreshold"]
        assert isinstance(condition, dict)
        assert metric in condition["filter"], f"{key}: {condition['filter']}"
        assert f"example-project:{sql.inputs['name']}" in condition["filter"], key
        assert condition["thresholdValue"] == pytest.approx(threshold), key


def test_memorystore_and_rabbitmq(prod: ProdRun) -> None:
    valkey = prod.run.one("gcp:memorystore/instance:Instance")
    vms = sorted(prod.run.of_type("gcp:compute/instance:Instance"), key=lambda vm: vm.name)
    memory = only_condition(policy(prod, "redis-memory"))["conditionThreshold"]
    assert isinstance(memory, dict)
    assert "memorystore.googleapis.com/instance/memory/maximum_utilization" in memory["filter"]
    assert 'resource.type = "memorystore.googleapis.com/Instance"' in memory["filter"]
    assert f'instance_id = "{valkey.inputs["instanceId"]}"' in memory["filter"]
    # Prod's default cluster: one uptime condition per node.
    conditions = policy(prod, "rabbitmq-down").inputs["conditions"]
    assert len(conditions) == len(vms) == 3, [c["displayName"] for c in conditions]
    for vm, condition in zip(vms, conditions, strict=True):
        down = condition["conditionAbsent"]
        assert "compute.googleapis.com/instance/uptime" in down["filter"]
        assert f'metric.label.instance_name = "{vm.inputs["name"]}"' in down["filter"], vm


def test_rabbitmq_cluster_alerts_read_the_brokers_own_metrics(prod: ProdRun) -> None:
    """Partition, quorum and alarms query the Ops Agent's scrape of the nodes (PromQL), scoped
    to this stack's scrape job, so two stacks in one project never see each other's."""
    for key, metric in (
        ("rabbitmq-partition", "erlang_vm_dist_node_state"),
        ("rabbitmq-quorum", "rabbitmq_identity_info"),
        ("rabbitmq-alarm", "rabbitmq_alarms_memory_used_watermark"),
        ("rabbitmq-alarm", "rabbitmq_alarms_free_disk_space_watermark"),
    ):
        query = only_condition(policy(prod, key))["conditionPrometheusQueryLanguage"]
        assert isinstance(query, dict)
        assert f'{metric}{{job="persistence-prod-rabbitmq"}}' in query["query"], key
    quorum = only_condition(policy(prod, "rabbitmq-quorum"))["conditionPrometheusQueryLanguage"]
    assert isinstance(quorum, dict)
    assert quorum["query"].endswith("< 2"), quorum["query"]


def test_the_ops_agent_scrapes_what_the_alerts_query(prod: ProdRun) -> None:
    from infra.platforms.gcp import rabbitmq_vm

    for vm in prod.run.of_type("gcp:compute/instance:Instance"):
        config = vm.inputs["metadata"][rabbitmq_vm.OPS_AGENT_KEY]
        assert "job_name: persistence-prod-rabbitmq" in config, vm
        assert '"127.0.0.1:15692"' in config, vm


def test_the_gcp_platform_needs_an_alert_address() -> None:
    config = stack_config("prod")
    config["persistence:alerts"] = json.dumps({"emails": []})
    with pytest.raises(Exception, match=r"persistence:alerts\.emails must list at least one"):
        run_prod(config)
