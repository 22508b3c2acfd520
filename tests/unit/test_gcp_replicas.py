"""Prod's read replicas under mocks (issue 25): Cloud SQL read replicas of the primary in the
region's other zones, a disaster-recovery replica in another region, the read-only URLs on the
replicas' DNS name (the other URLs untouched), a replica-lag alert, and a stack in the recovery
region adopting the promoted DR replica as its instance (imported, never created)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from infra import naming
from infra.config.load import from_raw
from infra.errors import ConfigError
from tests.unit.gcp_program import ProdRun, run_prod, secret_urls
from tests.unit.pulumi_mocks import Declared, stack_config

SQL = "gcp:sql/databaseInstance:DatabaseInstance"
USER = "gcp:sql/user:User"
RECORD = "gcp:dns/recordSet:RecordSet"
POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
CHANNEL = "gcp:monitoring/notificationChannel:NotificationChannel"
REGION = "europe-west1"  # Pulumi.prod.yaml's gcp:region
DR_REGION = "europe-north1"
ZONE = "persistence.internal"  # Pulumi.prod.yaml's gcp.dns_zone, without the dot


def config_with(base: str = "prod", **sections: dict[str, Any]) -> dict[str, str]:
    """``base``'s stack file with keys of ``persistence:<section>`` replaced."""
    config = stack_config(base)
    for section, changes in sections.items():
        key = f"persistence:{section}"
        config[key] = json.dumps({**json.loads(config.get(key, "{}")), **changes})
    return config


@pytest.fixture(scope="module")
def none() -> ProdRun:
    return run_prod(config_with(postgres={"replicas": 0}))


@pytest.fixture(scope="module")
def three() -> ProdRun:
    """Three in-region replicas (more than the region's two other zones), a DR replica and a
    lag threshold no default uses."""
    return run_prod(
        config_with(
            postgres={"replicas": 3, "max_replica_lag_seconds": 45},
            gcp={"dr_replica_region": DR_REGION},
        )
    )


def primary(prod: ProdRun) -> Declared:
    return prod.run.one(SQL, "postgres")


def readers(prod: ProdRun) -> list[Declared]:
    found = [r for r in prod.run.of_type(SQL) if r.name.startswith("postgres-replica-")]
    return sorted(found, key=lambda r: r.name)


def dr_replica(prod: ProdRun) -> Declared:
    return prod.run.one(SQL, "postgres-dr-replica")


def flags(instance: Declared) -> dict[str, str]:
    return {f["name"]: f["value"] for f in instance.inputs["settings"]["databaseFlags"]}


# --- the replicas ---------------------------------------------------------------------------


def test_n_replicas_of_the_primary_each_named_for_a_person(three: ProdRun) -> None:
    found = readers(three)
    assert [r.inputs["name"] for r in found] == [
        "persistence-prod-pg-replica-1",
        "persistence-prod-pg-replica-2",
        "persistence-prod-pg-replica-3",
    ]
    main = primary(three).inputs
    for replica in found:
        inputs = replica.inputs
        assert inputs["masterInstanceName"] == main["name"], f"{replica}: replica of what?"
        assert inputs["instanceType"] == "READ_REPLICA_INSTANCE", f"{replica}"
        assert inputs["region"] == main["region"] == REGION, f"{replica}"
        assert inputs["databaseVersion"] == main["databaseVersion"], f"{replica}"
        for key in ("edition", "tier", "diskType"):
            assert inputs["settings"][key] == main["settings"][key], f"{replica}: {key}"


def test_replicas_sit_in_the_region_s_other_zones_spread_over_them(three: ProdRun) -> None:
    preferred = primary(three).inputs["settings"]["locationPreference"]["zone"]
    assert preferred == f"{REGION}-b", "the primary's zone is gcp.zone_suffix's once pinned"
    zones = [r.inputs["settings"]["locationPreference"]["zone"] for r in readers(three)]
    assert preferred not in zones, f"a replica shares the primary's zone: {zones}"
    # europe-west1 has zones b, c and d: two others, used in turn.
    assert zones == [f"{REGION}-c", f"{REGION}-d", f"{REGION}-c"], zones


def test_zone_suffix_moves_the_primary_and_the_replicas_follow() -> None:
    prod = run_prod(config_with(postgres={"replicas": 2}, gcp={"zone_suffix": "d"}))
    assert primary(prod).inputs["settings"]["locationPreference"]["zone"] == f"{REGION}-d"
    zones = {r.inputs["settings"]["locationPreference"]["zone"] for r in readers(prod)}
    assert zones == {f"{REGION}-b", f"{REGION}-c"}, zones


