"""definitions.json, rabbitmq.conf and enabled_plugins as rendered data, without a broker.

The integration tests boot a real RabbitMQ from the same files; these pin the model fast.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
from typing import Any

import pytest

from infra import naming, versions
from infra.config.model import DockerImages, RabbitmqSettings, StackConfig
from infra.credentials import Credentials
from infra.render import rabbitmq as mq_files
from infra.render import render_all
from infra.render.environment import TEMPLATES
from tests.unit.conf_text import key_values


@pytest.fixture(scope="module", params=["dev", "prod"])
def stack(
    request: pytest.FixtureRequest, dev_config: StackConfig, prod_config: StackConfig
) -> tuple[StackConfig, Credentials, dict[str, Any]]:
    config = dev_config if request.param == "dev" else prod_config
    credentials = Credentials.generate().completed_for(config)
    text = render_all(config, credentials)["rabbitmq/definitions.json"].content
    return config, credentials, json.loads(text)


def verifies(password: str, password_hash: str) -> bool:
    """rabbit_password_hashing_sha256: base64(4-byte salt + sha256(salt + password))."""
    raw = base64.b64decode(password_hash)
    salt, digest = raw[:4], raw[4:]
    return hashlib.sha256(salt + password.encode()).digest() == digest


def test_one_user_and_vhost_per_service_and_no_guest(
    stack: tuple[StackConfig, Credentials, dict[str, Any]],
) -> None:
    config, _, document = stack
    services = {s.name for s in config.services}
    users = {u["name"]: u for u in document["users"]}
    assert set(users) == {config.rabbitmq.admin_user, *services}
    assert {v["name"] for v in document["vhosts"]} == services
    assert "guest" not in users
    assert "/" not in {v["name"] for v in document["vhosts"]}
    assert users[config.rabbitmq.admin_user]["tags"] == ["administrator"]
    for service in services:
        assert users[service]["tags"] == [mq_files.MANAGED_TAG]


def test_service_permissions_cover_only_its_own_vhost(
    stack: tuple[StackConfig, Credentials, dict[str, Any]],
) -> None:
    config, _, document = stack
    for spec in config.services:
        user = naming.rabbitmq_user(spec.name)
        granted = [p["vhost"] for p in document["permissions"] if p["user"] == user]
        assert granted == [naming.rabbitmq_vhost(spec.name)], spec.name
    admin = [p["vhost"] for p in document["permissions"] if p["user"] == config.rabbitmq.admin_user]
    assert sorted(admin) == sorted(naming.rabbitmq_vhost(s.name) for s in config.services)
    assert document["topic_permissions"] == []


def test_passwords_only_as_sha256_hashes(
    stack: tuple[StackConfig, Credentials, dict[str, Any]],
) -> None:
    config, credentials, document = stack
    text = json.dumps(document)
    expected = {config.rabbitmq.admin_user: credentials.rabbitmq_admin} | {
        naming.rabbitmq_user(s.name): credentials.for_service(s.name).rabbitmq
        for s in config.services
    }
    for user in document["users"]:
        password = expected[user["name"]]
        assert password not in text
        assert "password" not in user  # only password_hash
        assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
        assert verifies(password, user["password_hash"]), user["name"]
        assert not verifies(password + "x", user["password_hash"])


def test_vhosts_are_marked_as_managed(
    stack: tuple[StackConfig, Credentials, dict[str, Any]],
) -> None:
    _, _, document = stack
    for vhost in document["vhosts"]:
        assert mq_files.MANAGED_TAG in vhost["tags"]
        assert mq_files.MANAGED_TAG in vhost["metadata"]["tags"]


def test_exchanges_queues_and_bindings_per_service(
    stack: tuple[StackConfig, Credentials, dict[str, Any]],
) -> None:
    config, _, document = stack
    exchanges = {(e["vhost"], e["name"]): e for e in document["exchanges"]}
    queues = {(q["vhost"], q["name"]): q for q in document["queues"]}
    bindings = {
        (b["vhost"], b["source"], b["destination"], b["routing_key"]) for b in document["bindings"]
    }
    for spec in config.services:
        vhost, dlx, dlq = (
            naming.rabbitmq_vhost(spec.name),
            naming.dead_letter_exchange(spec.name),
            naming.dead_letter_queue(spec.name),
        )
        assert exchanges[(vhost, spec.name)]["type"] == "topic"
        assert exchanges[(vhost, dlx)]["type"] == "fanout"
        assert all(e["durable"] for e in exchanges.values())
        assert queues[(vhost, dlq)]["durable"] is True
        assert (vhost, dlx, dlq, "") in bindings
        for queue in spec.queues:
            declared = queues[(vhost, queue.name)]
            assert declared["durable"] is True
            assert declared["auto_delete"] is False
            assert declared["arguments"]["x-queue-type"] == queue.type
            assert declared["arguments"]["x-dead-letter-exchange"] == dlx
            assert (vhost, spec.name, queue.name, queue.routing_key or queue.name) in bindings
    # Nothing lands in a vhost no service owns.
    services = {naming.rabbitmq_vhost(s.name) for s in config.services}
    for kind in ("exchanges", "queues", "bindings", "policies"):
        assert {item["vhost"] for item in document[kind]} <= services, kind


def test_policies_only_where_configured_and_matching_one_queue(
    stack: tuple[StackConfig, Credentials, dict[str, Any]],
) -> None:
    config, _, document = stack
    for spec in config.services:
        vhost = naming.rabbitmq_vhost(spec.name)
        policies = [p for p in document["policies"] if p["vhost"] == vhost]
        names = [q["name"] for q in document["queues"] if q["vhost"] == vhost]
        for queue in spec.queues:
            applying = [p for p in policies if re.search(p["pattern"], queue.name)]
            expected: dict[str, Any] = {}
            if queue.message_ttl_ms is not None:
                expected["message-ttl"] = queue.message_ttl_ms
            if queue.max_length is not None:
                expected["max-length"] = queue.max_length
            if not expected:
                assert applying == [], queue.name
                continue
            assert len(applying) == 1, queue.name
            assert expected.items() <= applying[0]["definition"].items()
            assert applying[0]["apply-to"] == "queues"
            assert [n for n in names if re.search(applying[0]["pattern"], n)] == [queue.name]


def test_removed_service_is_absent_from_the_definitions(dev_config: StackConfig) -> None:
    removed = dev_config.services[-1].name
    config = dataclasses.replace(dev_config, services=dev_config.services[:-1])
    document = mq_files.definitions(config, Credentials.generate().completed_for(config))
    assert removed not in {u["name"] for u in document["users"]}
    assert removed not in {v["name"] for v in document["vhosts"]}
    for kind in ("permissions", "exchanges", "queues", "bindings", "policies"):
        assert removed not in {item["vhost"] for item in document[kind]}, kind


def test_definitions_are_serialized_json_and_stable(dev_config: StackConfig) -> None:
    credentials = Credentials.generate().completed_for(dev_config)
    first = mq_files.definitions_json(dev_config, credentials)
    assert first == mq_files.definitions_json(dev_config, credentials)
    assert json.loads(first) == mq_files.definitions(dev_config, credentials)


def test_rabbitmq_conf_loads_definitions_and_sets_alarms(dev_config: StackConfig) -> None:
    config = dataclasses.replace(
        dev_config, rabbitmq=RabbitmqSettings(disk_free_limit_mb=2048, memory_high_watermark=0.5)
    )
    settings = key_values(mq_files.rabbitmq_conf(config))
    assert settings["definitions.import_backend"] == "local_filesystem"
    assert settings["definitions.local.path"] == mq_files.DEFINITIONS_FILE
    assert settings["disk_free_limit.absolute"] == "2048MB"
    assert settings["vm_memory_high_watermark.relative"] == "0.5"
    assert settings["password_hashing_module"] == "rabbit_password_hashing_sha256"
    assert settings["listeners.tcp.default"] == "5672"
    # Keys RabbitMQ 3.10 does not know stop the node at boot; keep to the shared set.
    assert "default_queue_type" not in settings
    assert not any(key.startswith(("default_user", "default_pass")) for key in settings)


def test_the_metrics_listener_is_bound_to_loopback_without_per_object_metrics(
    dev_config: StackConfig,
) -> None:
    """Both the dev container and the prod VM boot this file: services never reach metrics."""
    settings = key_values(mq_files.rabbitmq_conf(dev_config))
    assert settings["prometheus.tcp.ip"] == "127.0.0.1"
    assert settings["prometheus.return_per_object_metrics"] == "false"
    assert "management.tcp.ip" not in settings, "the deploy reaches the management API"


def test_management_and_prometheus_plugins_are_enabled() -> None:
    text = mq_files.enabled_plugins().strip()
    assert text.startswith("[")
    assert text.endswith("].")
    plugins = {p.strip() for p in text[1:-2].split(",")}
    assert plugins == {"rabbitmq_management", "rabbitmq_prometheus"}


def test_the_rabbitmq_version_comes_from_one_constant(dev_config: StackConfig) -> None:
    """No template copies a version: the rendered files and the default image share one."""
    for template in (TEMPLATES / "rabbitmq").glob("*.j2"):
        assert not re.search(r"\b3\.\d+", template.read_text()), f"{template}: version literal"
    conf = mq_files.rabbitmq_conf(dev_config)
    assert f"RabbitMQ {versions.RABBITMQ_OLDEST_VERSION} " in conf
    assert f"and {versions.RABBITMQ_VERSION} (the dev image)" in conf
    document = mq_files.definitions(dev_config, Credentials.generate().completed_for(dev_config))
    assert document["rabbit_version"] == versions.RABBITMQ_VERSION
    assert DockerImages().rabbitmq == f"rabbitmq:{versions.RABBITMQ_VERSION}-management"
