"""Runs the real Pulumi program under Pulumi's mock runtime and records what it declares.

The program is imported and built exactly as ``pulumi up`` would run it, with the stack file's
config loaded into the runtime. Every resource registration is kept with its type token, name
and inputs (secret inputs stay wrapped so tests can assert they are secret), and with what the
engine would store beside them: its URN, its parent's, ``protect`` and the URNs it depends on.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.rpc import _special_secret_sig, _special_sig_key
from pulumi.runtime.settings import ROOT, SETTINGS, get_root_resource
from pulumi.runtime.stack import Stack, run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.config.model import ConnectionLimits, PostgresSettings
from infra.mock_plan import engine_config

PROJECT = "persistence"


def _account_email(name: str, inputs: dict[str, Any]) -> str:
    return f"{inputs.get('accountId', name)}@example-project.iam.gserviceaccount.com"


def _self_link(kind: str, inputs: dict[str, Any]) -> str:
    """A zonal resource's URL, as Compute Engine reports it."""
    return (
        "https://www.googleapis.com/compute/v1/projects/example-project/zones/"
        f"{inputs.get('zone')}/{kind}/{inputs.get('name')}"
    )


def _sql_private_ip(name: str, inputs: dict[str, Any]) -> str:
    """A Cloud SQL instance's private IP: 10.30.0.3 for a primary, a distinct one per read
    replica (so a test can tell which replicas a DNS record holds)."""
    if not inputs.get("masterInstanceName"):
        return "10.30.0.3"
    return f"10.30.3.{10 + sum(map(ord, name)) % 240}"


# Outputs that real providers compute and the program reads back (everything else echoes inputs).
OutputHook = Callable[[str, dict[str, Any]], dict[str, Any]]
OUTPUT_HOOKS: dict[str, OutputHook] = {
    # A distinct, recognisable value per password, so tests can look for leaks by value.
    "random:index/randomPassword:RandomPassword": lambda name, _: {
        "result": f"mockpw{name.replace('-', '')}0123456789"
    },
    "docker:index/remoteImage:RemoteImage": lambda name, _: {"image_id": f"sha256:{name}"},
    "gcp:sql/databaseInstance:DatabaseInstance": lambda name, inputs: {
        "private_ip_address": _sql_private_ip(name, inputs),
        "connection_name": f"example-project:region:{name}",
        "self_link": f"https://sqladmin.googleapis.com/{name}",
        "service_account_email_address": f"p123-{name}@gcp-sa-cloud-sql.iam.gserviceaccount.com",
    },
    # The old Memorystore for Redis instance (a stack migrating to Valkey keeps it a while).
    "gcp:redis/instance:Instance": lambda name, _: {
        "host": "10.30.2.4",
        "port": 6378,
        "auth_string": "mock-auth-string",
        "server_ca_certs": [{"cert": "-----BEGIN CERTIFICATE-----mock"}],
        "persistence_iam_identity": (
            f"serviceAccount:p123-{name}@gcp-sa-redis.iam.gserviceaccount.com"
        ),
    },
    # What Memorystore reports once the PSC endpoints exist, spelt as the provider sends it
    # (camelCase), so the SDK hands the program its typed outputs as the engine would.
    "gcp:memorystore/instance:Instance": lambda name, inputs: {
        "endpoints": [
            {
                "connections": [
                    {
                        "pscAutoConnection": {
                            "connectionType": connection_type,
                            "ipAddress": address,
                            "port": 6379,
                        }
                    }
                    for connection_type, address in (
                        ("CONNECTION_TYPE_PRIMARY", "10.30.1.5"),
                        ("CONNECTION_TYPE_DISCOVERY", "10.30.1.4"),
                    )
                ]
            }
        ],
        "managedServerCas": [{"caCerts": [{"certificates": ["-----BEGIN CERTIFICATE-----mock"]}]}],
        "backupCollection": (
            f"projects/example-project/locations/europe-west1/backupCollections/{name}"
        ),
    },
    "gcp:compute/instance:Instance": lambda name, inputs: {
        "network_interfaces": [
            {**iface, "network_ip": "10.20.0.10"} for iface in inputs.get("networkInterfaces", [])
        ],
        "self_link": _self_link("instances", inputs),
    },
    "gcp:compute/instanceGroup:InstanceGroup": lambda name, inputs: {
        "self_link": _self_link("instanceGroups", inputs),
    },
    "gcp:iam/workloadIdentityPool:WorkloadIdentityPool": lambda name, inputs: {
        "name": "projects/123456789/locations/global/workloadIdentityPools/"
        + inputs["workloadIdentityPoolId"],
    },
    "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider": lambda name, inputs: {
        "name": "projects/123456789/locations/global/workloadIdentityPools/"
        f"{inputs['workloadIdentityPoolId']}/providers/{inputs['workloadIdentityPoolProviderId']}",
    },
    "docker:index/registryImage:RegistryImage": lambda name, _: {
        "sha256_digest": f"sha256:{'0' * 56}{len(name):08x}"
    },
    "gcp:monitoring/notificationChannel:NotificationChannel": lambda name, _: {
        "name": f"projects/example-project/notificationChannels/{name}"
    },
    "gcp:serviceaccount/account:Account": lambda name, inputs: {
        "email": _account_email(name, inputs),
        "member": f"serviceAccount:{_account_email(name, inputs)}",
        "name": f"projects/example-project/serviceAccounts/{_account_email(name, inputs)}",
    },
}