def test_replicas_carry_the_primary_s_flags(three: ProdRun) -> None:
    """Cloud SQL refuses a replica whose max_connections is below the primary's."""
    wanted = flags(primary(three))
    assert int(wanted["max_connections"]) > 0
    for replica in [*readers(three), dr_replica(three)]:
        assert flags(replica) == wanted, f"{replica}"


def test_replicas_are_private_encrypted_and_protected_twice(three: ProdRun) -> None:
    main_ip = primary(three).inputs["settings"]["ipConfiguration"]
    for replica in [*readers(three), dr_replica(three)]:
        settings = replica.inputs["settings"]
        ip = settings["ipConfiguration"]
        assert ip["ipv4Enabled"] is False, f"{replica}: public IPv4"
        assert not ip.get("authorizedNetworks"), f"{replica}"
        assert ip["privateNetwork"] == main_ip["privateNetwork"], f"{replica}: another network"
        assert ip["allocatedIpRange"] == main_ip["allocatedIpRange"], f"{replica}"
        assert ip["sslMode"] == "ENCRYPTED_ONLY", f"{replica}: TLS not required"
        assert settings["deletionProtectionEnabled"] is True, f"{replica}"
        assert replica.inputs["deletionProtection"] is True, f"{replica}"
        assert replica.protect, f"{replica}: Pulumi protect is not set"
        # Users replicate from the primary: a replica has no admin of its own.
    admins = {u.inputs["instance"] for u in three.run.of_type(USER)}
    assert admins == {primary(three).inputs["name"]}, admins


def test_no_replica_and_an_unchanged_primary_at_zero(none: ProdRun) -> None:
    """Existing stacks (postgres.replicas 0, the default) declare exactly what they did."""
    assert [r.name for r in none.run.of_type(SQL)] == ["postgres"]
    assert "locationPreference" not in primary(none).inputs["settings"], "the primary moves"
    assert not [r for r in none.run.of_type(RECORD) if "replicas" in r.name]
    assert "alert-sql-replica-lag" not in {p.name for p in none.run.of_type(POLICY)}
    assert none.run.exports["postgres_replicas"] == []
    assert none.run.exports["postgres_dr_replica"] is None
    assert none.run.exports["postgres_readonly_host"] == f"postgres.{ZONE}"


# --- reads go to the replicas ----------------------------------------------------------------


def test_the_replicas_name_holds_every_in_region_replica_and_no_other(three: ProdRun) -> None:
    record = three.run.one(RECORD, "dns-postgres-replicas")
    assert record.inputs["name"] == f"postgres-replicas.{ZONE}."
    assert record.inputs["type"] == "A"
    exported = three.run.exports["postgres_replicas"]
    ips = [replica["private_ip"] for replica in exported]
    assert len(set(ips)) == 3, f"the mocks give each replica its own IP: {ips}"
    assert sorted(record.inputs["rrdatas"]) == sorted(ips), record.inputs["rrdatas"]
    main = three.run.one(RECORD, "dns-postgres").inputs["rrdatas"]
    assert not set(main) & set(ips), "the primary is not a reader"
    assert [r["instance"] for r in exported] == [r.inputs["name"] for r in readers(three)]


def test_readonly_urls_go_to_the_replicas_and_the_others_stay(
    none: ProdRun, three: ProdRun
) -> None:
    for spec in three.platform.config.services:
        before, after = secret_urls(none, spec.name), secret_urls(three, spec.name)
        database = naming.database_name(spec.name)
        assert urlsplit(before["readonly"]).netloc.endswith(f"@postgres.{ZONE}:6432"), before
        assert urlsplit(after["readonly"]).netloc.endswith(f"@postgres-replicas.{ZONE}:5432"), (
            f"{spec.name}: {after['readonly']}"
        )
        assert urlsplit(after["readonly"]).path == f"/{database}"
        # Same login and password, another host: only where it reads changed.
        assert after["readonly"].split("@")[0] == before["readonly"].split("@")[0]
        for kind in ("app", "migrator"):
            assert after[kind] == before[kind], f"{spec.name} {kind} changed: {after[kind]}"
    assert three.run.exports["postgres_readonly_host"] == f"postgres-replicas.{ZONE}"


