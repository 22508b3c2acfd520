"""Prod's Valkey ACL policy under mocks: the same rules as dev's users.acl, for services no test
names in advance, kept secret, and each service's REDIS_URL logs in as its own user only.

tests/integration/test_valkey_acl_policy.py feeds the same declared policy to a real Valkey.
"""

from __future__ import annotations

import hashlib
from urllib.parse import unquote, urlsplit

import pytest
from pulumi.runtime.sync_await import _sync_await

from infra import naming
from infra.credentials import Credentials
from infra.render import redis as redis_rules
from tests.unit.gcp_program import ProdRun, hidden_services, run_prod_with
from tests.unit.pulumi_mocks import is_secret, unwrap

POLICY = "gcp:memorystore/aclPolicy:AclPolicy"


@pytest.fixture(scope="module", params=[7, 1234])
def prod(request: pytest.FixtureRequest) -> ProdRun:
    return run_prod_with(hidden_services(request.param))


def passwords(prod: ProdRun) -> Credentials:
    """Every password the program generated (the mocks' RandomPassword results)."""
    found = _sync_await(prod.platform.passwords.everything.future())
    assert isinstance(found, Credentials)
    return found


def test_the_policy_is_dev_users_acl_rule_for_rule(prod: ProdRun) -> None:
    policy = prod.run.one(POLICY)
    config = prod.platform.config
    credentials = passwords(prod)
    rules = unwrap(policy.raw_inputs["rules"])
    expected = redis_rules.acl_rules(config, credentials)
    assert [(r["username"], r["rule"]) for r in rules] == list(expected.items())
    # And dev's users.acl for the same stack is those rules, a line each.
    lines = redis_rules.users_acl(config, credentials).splitlines()
    assert lines == [f"user {name} {rule}" for name, rule in expected.items()]
    # Every Redis service has its user, nobody else does; default is off; the admin is there.
    users = {r["username"] for r in rules}
    assert users == {"default", config.redis.admin_user} | {
        naming.redis_user(s.name) for s in config.services if s.redis
    }
    assert expected["default"].split()[0] == "off"


def test_the_policy_is_a_secret_and_holds_no_password(prod: ProdRun) -> None:
    policy = prod.run.one(POLICY)
    assert is_secret(policy.raw_inputs["rules"]), "the rules' hashes must stay secret"
    text = str(unwrap(policy.raw_inputs["rules"]))
    credentials = passwords(prod)
    for spec in prod.platform.config.services:
        assert credentials.for_service(spec.name).redis not in text, spec.name
    assert credentials.redis_admin not in text
    assert ">" not in text, "passwords travel as #sha256 hashes only"


def test_each_redis_url_logs_in_as_its_own_user_only(prod: ProdRun) -> None:
    rules = {r["username"]: r["rule"] for r in unwrap(prod.run.one(POLICY).raw_inputs["rules"])}
    versions = {
        v.inputs["secret"]: v.inputs["secretData"]
        for v in prod.run.of_type("gcp:secretmanager/secretVersion:SecretVersion")
    }
    for spec in prod.platform.config.services:
        url = versions.get(f"secret-{naming.redis_secret_id(spec.name)}-id")
        if not spec.redis:
            assert url is None, spec.name
            continue
        assert isinstance(url, str), spec.name
        parts = urlsplit(url)
        assert parts.scheme == "rediss", f"{spec.name}: TLS"
        user = unquote(parts.username or "")
        assert user == naming.redis_user(spec.name)
        digest = "#" + hashlib.sha256(unquote(parts.password or "").encode()).hexdigest()
        holders = [name for name, rule in rules.items() if digest in rule.split()]
        assert holders == [user], f"{spec.name}'s password opens {holders}"


def test_services_are_told_where_and_how_to_trust_the_server(prod: ProdRun) -> None:
    exports = prod.run.exports
    assert exports["redis_ca_certificates"] == ["-----BEGIN CERTIFICATE-----mock"]
    assert exports["redis_private_ip"] == "10.30.1.4", "the discovery endpoint, not a node"
    assert "redis_admin_url" in prod.run.secret_exports
