"""Cloud Monitoring: what pages someone, and what they should do when it does.

Every policy goes to every channel in ``alerts.emails`` and carries documentation written for
the person woken up by it. Policies:

- a backup job execution failed (Cloud Run's own execution metric);
- a service had no verified backup for two schedule periods: ``backup-run`` writes one
  structured log line per verified backup, a log-based metric counts them per service, and a
  PromQL ``absent_over_time`` notices their absence (metric-absence conditions stop at one
  day; two periods of a daily schedule are two);
- Cloud SQL disk, sustained CPU, connections near ``postgres.max_connections``, and clients
  waiting at the pooled endpoint (Managed Connection Pooling) when ``postgres.pooler.enabled``;
- a read replica (the DR one included) lagging more than ``postgres.max_replica_lag_seconds``
  behind the primary for 5 minutes, when the stack has replicas;
- Memorystore memory usage;
- the RabbitMQ VM down: its hypervisor ``uptime`` metric stops (stopped, crashed, deleted,
  preempted). It needs no agent and no firewall hole; it does not see the broker process
  dying on a running VM (a private TCP uptime check through Service Directory would).
- a RabbitMQ cluster (``rabbitmq.nodes`` 3 or 5) instead: a node down (each VM's uptime), a
  partition, quorum lost and a memory or disk alarm, the last three in PromQL over the
  brokers' own Prometheus metrics, which the nodes' Ops Agent scrapes (``cluster_queries``).
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra.backup.schedule import longest_gap_seconds
from infra.commands.backup import VERIFIED_EVENT
from infra.platforms.gcp import names
from infra.platforms.gcp.context import GcpContext

MARKDOWN = "text/markdown"


def declare(
    ctx: GcpContext,
    *,
    backup_job: gcp.cloudrunv2.Job,
    sql_instance: str,
    valkey_instance: gcp.memorystore.Instance,
    rabbitmq: list[gcp.compute.Instance],
    sql_replicas: list[str] | None = None,
) -> list[gcp.monitoring.AlertPolicy]:
    """Declare the channels, the verified-backup metric and every policy (``rabbitmq``: the
    broker VMs; more than one is a cluster, with its own policies; ``sql_replicas``: the
    Cloud SQL read replicas' names)."""
    channels = [
        gcp.monitoring.NotificationChannel(
            f"alert-email-{index}",
            display_name=f"{ctx.prefix} alerts: {address}",
            type="email",
            labels={"email_address": address},
            user_labels=ctx.labels,
            opts=ctx.opts(),
        ).name
        for index, address in enumerate(ctx.config.alerts.emails)
    ]
    metric = verified_backup_metric(ctx, backup_job)
    alerts = ctx.config.alerts
    database_id = f"{ctx.project}:{sql_instance}"
    sql_filter = (
        f'resource.type = "cloudsql_database" AND resource.label.database_id = "{database_id}"'
    )
    return [
        _policy(
            ctx,
            "backup-job-failed",
            channels,
            title="Backup job execution failed",
            docs=BACKUP_FAILED_DOCS,
            condition=_threshold(
                "A backup job execution failed",
                backup_job.name.apply(
                    lambda job: (
                        'metric.type = "run.googleapis.com/job/completed_execution_count" '
                        'AND resource.type = "cloud_run_job" '
                        f'AND resource.label.job_name = "{job}" AND metric.label.result = "failed"'
                    )
                ),
                threshold=0,
                duration="0s",
                aligner="ALIGN_DELTA",
            ),
        ),
        _policy(
            ctx,
            "no-verified-backup",
            channels,
            title="No verified backup within two schedule periods",
            docs=NO_VERIFIED_DOCS,
            condition=gcp.monitoring.AlertPolicyConditionArgs(
                display_name="A service has no verified backup within 2 x backup.schedule",
                condition_prometheus_query_language=gcp.monitoring.AlertPolicyConditionConditionPrometheusQueryLanguageArgs(
                    query=metric.name.apply(lambda name: missing_backups_query(ctx, name)),
                    duration="0s",
                    evaluation_interval="300s",
                ),
            ),
            depends_on=[metric],
        ),
        _policy(
            ctx,
            "sql-disk",
            channels,
            title="Cloud SQL disk almost full",
            docs=SQL_DISK_DOCS,
            condition=_threshold(
                f"Cloud SQL disk above {alerts.sql_disk_percent} %",
                'metric.type = "cloudsql.googleapis.com/database/disk/utilization" AND '
                + sql_filter,
                threshold=alerts.sql_disk_percent / 100,
                duration="600s",
            ),
        ),
        _policy(
            ctx,
            "sql-cpu",
            channels,
            title="Cloud SQL CPU high for 15 minutes",
            docs=SQL_CPU_DOCS,
            condition=_threshold(
                f"Cloud SQL CPU above {alerts.sql_cpu_percent} % for 15 min",
                'metric.type = "cloudsql.googleapis.com/database/cpu/utilization" AND '
                + sql_filter,
                threshold=alerts.sql_cpu_percent / 100,
                duration="900s",
            ),
        ),
        _policy(
            ctx,
            "sql-connections",
            channels,
            title="Cloud SQL connections near max_connections",
            docs=SQL_CONNECTIONS_DOCS,
            condition=_threshold(
                f"Connections above {alerts.sql_connections_percent} % of max_connections",
                'metric.type = "cloudsql.googleapis.com/database/postgresql/num_backends" AND '
                + sql_filter,
                threshold=connection_threshold(ctx),
                duration="300s",
                # num_backends is per database: the server's limit is on their sum.
                reducer="REDUCE_SUM",
                group_by=["resource.label.database_id"],
            ),
        ),
        *(
            [pooler_waiting_policy(ctx, channels, database_id)]
            if ctx.config.postgres.pooler.enabled
            else []
        ),
        *([replica_lag_policy(ctx, channels, sql_replicas)] if sql_replicas else []),
        _policy(
            ctx,
            "redis-memory",
            channels,
            title="Memorystore memory usage high",
            docs=REDIS_MEMORY_DOCS,
            condition=_threshold(
                f"Memorystore memory above {alerts.redis_memory_percent} %",
                valkey_instance.instance_id.apply(
                    lambda name: (
                        'metric.type = "memorystore.googleapis.com/instance/memory/'
                        'maximum_utilization" AND resource.type = '
                        '"memorystore.googleapis.com/Instance" AND '
                        f'resource.label.instance_id = "{name}"'
                    )
                ),
                threshold=alerts.redis_memory_percent / 100,
                duration="600s",
            ),
        ),
        *(
            [
                _policy(
                    ctx,
                    "rabbitmq-down",
                    channels,
                    title="RabbitMQ VM down",
                    docs=RABBITMQ_DOCS,
                    condition=_vm_absent(
                        rabbitmq[0], "The RabbitMQ VM reports no uptime for 5 minutes"
                    ),
                )
            ]
            if len(rabbitmq) == 1
            else rabbitmq_cluster_policies(ctx, channels, rabbitmq)
        ),
    ]


# Managed Connection Pooling's client connections per database, by ``status`` ('active' or
# 'waiting'), on the ``cloudsql_instance_database`` resource (Cloud SQL metrics reference:
# https://cloud.google.com/sql/docs/postgres/admin-api/metrics).
POOLER_CLIENTS_METRIC = "cloudsql.googleapis.com/per_database/conn_pool/client_connections"


def pooler_waiting_policy(
    ctx: GcpContext, channels: list[pulumi.Output[str]], resource_id: str
) -> gcp.monitoring.AlertPolicy:
    """Clients have waited for a server connection at the pooled endpoint for 5 minutes: more
    than ``alerts.sql_pooler_waiting_clients`` of them, every database together."""
    limit = ctx.config.alerts.sql_pooler_waiting_clients
    return _policy(
        ctx,
        "sql-pooler-waiting",
        channels,
        title="Clients waiting for a PostgreSQL connection at the pooler",
        docs=SQL_POOLER_WAITING_DOCS,
        condition=_threshold(
            f"More than {limit} clients waiting for a server connection for 5 min",
            f'metric.type = "{POOLER_CLIENTS_METRIC}" AND metric.label.status = "waiting" AND '
            'resource.type = "cloudsql_instance_database" AND '
            f'resource.label.resource_id = "{resource_id}"',
            threshold=limit,
            duration="300s",
            reducer="REDUCE_SUM",
            group_by=["resource.label.resource_id"],
        ),
    )


REPLICA_LAG_METRIC = "cloudsql.googleapis.com/database/replication/replica_lag"


def replica_lag_policy(
    ctx: GcpContext, channels: list[pulumi.Output[str]], replicas: list[str]
) -> gcp.monitoring.AlertPolicy:
    """A replica (any of ``replicas``, by instance name) has lagged more than
    ``postgres.max_replica_lag_seconds`` behind the primary for 5 minutes."""
    limit = ctx.config.postgres.max_replica_lag_seconds
    ids = ", ".join(f'"{ctx.project}:{name}"' for name in replicas)
    return _policy(
        ctx,
        "sql-replica-lag",
        channels,
        title="PostgreSQL read replica lagging behind the primary",
        docs=SQL_REPLICA_LAG_DOCS,
        condition=_threshold(
            f"A replica more than {limit} s behind the primary for 5 min",
            f'metric.type = "{REPLICA_LAG_METRIC}" AND resource.type = "cloudsql_database" AND '
            f"resource.label.database_id = one_of({ids})",
            threshold=limit,
            duration="300s",
            # One series per replica: the worst minute of each, each replica on its own.
            aligner="ALIGN_MAX",
        ),
    )


def _vm_absent(
    instance: gcp.compute.Instance, display_name: str
) -> gcp.monitoring.AlertPolicyConditionArgs:
    """The VM's hypervisor ``uptime`` stopped for 5 minutes: stopped, crashed, deleted."""
    return gcp.monitoring.AlertPolicyConditionArgs(
        display_name=display_name,
        condition_absent=gcp.monitoring.AlertPolicyConditionConditionAbsentArgs(
            filter=instance.name.apply(
                lambda name: (
                    'metric.type = "compute.googleapis.com/instance/uptime" '
                    'AND resource.type = "gce_instance" '
                    f'AND metric.label.instance_name = "{name}"'
                )
            ),
            duration="300s",
            aggregations=[
                gcp.monitoring.AlertPolicyConditionConditionAbsentAggregationArgs(
                    alignment_period="60s", per_series_aligner="ALIGN_RATE"
                )
            ],
        ),
    )


def _promql(
    display_name: str, query: str, duration: str
) -> gcp.monitoring.AlertPolicyConditionArgs:
    return gcp.monitoring.AlertPolicyConditionArgs(
        display_name=display_name,
        condition_prometheus_query_language=gcp.monitoring.AlertPolicyConditionConditionPrometheusQueryLanguageArgs(
            query=query, duration=duration, evaluation_interval="60s"
        ),
    )


def cluster_queries(job: str, nodes: int) -> dict[str, str]:
    """PromQL over the brokers' own metrics (the Ops Agent scrapes each node's loopback
    Prometheus endpoint as ``job``), by policy key.

    - partition: fewer Erlang distribution links up (``erlang_vm_dist_node_state`` 3) than a
      fully connected mesh of the nodes that report (``rabbitmq_identity_info``) has;
    - quorum: fewer nodes report than a majority of ``nodes``; every quorum queue has one
      member per node, so every one of them is then below quorum and refuses publishes;
    - alarm: a node's memory or free-disk alarm is set (publishers blocked).
    """
    selector = f'{{job="{job}"}}'
    up = f"count(rabbitmq_identity_info{selector})"
    links = f"count(erlang_vm_dist_node_state{selector} == 3)"
    return {
        "rabbitmq-partition": f"({links} or vector(0)) < {up} * ({up} - 1)",
        "rabbitmq-quorum": f"({up} or vector(0)) < {nodes // 2 + 1}",
        "rabbitmq-alarm": (
            f"max(rabbitmq_alarms_memory_used_watermark{selector}) > 0 or "
            f"max(rabbitmq_alarms_free_disk_space_watermark{selector}) > 0"
        ),
    }


def rabbitmq_cluster_policies(
    ctx: GcpContext, channels: list[pulumi.Output[str]], instances: list[gcp.compute.Instance]
) -> list[gcp.monitoring.AlertPolicy]:
    """A node down (one condition per VM), a partition, quorum lost, a memory or disk alarm."""
    from infra.platforms.gcp.rabbitmq_cluster import prometheus_job

    queries = cluster_queries(prometheus_job(ctx), len(instances))
    return [
        _policy(
            ctx,
            "rabbitmq-down",
            channels,
            title="RabbitMQ node down",
            docs=RABBITMQ_NODE_DOCS,
            conditions=[
                _vm_absent(instance, f"RabbitMQ node {index} reports no uptime for 5 minutes")
                for index, instance in enumerate(instances, start=1)
            ],
        ),
        _policy(
            ctx,
            "rabbitmq-partition",
            channels,
            title="RabbitMQ cluster partitioned",
            docs=RABBITMQ_PARTITION_DOCS,
            condition=_promql(
                "Running nodes do not all see each other", queries["rabbitmq-partition"], "120s"
            ),
        ),
        _policy(
            ctx,
            "rabbitmq-quorum",
            channels,
            title="RabbitMQ quorum queues below quorum",
            docs=RABBITMQ_QUORUM_DOCS,
            condition=_promql(
                "Fewer than a majority of the nodes run", queries["rabbitmq-quorum"], "60s"
            ),
        ),
        _policy(
            ctx,
            "rabbitmq-alarm",
            channels,
            title="RabbitMQ memory or disk alarm",
            docs=RABBITMQ_ALARM_DOCS,
            condition=_promql(
                "A node's memory or free-disk alarm is set", queries["rabbitmq-alarm"], "60s"
            ),
        ),
    ]


def verified_backup_metric(ctx: GcpContext, job: gcp.cloudrunv2.Job) -> gcp.logging.Metric:
    """Counts ``backup-run``'s "verified" log lines, per service."""
    return gcp.logging.Metric(
        "backup-verified-metric",
        name=names.scoped(ctx.prefix.replace("-", "_"), "backup_verified", names.LOG_METRIC),
        description="Backups verified by the backup job (one per verified backup), by service",
        filter=job.name.apply(
            lambda name: (
                'resource.type = "cloud_run_job" '
                f'AND resource.labels.job_name = "{name}" '
                f'AND jsonPayload.event = "{VERIFIED_EVENT}"'
            )
        ),
        metric_descriptor=gcp.logging.MetricMetricDescriptorArgs(
            metric_kind="DELTA",
            value_type="INT64",
            unit="1",
            labels=[
                gcp.logging.MetricMetricDescriptorLabelArgs(
                    key="service", value_type="STRING", description="the verified service"
                )
            ],
        ),
        label_extractors={"service": "EXTRACT(jsonPayload.service)"},
        opts=ctx.opts(),
    )


def missing_window_seconds(ctx: GcpContext) -> int:
    """Two schedule periods (the longest gap of the cron expression)."""
    return int(2 * longest_gap_seconds(ctx.config.backup.schedule))


def missing_backups_query(ctx: GcpContext, metric_name: str) -> str:
    """PromQL: one series per service whose verified-backup count was absent for the window.

    ``absent_over_time`` only knows the labels in its selector, so each service has its own
    term; the alert's labels then name the service that stopped.
    """
    window = missing_window_seconds(ctx)
    series = f"logging_googleapis_com:user_{metric_name}"
    terms = [
        f'absent_over_time({series}{{service="{spec.name}"}}[{window}s])'
        for spec in ctx.config.services
    ]
    return " or ".join(terms)


def connection_threshold(ctx: GcpContext) -> float:
    """``alerts.sql_connections_percent`` of ``postgres.max_connections`` (a Cloud SQL flag)."""
    return ctx.config.postgres.max_connections * ctx.config.alerts.sql_connections_percent / 100


def _threshold(
    display_name: str,
    filter_: pulumi.Input[str],
    *,
    threshold: float,
    duration: str,
    aligner: str = "ALIGN_MEAN",
    reducer: str | None = None,
    group_by: list[str] | None = None,
) -> gcp.monitoring.AlertPolicyConditionArgs:
    return gcp.monitoring.AlertPolicyConditionArgs(
        display_name=display_name,
        condition_threshold=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
            filter=filter_,
            comparison="COMPARISON_GT",
            threshold_value=threshold,
            duration=duration,
            aggregations=[
                gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                    alignment_period="300s" if aligner == "ALIGN_DELTA" else "60s",
                    per_series_aligner=aligner,
                    cross_series_reducer=reducer,
                    group_by_fields=group_by,
                )
            ],
            trigger=gcp.monitoring.AlertPolicyConditionConditionThresholdTriggerArgs(count=1),
        ),
    )