def test_without_the_pooler_readonly_still_reads_from_the_replicas() -> None:
    prod = run_prod(
        config_with(
            postgres={"replicas": 1, "pooler": {"enabled": False}},
            gcp={"sql_edition": "ENTERPRISE", "sql_tier": "db-custom-2-7680"},
        )
    )
    (replica,) = readers(prod)
    assert replica.inputs["settings"]["edition"] == "ENTERPRISE", f"{replica}"
    assert replica.inputs["settings"]["tier"] == "db-custom-2-7680", f"{replica}"
    urls = secret_urls(prod, "auth")
    assert f"@postgres-replicas.{ZONE}:5432/" in urls["readonly"], urls["readonly"]
    assert f"@postgres.{ZONE}:5432/" in urls["app"], urls["app"]


# --- the disaster-recovery replica -----------------------------------------------------------


def test_the_dr_replica_is_in_its_region_and_serves_no_reads(three: ProdRun) -> None:
    replica = dr_replica(three)
    inputs = replica.inputs
    assert inputs["name"] == "persistence-prod-pg-dr"
    assert inputs["region"] == DR_REGION
    assert inputs["masterInstanceName"] == primary(three).inputs["name"]
    assert "locationPreference" not in inputs["settings"], "a zone of another region"
    assert inputs["settings"]["userLabels"]["role"] == "dr-replica"
    assert three.run.exports["postgres_dr_replica"] == "persistence-prod-pg-dr"
    exported = {r["instance"] for r in three.run.exports["postgres_replicas"]}
    assert inputs["name"] not in exported, "the DR replica is no reader"


def test_a_dr_replica_alone_adds_no_reader() -> None:
    prod = run_prod(config_with(gcp={"dr_replica_region": DR_REGION}))
    assert not readers(prod)
    assert dr_replica(prod).inputs["region"] == DR_REGION
    assert "locationPreference" not in primary(prod).inputs["settings"]
    assert f"@postgres.{ZONE}:6432/" in secret_urls(prod, "auth")["readonly"]


def test_a_dr_replica_in_the_main_region_is_refused_in_one_line() -> None:
    with pytest.raises(
        Exception, match=r"Pulumi\.prod\.yaml: persistence:gcp\.dr_replica_region"
    ) as error:
        run_prod(config_with(gcp={"dr_replica_region": REGION}))
    message = str(error.value)
    assert "\n" not in message, "one line, no traceback"
    assert "gcp:region (europe-west1)" in message, message


# --- the lag alert ---------------------------------------------------------------------------


def test_a_lagging_replica_alerts_every_channel(three: ProdRun) -> None:
    policy = three.run.one(POLICY, "alert-sql-replica-lag")
    (condition,) = policy.inputs["conditions"]
    threshold = condition["conditionThreshold"]
    assert threshold["thresholdValue"] == 45, "postgres.max_replica_lag_seconds"
    assert threshold["duration"] == "300s"
    assert threshold["comparison"] == "COMPARISON_GT"
    text = threshold["filter"]
    assert 'metric.type = "cloudsql.googleapis.com/database/replication/replica_lag"' in text
    assert 'resource.type = "cloudsql_database"' in text
    watched = [*readers(three), dr_replica(three)]
    for replica in watched:
        assert f'"example-project:{replica.inputs["name"]}"' in text, f"{replica}: {text}"
    assert f'"example-project:{primary(three).inputs["name"]}"' not in text, "the primary lags?"
    channels = {
        f"projects/example-project/notificationChannels/{c.name}"
        for c in three.run.of_type(CHANNEL)
    }
    assert set(policy.inputs["notificationChannels"]) == channels
    assert "1." in policy.inputs["documentation"]["content"]


# --- adoption by the DR stack ----------------------------------------------------------------


def adopting(importing: bool) -> ProdRun:
    """The DR stack (``prod-dr`` in the DR region) adopting prod's promoted DR replica."""
    config = config_with(
        gcp={
            "sql_adopt_instance": "persistence-prod-pg-dr",
            "sql_adopt_importing": importing,
            "backup_region": "europe-west4",
            "sql_backup_location": "europe-west4",
        },
    )
    config["gcp:region"] = DR_REGION
    return run_prod(config, stack="prod-dr")


@pytest.fixture(scope="module")
def importing() -> ProdRun:
    return adopting(importing=True)


@pytest.fixture(scope="module")
def adopted() -> ProdRun:
    return adopting(importing=False)


def test_the_dr_stack_imports_the_promoted_replica_as_its_primary(
    three: ProdRun, importing: ProdRun
) -> None:
    main = primary(importing)
    promoted = dr_replica(three).inputs
    assert main.import_id == "projects/example-project/instances/persistence-prod-pg-dr"
    # What Cloud SQL cannot change in place is what the promoted replica already has: the
    # import matches, and no later run replaces it.
    for key in ("name", "region", "databaseVersion"):
        assert main.inputs[key] == promoted[key], f"{key}: {main.inputs[key]} != {promoted[key]}"
    assert "masterInstanceName" not in main.inputs, "the adopted instance is a primary"
    assert main.protect, f"{main}"
    # The promoted replica's settings (zonal, no backups) are taken as they are, this once.
    assert main.ignore_changes == ("settings",), main.ignore_changes
    admin = importing.run.one(USER, "postgres-admin")
    assert admin.import_id == "example-project/persistence-prod-pg-dr/platform_admin"
    assert set(admin.ignore_changes) == {"password", "deletionPolicy"}