def is_secret(value: Any) -> bool:
    """True if a recorded input value was marked secret by the program."""
    return isinstance(value, dict) and value.get(_special_sig_key) == _special_secret_sig


def unwrap(value: Any) -> Any:
    """The plain value, with every secret wrapper removed (recursively)."""
    if is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


@dataclass
class Declared:
    """One resource registration as the engine would have received it."""

    type: str
    name: str
    raw_inputs: dict[str, Any]
    custom: bool
    urn: str = ""
    parent: str = ""  # the parent's URN; empty for the stack itself
    protect: bool = False
    retain_on_delete: bool = False
    ignore_changes: tuple[str, ...] = ()
    import_id: str = ""  # the ``import_`` option: the id of an existing object to adopt
    dependencies: tuple[str, ...] = ()
    property_dependencies: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def inputs(self) -> dict[str, Any]:
        return dict(unwrap(self.raw_inputs))

    @property
    def edges(self) -> int:
        """Dependency edges the engine stores for this resource (both lists it keeps)."""
        return len(self.dependencies) + sum(map(len, self.property_dependencies.values()))

    def input_is_secret(self, key: str) -> bool:
        return is_secret(self.raw_inputs.get(key))

    def __str__(self) -> str:
        return f"{self.type}::{self.name}"


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers every registration with its inputs (plus computed outputs) and keeps a record."""

    def __init__(self) -> None:
        self.declared: list[Declared] = []
        self.invokes: list[tuple[str, dict[str, Any]]] = []
        # The request being answered on this thread (set by RecordingMonitor), for what
        # MockResourceArgs leaves out: parent, protect and dependencies.
        self.registering = threading.local()

    def _declared(self, args: pulumi.runtime.MockResourceArgs) -> Declared:
        found = Declared(args.typ, args.name, dict(args.inputs), bool(args.custom))
        request, urn = getattr(self.registering, "request", None) or (None, "")
        if request is not None:
            found.urn = urn
            found.parent = request.parent
            found.protect = bool(request.protect)
            found.retain_on_delete = bool(request.retainOnDelete)
            found.ignore_changes = tuple(request.ignoreChanges)
            found.import_id = request.importId
            found.dependencies = tuple(request.dependencies)
            found.property_dependencies = {
                key: tuple(value.urns) for key, value in request.propertyDependencies.items()
            }
        return found

    def new_resource(
        self, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str | None, dict[str, Any]]:
        self.declared.append(self._declared(args))
        outputs = dict(unwrap(args.inputs))
        hook = OUTPUT_HOOKS.get(args.typ)
        if hook is not None:
            outputs.update(hook(args.name, outputs))
        return f"{args.name}-id", outputs

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        self.invokes.append((args.token, dict(args.args)))
        if args.token == "gcp:organizations/getProject:getProject":
            return {
                "number": "123456789",
                "projectId": "example-project",
                "name": "example-project",
            }, []
        if args.token == "gcp:storage/getProjectServiceAccount:getProjectServiceAccount":
            email = "service-123456789@gs-project-accounts.iam.gserviceaccount.com"
            return {"emailAddress": email, "member": f"serviceAccount:{email}"}, []
        if args.token == "gcp:organizations/getClientConfig:getClientConfig":
            return {"accessToken": "mock-oauth-access-token", "project": "example-project"}, []
        return {}, None


class RecordingMonitor(MockMonitor):
    """Pulumi's mock monitor, handing each registration request to the mocks as it answers."""

    mocks: RecordingMocks

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
        urn = self.make_urn(request.parent, request.type, request.name)
        self.mocks.registering.request = (request, urn)
        try:
            return super().RegisterResource(request)  # type: ignore[no-untyped-call]
        finally:
            self.mocks.registering.request = None