def _policy(
    ctx: GcpContext,
    key: str,
    channels: list[pulumi.Output[str]],
    *,
    title: str,
    docs: str,
    condition: gcp.monitoring.AlertPolicyConditionArgs | None = None,
    conditions: list[gcp.monitoring.AlertPolicyConditionArgs] | None = None,
    depends_on: list[pulumi.Resource] | None = None,
) -> gcp.monitoring.AlertPolicy:
    return gcp.monitoring.AlertPolicy(
        f"alert-{key}",
        display_name=f"{ctx.prefix}: {title}",
        combiner="OR",
        conditions=conditions if conditions is not None else [condition] if condition else [],
        notification_channels=channels,
        documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
            subject=f"[{ctx.stack}] {title}",
            content=docs.strip(),
            mime_type=MARKDOWN,
        ),
        alert_strategy=gcp.monitoring.AlertPolicyAlertStrategyArgs(auto_close="86400s"),
        severity="CRITICAL" if key in CRITICAL else "WARNING",
        user_labels=ctx.labels,
        opts=ctx.opts(depends_on=depends_on),
    )


CRITICAL = {
    "backup-job-failed",
    "no-verified-backup",
    "sql-disk",
    "rabbitmq-down",
    "rabbitmq-partition",
    "rabbitmq-quorum",
}

