"""The prod program run once under mocks, plus the GcpPlatform component it built.

The component is what ``infra.stack.main`` returns; tests read its parts from its attributes
(``platform.sql``, ``platform.network``...). What the engine would record of each resource
(parent, ``protect``, dependencies) is on the registrations themselves (``Declared``).
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from infra import naming
from infra.platforms.gcp import GcpPlatform
from tests.unit.pulumi_mocks import Declared, ProgramRun, run_program, stack_config, unwrap


@dataclass
class ProdRun:
    """What the prod program declared and the component resource that declared it."""

    run: ProgramRun
    platform: GcpPlatform

    @property
    def component(self) -> Declared:
        """The platform component's own registration."""
        return self.run.one("persistence:gcp:Platform")


def run_prod(config: dict[str, str] | None = None, *, stack: str = "prod") -> ProdRun:
    """Run a prod-like stack (``prod``'s file unless ``config``) and keep its GcpPlatform."""
    run = run_program(stack, config)
    assert isinstance(run.platform, GcpPlatform), f"built {run.platform!r}"
    return ProdRun(run=run, platform=run.platform)


def hidden_services(seed: int, count: int = 5) -> list[dict[str, object]]:
    """``count`` services no test names in advance (drawn from ``seed``), some without Redis and
    some with scripting: what a rule generator tuned to the stack file's services would miss."""
    rng = random.Random(seed)
    services: list[dict[str, object]] = []
    for index in range(count):
        name = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 10)))
        spec: dict[str, object] = {"name": f"{name}{index}"}
        if rng.random() < 0.2:
            spec["redis"] = False
        elif rng.random() < 0.3:
            spec["redis_scripting"] = True
        services.append(spec)
    return services


def run_prod_with(services: list[dict[str, object]]) -> ProdRun:
    """The prod stack with ``services`` in place of its own."""
    config = stack_config("prod")
    config["persistence:services"] = json.dumps(services)
    return run_prod(config)


def acl_policy_rules(prod: ProdRun) -> list[dict[str, str]]:
    """The declared Memorystore ACL policy's rules, unwrapped from their secret."""
    rules = unwrap(prod.run.one("gcp:memorystore/aclPolicy:AclPolicy").raw_inputs["rules"])
    assert isinstance(rules, list)
    assert rules
    return rules


def redis_logins(prod: ProdRun) -> dict[str, tuple[str, str]]:
    """Each Redis service's (user, password), read from the REDIS_URL in its own secret."""
    versions = {
        v.inputs["secret"]: v.inputs["secretData"]
        for v in prod.run.of_type("gcp:secretmanager/secretVersion:SecretVersion")
    }
    found = {}
    for spec in prod.platform.config.services:
        if spec.redis:
            parts = urlsplit(versions[f"secret-{naming.redis_secret_id(spec.name)}-id"])
            found[spec.name] = (unquote(parts.username or ""), unquote(parts.password or ""))
    return found


SECRET_VERSION = "gcp:secretmanager/secretVersion:SecretVersion"


def secret_urls(prod: ProdRun, service: str) -> dict[str, str]:
    """Each PostgreSQL login's URL as the stack stores it in the service's secrets."""
    versions = {
        v.inputs["secret"]: v.inputs["secretData"] for v in prod.run.of_type(SECRET_VERSION)
    }
    return {
        kind: versions[f"secret-{naming.postgres_secret_id(service, kind)}-id"]
        for kind in naming.LOGIN_SUFFIXES
    }
