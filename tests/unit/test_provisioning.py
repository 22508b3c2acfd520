"""The provisioning resource under Pulumi's mocks: one per service, secrets kept secret.

Runs the real program (both stacks) through tests/unit/pulumi_mocks.py, and checks the
serialized provider (what Pulumi stores in state) captures no credential.
"""

from __future__ import annotations

import base64
from typing import Any

import dill  # type: ignore[import-untyped]
import pulumi
import pytest

from infra.config import load_stack
from infra.provisioning.provider import ServiceDatabaseProvider, spec_from_inputs
from infra.provisioning.resource import service_inputs
from tests.unit.pulumi_mocks import Declared, ProgramRun, run_program, unwrap

DYNAMIC = "pulumi-python:dynamic:Resource"


@pytest.fixture(scope="module", params=["dev", "prod"])
def program(request: pytest.FixtureRequest) -> tuple[str, ProgramRun]:
    return request.param, run_program(request.param)


def databases(run: ProgramRun) -> list[Declared]:
    return [r for r in run.of_type(DYNAMIC) if "service_name" in r.raw_inputs]


def test_one_provisioning_resource_per_service(program: tuple[str, ProgramRun]) -> None:
    stack, run = program
    expected = sorted(spec.name for spec in load_stack(stack).services)
    found = sorted(r.inputs["service_name"] for r in databases(run))
    assert found == expected, f"{stack}: provisioning resources for {found}, want {expected}"


def test_password_inputs_are_secret(program: tuple[str, ProgramRun]) -> None:
    stack, run = program
    for resource in databases(run):
        for key in ("passwords", "admin_password"):
            assert resource.input_is_secret(key), f"{stack} {resource}: input {key} is not secret"
        passwords = resource.inputs["passwords"]
        assert set(passwords) == {"migrator", "app", "readonly"}, f"{resource}"
        assert all(passwords.values()), f"{resource}: empty password"
        assert not resource.input_is_secret("service_name")


def test_the_serialized_provider_holds_no_credential(program: tuple[str, ProgramRun]) -> None:
    stack, run = program
    resources = databases(run)
    secrets: set[str] = set()
    for resource in resources:
        secrets.update(resource.inputs["passwords"].values())
        secrets.add(resource.inputs["admin_password"])
    for resource in resources:
        serialized = unwrap(resource.raw_inputs["__provider"])
        pickled = base64.b64decode(serialized)
        for secret in secrets:
            assert secret.encode() not in pickled, f"{stack} {resource}: provider holds a password"
        provider = dill.loads(pickled)  # noqa: S301 - our own program's output
        assert isinstance(provider, ServiceDatabaseProvider)
        assert vars(provider) == {}, f"{resource}: provider carries state {vars(provider)}"


def test_inputs_round_trip_to_the_service_spec() -> None:
    for spec in load_stack("dev").services:
        props: dict[str, Any] = {
            "service_name": spec.name,
            "service": service_inputs(spec),
            "password_version": spec.password_version,
        }
        assert spec_from_inputs(props) == spec.__class__(
            name=spec.name,
            extensions=spec.extensions,
            connection_limits=spec.connection_limits,
            statement_timeout_ms=spec.statement_timeout_ms,
            idle_in_transaction_session_timeout_ms=spec.idle_in_transaction_session_timeout_ms,
            migrator_statement_timeout_ms=spec.migrator_statement_timeout_ms,
            password_version=spec.password_version,
        )


def good_inputs() -> dict[str, Any]:
    spec = load_stack("dev").services[0]
    return {
        "service_name": spec.name,
        "service": service_inputs(spec),
        "admin_host": "127.0.0.1",
        "admin_port": 15432,
        "admin_user": "platform_admin",
        "admin_password": "x" * 20,
        "sslmode": "prefer",
        "passwords": {"migrator": "a", "app": "b", "readonly": "c"},
        "password_version": 1,
    }


