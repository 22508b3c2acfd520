"""Rotation in the secrets file's model: what changes, and what a rotation must keep."""

from __future__ import annotations

from infra.config import StackConfig
from infra.credentials import Credentials


def test_a_rotation_replaces_every_password_of_one_service_only(dev_config: StackConfig) -> None:
    before = Credentials.generate().completed_for(dev_config)
    after = before.rotated("users")
    old, new = before.for_service("users"), after.for_service("users")
    assert new.version == old.version + 1
    for login in ("migrator", "app", "readonly", "redis", "rabbitmq"):
        assert getattr(new, login) != getattr(old, login), login
    assert {k: v for k, v in after.services.items() if k != "users"} == {
        k: v for k, v in before.services.items() if k != "users"
    }


def test_a_rotation_keeps_the_passwords_it_cannot_push(dev_config: StackConfig) -> None:
    """``db rotate`` without --redis-url/--management-url: the servers keep the old passwords,
    so the file must too, or the service's next login would be refused."""
    before = Credentials.generate().completed_for(dev_config)
    after = before.rotated("users", keep=("redis", "rabbitmq"))
    old, new = before.for_service("users"), after.for_service("users")
    assert (new.redis, new.rabbitmq) == (old.redis, old.rabbitmq)
    assert new.app != old.app
    assert new.version == old.version + 1