BACKUP_FAILED_DOCS = """
A run of the backup job failed: some backup, verification or prune did not complete.

1. Open the failed execution's logs (Cloud Run > Jobs > the job > Executions): the last line
   `error: backup-run failed: ...` names every failed service and step.
2. A verification failure means a backup does not restore: keep that backup (do not prune it
   by hand) and investigate it with `python -m infra list --bucket gs://BUCKET/verified`.
3. Fix the cause, then run the job once by hand (`gcloud run jobs execute JOB --region REGION
   --wait`) and check that it exits 0.
"""

NO_VERIFIED_DOCS = """
A service (label `service`) has had no verified backup for two schedule periods: restores
would lose more data than the backup schedule promises.

1. Check the backup job's recent executions and the Cloud Scheduler job (paused? failing to
   start the job: its identity may only run this one job).
2. Run the job once by hand (`gcloud run jobs execute JOB --region REGION --wait`) and read
   its last line.
3. Until it is fixed, Cloud SQL's automated backups with point-in-time recovery still cover
   the instance (see README, Disaster recovery (prod)).
"""

SQL_DISK_DOCS = """
The Cloud SQL instance's disk is more than the alert's share full. Automatic storage increase
is on, but it grows in steps and never shrinks.

1. Find the largest databases and tables (`pg_database_size`, `pg_total_relation_size`).
2. Look for bloat or runaway growth (a service writing far more than usual) and tell its team.
3. If the growth is legitimate, raise `gcp.sql_disk_size_gb` in the stack file and deploy.
"""

