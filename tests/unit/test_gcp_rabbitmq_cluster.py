"""The prod broker under Pulumi mocks, for 1, 3 and 5 nodes in several regions: invariants that
hold whatever the inputs (zones, disks, addresses, the cookie's readers, the firewall's
sources, the services' endpoint), each failing with the resource that broke it.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from typing import Any

import pytest

from infra import naming
from infra.config.model import StackConfig
from infra.platforms.gcp import rabbitmq_cluster, rabbitmq_vm
from infra.render import endpoints, rabbitmq
from tests.unit.pulumi_mocks import Declared, ProgramRun, is_secret, run_program, stack_config

INSTANCE = "gcp:compute/instance:Instance"
DISK = "gcp:compute/disk:Disk"
POLICY = "gcp:compute/resourcePolicy:ResourcePolicy"
FIREWALL = "gcp:compute/firewall:Firewall"
SECRET = "gcp:secretmanager/secret:Secret"
SECRET_VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
SECRET_READER = "gcp:secretmanager/secretIamMember:SecretIamMember"
PROJECT_MEMBER = "gcp:projects/iAMMember:IAMMember"
RECORD = "gcp:dns/recordSet:RecordSet"
ADDRESS = "gcp:compute/address:Address"
FORWARDING = "gcp:compute/forwardingRule:ForwardingRule"
BACKEND = "gcp:compute/regionBackendService:RegionBackendService"
GROUP = "gcp:compute/instanceGroup:InstanceGroup"
ALERT = "gcp:monitoring/alertPolicy:AlertPolicy"
DYNAMIC = "pulumi-python:dynamic:Resource"

BROKER_SA = "prod-rabbitmq-vm@example-project.iam.gserviceaccount.com"
# The mock's RandomPassword result for the cookie (tests.unit.pulumi_mocks.OUTPUT_HOOKS).
COOKIE_VALUE = "mockpwrabbitmqerlangcookie0123456789"
# Each region with a backup region that differs from it.
REGIONS = {"europe-west1": "europe-west4", "us-east1": "us-west1", "asia-southeast1": "asia-east1"}
CASES = [
    (1, "europe-west1"),
    (3, "europe-west1"),
    (5, "europe-west1"),
    (1, "us-east1"),
    (3, "us-east1"),
    (5, "us-east1"),
    (3, "asia-southeast1"),
]


def config_for(nodes: int, region: str, *, extra_service: bool = False) -> dict[str, str]:
    """The prod stack file with ``rabbitmq.nodes``, ``gcp:region`` and a backup region set."""
    config = stack_config("prod")
    config["gcp:region"] = region
    gcp = json.loads(config["persistence:gcp"])
    gcp.update(backup_region=REGIONS[region], sql_backup_location=REGIONS[region])
    config["persistence:gcp"] = json.dumps(gcp)
    mq = json.loads(config.get("persistence:rabbitmq", "{}"))
    config["persistence:rabbitmq"] = json.dumps({**mq, "nodes": nodes})
    if extra_service:
        services = json.loads(config["persistence:services"])
        services.append({"name": "billing", "queues": [{"name": "billing.due", "type": "quorum"}]})
        config["persistence:services"] = json.dumps(services)
    return config


@functools.cache
def run_for(nodes: int, region: str, extra_service: bool = False) -> ProgramRun:
    return run_program("prod", config_for(nodes, region, extra_service=extra_service))


def brokers(run: ProgramRun) -> list[Declared]:
    return [r for r in run.of_type(INSTANCE) if r.name.startswith("rabbitmq")]


def by_id(run: ProgramRun, token: str) -> dict[str, Declared]:
    """Resources of ``token`` by the id the mocks gave them (``<name>-id``)."""
    return {f"{r.name}-id": r for r in run.of_type(token)}


@pytest.fixture(params=CASES, ids=[f"{n}-nodes-{region}" for n, region in CASES])
def case(request: pytest.FixtureRequest) -> tuple[int, str, ProgramRun]:
    nodes, region = request.param
    return nodes, region, run_for(nodes, region)


def test_one_vm_per_node_spread_so_that_losing_a_zone_keeps_a_majority(
    case: tuple[int, str, ProgramRun],
) -> None:
    nodes, region, run = case
    vms = brokers(run)
    assert len(vms) == nodes, f"{nodes} nodes declared {[str(v) for v in vms]}"
    zones = Counter(vm.inputs["zone"] for vm in vms)
    for zone in zones:
        assert zone.startswith(f"{region}-"), f"{zone} is not in {region}"
    if nodes == 3:
        assert len(zones) == 3, f"3 nodes must be in 3 different zones, got {dict(zones)}"
    if nodes > 1:
        majority = nodes // 2 + 1
        assert len(zones) == 3, f"{nodes} nodes must use three zones, got {dict(zones)}"
        assert max(zones.values()) < majority, f"one zone holds a majority: {dict(zones)}"


def test_every_node_has_its_own_snapshotted_data_disk_in_its_zone(
    case: tuple[int, str, ProgramRun],
) -> None:
    _, _, run = case
    disks = by_id(run, DISK)
    policies = by_id(run, POLICY)
    used_disks, used_policies = set(), set()
    for vm in brokers(run):
        (attached,) = vm.inputs["attachedDisks"]
        disk = disks[attached["source"]]
        assert disk.inputs["zone"] == vm.inputs["zone"], f"{vm}: {disk} in another zone"
        assert disk.protect, f"{disk}: a data disk must be protected"
        (policy_id,) = disk.inputs["resourcePolicies"]
        policy = policies[policy_id]
        assert policy.inputs["snapshotSchedulePolicy"]["schedule"]["dailySchedule"], f"{policy}"
        used_disks.add(disk.name)
        used_policies.add(policy.name)
    count = len(brokers(run))
    assert len(used_disks) == count, f"nodes share data disks: {used_disks}"
    assert len(used_policies) == count, f"nodes share a snapshot schedule: {used_policies}"


def test_nodes_have_fixed_private_addresses_names_and_no_public_ip(
    case: tuple[int, str, ProgramRun],
) -> None:
    nodes, _, run = case
    addresses = by_id(run, ADDRESS)
    records = {r.inputs["name"]: r.inputs["rrdatas"] for r in run.of_type(RECORD)}
    seen = set()
    for vm in brokers(run):
        (iface,) = vm.inputs["networkInterfaces"]
        assert not iface.get("accessConfigs"), f"{vm}: has a public IP"
        shielded = vm.inputs["shieldedInstanceConfig"]
        assert shielded["enableSecureBoot"] is True, f"{vm}: not a shielded VM"
        assert vm.protect, f"{vm}: the VM must be protected"
        address = addresses[f"{vm.name}-address-id"]
        assert address.inputs["addressType"] == "INTERNAL", f"{address}"
        ip = address.inputs["address"]
        seen.add(ip)
        if nodes > 1:
            host = vm.inputs["hostname"]
            assert records[f"{host}."] == [ip], f"{vm}: {host} does not resolve to its address"
            assert vm.inputs["metadata"][rabbitmq_vm.NODENAME_KEY] == rabbitmq.node_name(host)
    assert len(seen) == nodes, f"nodes share addresses: {seen}"


def test_every_node_lists_every_node_for_peer_discovery(case: tuple[int, str, ProgramRun]) -> None:
    nodes, _, run = case
    if nodes == 1:
        pytest.skip("a single node discovers no peers")
    vms = brokers(run)
    names = [rabbitmq.node_name(vm.inputs["hostname"]) for vm in vms]
    confs = {vm.inputs["metadata"][rabbitmq_vm.CONF_KEY] for vm in vms}
    assert len(confs) == 1, "nodes were given different rabbitmq.conf files"
    conf = confs.pop()
    for name in names:
        assert name in conf, f"{name} missing from the peer list"
    assert "cluster_partition_handling = pause_minority" in conf


def test_quorum_queues_get_one_member_per_node(case: tuple[int, str, ProgramRun]) -> None:
    nodes, _, run = case
    live = run.one(DYNAMIC, "rabbitmq-live-config").inputs["definitions"]
    quorum = [q for q in live["queues"] if q["arguments"]["x-queue-type"] == "quorum"]
    assert quorum, "the prod stack declares quorum queues"
    for queue in quorum:
        found = queue["arguments"].get(rabbitmq.QUORUM_GROUP_SIZE)
        assert found == (nodes if nodes > 1 else None), f"{queue['name']}: members {found}"


def test_the_cookie_is_a_secret_only_the_broker_vms_can_read(
    case: tuple[int, str, ProgramRun],
) -> None:
    nodes, _, run = case
    cookies = [s for s in run.of_type(SECRET) if "erlang-cookie" in s.inputs["secretId"]]
    if nodes == 1:
        assert not cookies, "a single node needs no cookie secret"
        return
    (cookie,) = cookies
    readers = [
        r for r in run.of_type(SECRET_READER) if r.inputs["secretId"] == cookie.inputs["secretId"]
    ]
    assert [(r.inputs["role"], r.inputs["member"]) for r in readers] == [
        ("roles/secretmanager.secretAccessor", f"serviceAccount:{BROKER_SA}")
    ], f"{cookie}: readers {[r.inputs['member'] for r in readers]}"
    project_grants = [
        r.inputs["role"]
        for r in run.of_type(PROJECT_MEMBER)
        if r.inputs["member"] == f"serviceAccount:{BROKER_SA}"
    ]
    assert not [g for g in project_grants if "secretmanager" in g], project_grants
    (version,) = [
        v for v in run.of_type(SECRET_VERSION) if v.inputs["secret"] == f"{cookie.name}-id"
    ]
    assert version.input_is_secret("secretData"), f"{version}: the cookie is stored in plaintext"
    assert version.inputs["secretData"] == COOKIE_VALUE
    for resource in run:
        if resource is version:
            continue
        for key, value in resource.raw_inputs.items():
            if not is_secret(value):
                assert COOKIE_VALUE not in json.dumps(value), f"{resource}.{key} holds the cookie"
    for key, value in run.exports.items():
        if key not in run.secret_exports:
            assert COOKIE_VALUE not in json.dumps(value, default=str), f"output {key}"


def _rules(run: ProgramRun) -> list[Declared]:
    return run.of_type(FIREWALL)


def _ports(rule: Declared) -> set[str]:
    return {p for allow in rule.inputs.get("allows", []) for p in allow.get("ports", [])}


def test_firewall_sources_are_exactly_the_allowed_ones(
    case: tuple[int, str, ProgramRun], prod_config: StackConfig
) -> None:
    nodes, _, run = case
    clustering = set(rabbitmq_cluster.CLUSTERING_PORTS)
    checked = {str(endpoints.AMQP_PORT), str(endpoints.MANAGEMENT_PORT)}
    opened: dict[str, list[Declared]] = {}
    for rule in _rules(run):
        for port in _ports(rule):
            opened.setdefault(port, []).append(rule)
    for rule in _rules(run):
        ports = _ports(rule)
        if ports & clustering:
            assert ports == clustering, f"{rule}: clustering rule opens {ports}"
            assert not rule.inputs.get("sourceRanges"), f"{rule}: clustering open to ranges"
            assert not rule.inputs.get("sourceTags"), f"{rule}: by tag, not by account"
            assert rule.inputs["sourceServiceAccounts"] == [BROKER_SA], f"{rule}"
            assert rule.inputs["targetServiceAccounts"] == [BROKER_SA], f"{rule}"
        elif set(rule.inputs.get("sourceRanges", [])) & set(rabbitmq_cluster.HEALTH_CHECK_RANGES):
            assert rule.inputs["sourceRanges"] == list(rabbitmq_cluster.HEALTH_CHECK_RANGES)
            assert ports == checked, f"{rule}: health checkers reach {ports}"
    amqp = opened[str(endpoints.AMQP_PORT)]
    sources = sorted(s for r in amqp for s in r.inputs["sourceRanges"])
    expected = [prod_config.gcp.subnet_cidr]
    if nodes > 1:
        expected = sorted([*expected, *rabbitmq_cluster.HEALTH_CHECK_RANGES])
    assert sources == expected, f"AMQP is open to {sources}"
    if nodes == 1:
        assert not clustering & set(opened), "a single node opens clustering ports"
    else:
        assert {p for p in opened if p in clustering} == clustering


def test_services_reach_one_endpoint_that_survives_any_node(
    case: tuple[int, str, ProgramRun], prod_config: StackConfig
) -> None:
    nodes, _, run = case
    host = endpoints.for_stack(prod_config).amqp_host
    versions = {v.inputs["secret"]: v.inputs["secretData"] for v in run.of_type(SECRET_VERSION)}
    for spec in prod_config.services:
        url = versions[f"secret-{naming.rabbitmq_secret_id(spec.name)}-id"]
        assert f"@{host}:{endpoints.AMQP_PORT}/" in url, f"{spec.name}: AMQP_URL is not {host}"
    (record,) = [r for r in run.of_type(RECORD) if r.inputs["name"] == f"{host}."]
    (ip,) = record.inputs["rrdatas"]
    if nodes == 1:
        assert ip == run.one(ADDRESS, "rabbitmq-address").inputs["address"]
        return
    endpoint = run.one(ADDRESS, "rabbitmq-endpoint-address")
    assert ip == endpoint.inputs["address"], f"{host} points at {ip}, not the load balancer"
    node_ips = {a.inputs["address"] for a in run.of_type(ADDRESS) if a is not endpoint}
    assert ip not in node_ips, f"{host} points at one node"
    rules = run.of_type(FORWARDING)
    assert sorted(tuple(r.inputs["ports"]) for r in rules) == [("15672",), ("5672",)]
    backends = by_id(run, BACKEND)
    groups = by_id(run, GROUP)
    for rule in rules:
        assert rule.inputs["loadBalancingScheme"] == "INTERNAL", f"{rule}"
        assert rule.inputs["ipAddress"] == ip, f"{rule}: not on the endpoint address"
        backend = backends[rule.inputs["backendService"]]
        assert backend.inputs["healthChecks"], f"{backend}: not health-checked"
        members: list[str] = []
        for entry in backend.inputs["backends"]:
            group = next(g for g in groups.values() if entry["group"].endswith(g.inputs["name"]))
            members.extend(group.inputs["instances"])
        vms = {vm.inputs["name"] for vm in brokers(run)}
        assert sorted(m.rsplit("/", 1)[-1] for m in members) == sorted(vms), f"{backend}"


def test_alerts_cover_node_down_partition_quorum_and_alarms(
    case: tuple[int, str, ProgramRun],
) -> None:
    nodes, _, run = case
    alerts = {r.name: r for r in run.of_type(ALERT) if "rabbitmq" in r.name}
    if nodes == 1:
        assert set(alerts) == {"alert-rabbitmq-down"}
        return
    assert set(alerts) == {
        "alert-rabbitmq-down",
        "alert-rabbitmq-partition",
        "alert-rabbitmq-quorum",
        "alert-rabbitmq-alarm",
    }
    down = alerts["alert-rabbitmq-down"].inputs["conditions"]
    names = {vm.inputs["name"] for vm in brokers(run)}
    watched = {c["conditionAbsent"]["filter"].rsplit('"', 2)[-2] for c in down}
    assert watched == names, f"node-down watches {watched}, not {names}"
    quorum = alerts["alert-rabbitmq-quorum"].inputs["conditions"][0]
    assert f"< {nodes // 2 + 1}" in quorum["conditionPrometheusQueryLanguage"]["query"]


def _instance_inputs(run: ProgramRun) -> dict[str, Any]:
    """Everything the nodes are made of; boot definitions without their salted hashes."""
    found: dict[str, Any] = {}
    for resource in run:
        if resource.type not in (INSTANCE, DISK, ADDRESS, POLICY):
            continue
        inputs = resource.inputs
        metadata = inputs.get("metadata")
        if isinstance(metadata, dict):
            document = json.loads(metadata[rabbitmq_vm.DEFINITIONS_KEY])
            for user in document["users"]:
                user.pop("password_hash")
            inputs["metadata"] = {**metadata, rabbitmq_vm.DEFINITIONS_KEY: document}
        found[resource.urn] = (inputs, sorted(resource.dependencies))
    return found


@pytest.mark.parametrize("nodes", [1, 3, 5])
def test_adding_a_service_never_touches_a_node(nodes: int) -> None:
    before = _instance_inputs(run_for(nodes, "europe-west1"))
    after = _instance_inputs(run_for(nodes, "europe-west1", extra_service=True))
    assert before.keys() == after.keys()
    for urn, value in before.items():
        assert after[urn] == value, f"{urn}: changes when a service is added"