def test_after_the_import_the_settings_converge_in_place(
    importing: ProdRun, adopted: ProdRun
) -> None:
    before, after = primary(importing), primary(adopted)
    assert after.urn == before.urn, "another resource: Pulumi would create or delete one"
    for key in ("name", "region", "databaseVersion"):
        assert after.inputs[key] == before.inputs[key], f"{key} changed: a replacement"
    assert after.ignore_changes == (), "the stack's settings must converge now"
    settings = after.inputs["settings"]
    assert settings["availabilityType"] == "REGIONAL"
    assert settings["backupConfiguration"]["pointInTimeRecoveryEnabled"] is True
    assert adopted.run.one(USER, "postgres-admin").ignore_changes == ()


def test_the_dr_stack_points_everything_at_the_adopted_instance(adopted: ProdRun) -> None:
    name = "persistence-prod-pg-dr"
    assert adopted.run.exports["postgres_instance"] == name
    assert not [r for r in adopted.run.of_type(SQL) if r.inputs["name"] == "persistence-prod-dr-pg"]
    # The services' name for PostgreSQL resolves to the adopted instance's address...
    record = adopted.run.one(RECORD, "dns-postgres")
    assert record.inputs["rrdatas"] == [adopted.run.exports["postgres_private_ip"]]
    # ... and their secrets use that name, with the DR stack's own logins.
    for spec in adopted.platform.config.services:
        urls = secret_urls(adopted, spec.name)
        assert f"@postgres.{ZONE}:6432/" in urls["app"], urls["app"]
        assert f"@postgres.{ZONE}:5432/" in urls["migrator"], urls["migrator"]
    # Backups, the admin login and the alerts follow it.
    grant = adopted.run.one("gcp:projects/iAMMember:IAMMember", "backup-job-sql-client")
    expression = grant.inputs["condition"]["expression"]
    assert f'"projects/example-project/instances/{name}"' in expression, expression
    assert adopted.run.one(USER, "postgres-admin").inputs["instance"] == name
    disk = adopted.run.one(POLICY, "alert-sql-disk").inputs["conditions"][0]
    assert f"example-project:{name}" in disk["conditionThreshold"]["filter"]


def test_a_stack_without_the_key_imports_nothing(none: ProdRun) -> None:
    assert not [str(r) for r in none.run if r.import_id], "nothing is adopted by default"


def raw(**gcp: Any) -> dict[str, Any]:
    return {
        "platform": "gcp",
        "services": [{"name": "auth"}],
        "alerts": {"emails": ["oncall@example.com"]},
        "gcp": gcp,
    }


def refused(**gcp: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        from_raw(raw(**gcp), "Pulumi.prod-dr.yaml")
    (line,) = caught.value.problems
    assert "\n" not in line, line
    assert line.startswith("Pulumi.prod-dr.yaml: persistence:gcp"), line
    return line


@pytest.mark.parametrize("name", ["persistence-prod-pg", "someone-elses-db", "Persistence-pg-dr"])
def test_only_a_dr_replica_this_tool_named_can_be_adopted(name: str) -> None:
    line = refused(sql_adopt_instance=name)
    assert "sql_adopt_instance" in line, line
    assert "persistence-prod-pg-dr" in line, line


def test_importing_without_an_instance_is_refused() -> None:
    line = refused(sql_adopt_importing=True)
    assert "sql_adopt_instance" in line, line


@pytest.mark.parametrize(
    ("adopt", "why"),
    [("persistence-prod-dr-pg-dr", "this stack's own"), ("elsewhere-prod-pg-dr", "project")],
)
def test_adopting_its_own_dr_replica_or_another_project_s_is_refused(adopt: str, why: str) -> None:
    config = config_with(gcp={"sql_adopt_instance": adopt})
    config["gcp:region"] = DR_REGION
    with pytest.raises(
        Exception, match=r"Pulumi\.prod-dr\.yaml: persistence:gcp\.sql_adopt"
    ) as error:
        run_prod(config, stack="prod-dr")
    assert "\n" not in str(error.value)
    assert why in str(error.value), str(error.value)