SQL_CPU_DOCS = """
Cloud SQL CPU has been high for 15 minutes.

1. Query Insights (Cloud SQL > the instance > Query insights) names the expensive queries
   and, through application tags, the service that runs them.
2. Ask that service's team to fix or throttle them; `statement_timeout_ms` bounds one query.
3. If the load is legitimate, raise `gcp.sql_tier` (a restart: plan a window).
"""

SQL_CONNECTIONS_DOCS = """
Connections are close to `postgres.max_connections`: new connections will soon be refused,
first for services, then for the admin and the backup job.

1. `SELECT usename, count(*) FROM pg_stat_activity GROUP BY 1 ORDER BY 2 DESC` names the
   login holding them (each service has its own logins).
2. A service over its `connection_limits` cannot pass them; look for leaked or idle sessions
   (`idle_in_transaction_session_timeout_ms` ends the worst).
3. Raise `postgres.max_connections` only together with the instance tier's memory.
"""

SQL_POOLER_WAITING_DOCS = """
Clients of the pooled endpoint (DATABASE_URL and READONLY_DATABASE_URL, port 6432) have been
waiting for a server connection for 5 minutes: a pool (one per service login and database) is
busy to its limit, so requests queue and, after the pooler's query wait timeout, fail.

1. Metrics Explorer, `per_database/conn_pool/client_connections` by `database` and `status`:
   the database with waiting clients names the service.
2. Long transactions hold server connections in `pool_mode: transaction` too:
   `SELECT usename, state, now() - xact_start FROM pg_stat_activity ORDER BY 3 DESC` finds
   them; ask that service's team to shorten them (`statement_timeout_ms` bounds one query).
3. If the load is legitimate, raise the service's `connection_limits` (and
   `postgres.max_connections` with the tier), or `gcp.sql_tier`, and deploy.
"""