def install_mocks(stack: str, *, preview: bool = False) -> RecordingMocks:
    """Point Pulumi's runtime at fresh recording mocks for ``stack``, with a new root stack
    resource (so outputs and parents never carry over from a previous run)."""
    mocks = RecordingMocks()
    ROOT.set(None)
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack=stack, preview=preview, monitor=RecordingMonitor(mocks)
    )
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()
    return mocks


@dataclass
class ProgramRun:
    """What one run of the program declared and exported, and the platform component."""

    declared: list[Declared]
    exports: dict[str, Any] = field(default_factory=dict)
    secret_exports: set[str] = field(default_factory=set)
    platform: Any = None

    @property
    def edges(self) -> int:
        """Every dependency edge of every registration."""
        return sum(r.edges for r in self.declared)

    def below(self, ancestor: Declared) -> list[Declared]:
        """Every registration whose chain of parents reaches ``ancestor``."""
        parents = {r.urn: r.parent for r in self.declared}
        found = []
        for resource in self.declared:
            parent = resource.parent
            while parent and parent != ancestor.urn:
                parent = parents.get(parent, "")
            if parent:
                found.append(resource)
        return found

    def of_type(self, token: str) -> list[Declared]:
        return [r for r in self.declared if r.type == token]

    def one(self, token: str, name: str | None = None) -> Declared:
        """Exactly one resource of ``token`` (and ``name``); fails naming what was found."""
        found = [r for r in self.of_type(token) if name is None or r.name == name]
        assert len(found) == 1, (
            f"expected one {token} {name or ''}, found {[str(r) for r in found]}"
        )
        return found[0]

    def __iter__(self) -> Iterator[Declared]:
        return iter(self.declared)


def stack_config(stack: str) -> dict[str, str]:
    """A stack file's config as the engine hands it to the program: JSON text for non-strings."""
    return engine_config(stack)


def scaled_config(stack: str, count: int) -> dict[str, str]:
    """``stack``'s config with ``count`` generated services, and the connections they need."""
    config = stack_config(stack)
    config["persistence:services"] = json.dumps([{"name": f"svc{i:03d}"} for i in range(count)])
    postgres = json.loads(config.get("persistence:postgres", "{}"))
    limits = ConnectionLimits()
    reserved = postgres.get("reserved_connections", PostgresSettings().reserved_connections)
    per_service = limits.app + limits.migrator + limits.readonly
    postgres["max_connections"] = max(25, count * per_service + reserved)
    config["persistence:postgres"] = json.dumps(postgres)
    return config


def run_program(
    stack: str, config: dict[str, str] | None = None, *, preview: bool = False
) -> ProgramRun:
    """Run the program's ``main`` for ``stack`` under mocks; wait for every registration and
    every output it exported (read back from the stack resource, as the engine would).
    ``preview``: a dry run, where a mock output of ``rpc.UNKNOWN`` stays unknown."""
    from infra.stack import main

    mocks = install_mocks(stack, preview=preview)
    pulumi.runtime.set_all_config(config if config is not None else stack_config(stack))
    run = ProgramRun(mocks.declared)

    async def body() -> None:
        # Awaited inside the program's own loop: a `_sync_await` per output here would pump
        # the loop re-entrantly, at a cost that grows with everything pending.
        run.platform = main()
        root = get_root_resource()
        assert isinstance(root, Stack), f"the root resource is {root!r}"
        for key, value in root.outputs.items():
            output = pulumi.Output.from_input(value)
            run.exports[key] = await output.future()
            if await output.is_secret():
                run.secret_exports.add(key)

    _sync_await(run_pulumi_func(body))
    return run