def test_check_returns_failures_per_property_instead_of_raising() -> None:
    provider = ServiceDatabaseProvider()
    assert provider.check({}, good_inputs()).failures == []
    bad = {
        **good_inputs(),
        "service_name": "Bad-Name",
        "admin_port": 70000,
        "sslmode": "sometimes",
        "passwords": {"migrator": "a"},
    }
    failed = {failure.property: failure.reason for failure in provider.check({}, bad).failures}
    assert set(failed) == {"service_name", "admin_port", "sslmode", "passwords"}, failed
    assert "Bad-Name" in failed["service_name"]


def _unknown_forms() -> dict[str, Any]:
    """Every form an unknown value reaches a provider in (preview of a new service)."""
    from pulumi.output import UNKNOWN as UNKNOWN_VALUE
    from pulumi.runtime import rpc

    return {
        "Unknown object": UNKNOWN_VALUE,
        "wire sentinel": rpc.UNKNOWN,
        "Output": pulumi.Output.from_input("x").apply(lambda _: "x"),
        "secret-wrapped Unknown": rpc.wrap_rpc_secret(UNKNOWN_VALUE),
        "secret-wrapped sentinel": rpc.wrap_rpc_secret(rpc.UNKNOWN),
        "dict holding an Unknown": {"migrator": UNKNOWN_VALUE, "app": "b", "readonly": "c"},
    }


@pytest.mark.parametrize("form", list(_unknown_forms()))
def test_check_accepts_every_form_of_unknown_input(form: str) -> None:
    """The preview of a fresh stack or a new service: passwords and admin inputs not known."""
    value = _unknown_forms()[form]
    news = {
        **good_inputs(),
        "passwords": value,
        "admin_password": value,
        "admin_host": value,
        "admin_port": value,
    }
    assert ServiceDatabaseProvider().check({}, news).failures == []
    changed = ServiceDatabaseProvider().diff("auth", good_inputs(), news)
    assert changed.changes is True, "an unknown input may change: the diff must say so"


def test_check_still_refuses_known_bad_values_behind_a_secret() -> None:
    from pulumi.runtime import rpc

    news = {**good_inputs(), "passwords": rpc.wrap_rpc_secret({"migrator": "a"})}
    failed = [failure.property for failure in ServiceDatabaseProvider().check({}, news).failures]
    assert failed == ["passwords"]


def test_diff_replaces_a_renamed_service_delete_first_and_updates_on_rotation() -> None:
    provider = ServiceDatabaseProvider()
    olds = good_inputs()
    assert provider.diff("auth", olds, dict(olds)).changes is False
    renamed = provider.diff("auth", olds, {**olds, "service_name": "auth2"})
    assert renamed.replaces == ["service_name"]
    assert renamed.delete_before_replace is True
    rotated = provider.diff("auth", olds, {**olds, "password_version": 2})
    assert rotated.changes is True
    assert rotated.replaces == []


def test_delete_keeps_the_data() -> None:
    # No server is reachable here: a delete that tried to drop anything would raise.
    ServiceDatabaseProvider().delete("auth", good_inputs())


def test_outputs_holding_passwords_are_secret_and_names_replace_delete_first() -> None:
    """The registration the engine receives: additionalSecretOutputs, deleteBeforeReplace."""
    import pulumi
    from pulumi.runtime.settings import SETTINGS, get_monitor
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    from infra.credentials import ServiceCredentials
    from infra.provisioning import AdminEndpoint, ServiceDatabase
    from tests.unit.pulumi_mocks import RecordingMocks

    pulumi.runtime.set_mocks(RecordingMocks(), project="persistence", stack="dev", preview=False)
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()
    monitor = get_monitor()
    assert monitor is not None
    register = monitor.RegisterResource
    requests: list[Any] = []

    def recording(request: Any) -> Any:
        requests.append(request)
        return register(request)

    monitor.RegisterResource = recording
    spec = load_stack("dev").services[0]

    def body() -> None:
        ServiceDatabase(
            "auth-database",
            service=spec,
            admin=AdminEndpoint("127.0.0.1", 15432, "platform_admin", "admin-secret-1"),
            credentials=pulumi.Output.secret(ServiceCredentials.generate(1)),
        )

    _sync_await(run_pulumi_func(body))
    (request,) = [r for r in requests if r.type == DYNAMIC]
    assert set(request.additionalSecretOutputs) == {"passwords", "admin_password"}
    assert request.deleteBeforeReplace is True