SQL_REPLICA_LAG_DOCS = """
A Cloud SQL read replica (label `database_id`) has been more than
`postgres.max_replica_lag_seconds` behind the primary for 5 minutes. READONLY_DATABASE_URL
reads from the in-region replicas, so services read data that old; the disaster-recovery
replica's lag is the data a regional disaster would lose.

1. Cloud SQL > the replica > Replication: is it replicating at all (`gcloud sql instances
   describe REPLICA --format='value(state,replicaConfiguration)'`)? A stopped replica is
   restarted with `gcloud sql instances restart REPLICA`.
2. On the replica, `SELECT now() - pg_last_xact_replay_timestamp()` shows the replay lag;
   long queries on a hot standby delay replay: `SELECT pid, now() - xact_start, query FROM
   pg_stat_activity ORDER BY 2 DESC` finds them (through READONLY_DATABASE_URL: a service's).
3. A write burst on the primary (a migration, a bulk load) lags every replica for a while;
   if the replicas lag all the time, raise `gcp.sql_tier` (replicas take the primary's).
"""

REDIS_MEMORY_DOCS = """
Memorystore's memory usage is high. With `redis.maxmemory_policy: noeviction`, writes fail
when it is full.

1. `valkey-cli --bigkeys` / `MEMORY USAGE` as the admin user on the largest key prefixes (one
   prefix per service) names the service growing.
2. Ask that service's team for TTLs on cache keys.
3. If the growth is legitimate, move `gcp.valkey_node_type` to the next size and deploy
   (Memorystore scales the nodes in place).
"""

RABBITMQ_DOCS = """
The RabbitMQ VM reports no uptime: it is stopped, crashed, being recreated or deleted.
Services cannot publish or consume.

1. Compute Engine > VM instances: start it if it is stopped; read its serial console if it
   does not boot. The data disk is separate and snapshotted daily.
2. After it is up, `rabbitmq-diagnostics check_running` on the VM (through IAP SSH).
3. If the VM is lost, `pulumi up` recreates it from code, with the data disk or its latest
   snapshot (README, Disaster recovery (prod)).
"""

RABBITMQ_NODE_DOCS = """
A RabbitMQ node's VM reports no uptime: it is stopped, crashed, being recreated or deleted.
The cluster keeps serving through the load balancer while a majority of nodes runs; quorum
queues elect a new leader, classic queues on that node are unavailable until it returns.

1. Compute Engine > VM instances: start it if it is stopped; read its serial console if it
   does not boot. Its data disk is separate and snapshotted daily.
2. Once it is up, it rejoins the cluster by itself (classic_config peer discovery);
   `rabbitmq-diagnostics cluster_status` on any node (IAP SSH) lists it as running.
3. If the VM is lost, `pulumi up` recreates it from code, with its data disk.
"""

RABBITMQ_PARTITION_DOCS = """
Running RabbitMQ nodes do not all see each other (fewer Erlang distribution links are up
than a full mesh of the reporting nodes has). With pause_minority, the nodes on the minority
side pause themselves and the majority keeps serving; a node down also lowers the count
(see the node-down alert first).

1. `rabbitmq-diagnostics cluster_status` on each node (IAP SSH) shows who sees whom.
2. Check the firewall rule allowing the clustering ports between broker VMs, and the VMs'
   network (serial console, `ping rabbitmq-N.<zone>`).
3. Paused nodes resume on their own when the network heals; if one does not, restart its
   `rabbitmq-server` service (one node at a time).
"""

RABBITMQ_QUORUM_DOCS = """
Fewer than a majority of the RabbitMQ nodes are running: every quorum queue (one member per
node) has lost its quorum and refuses publishes and deliveries until a majority is back.

1. Start the stopped nodes first (Compute Engine > VM instances; node-down alerts name them).
2. `rabbitmq-diagnostics cluster_status` and `rabbitmq-queues check_if_node_is_quorum_critical`
   on a running node tell what is still missing.
3. Do not reset or force-remove nodes to get a quorum back: that loses messages.
"""

RABBITMQ_ALARM_DOCS = """
A RabbitMQ node's memory alarm (`rabbitmq.memory_high_watermark`) or free-disk alarm
(`rabbitmq.disk_free_limit_mb`) is set: publishers on the whole cluster are blocked.

1. `rabbitmq-diagnostics alarms` and `rabbitmq-diagnostics memory_breakdown` on the node.
2. Find the queue growing (management UI through the broker tunnel, or
   `rabbitmqctl list_queues name messages memory` per vhost) and tell its service's team.
3. If the load is legitimate, raise `gcp.rabbitmq_machine_type` or `gcp.rabbitmq_disk_size_gb`
   and roll the nodes (`python -m infra broker rolling-restart`).
"""
