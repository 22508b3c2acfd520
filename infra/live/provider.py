"""Dynamic providers that push each service's configuration to a running server.

The contract of ``infra.provisioning.provider`` holds here too: the provider objects hold
nothing (Pulumi pickles them into the state), every method connects inside the call, ``check``
returns failures instead of raising, every form of a value Pulumi does not know yet (``None``,
the unknown sentinel, anywhere inside a list or mapping) counts as unknown in ``check`` and
``diff``, and ``delete`` is idempotent: it changes nothing on the server (the server goes with
its container; a service that leaves the config is removed by the next *update*).

Each resource takes its server's id (the container's, the VM's) as an input, so a server
replaced for another reason (a new image) gets the configuration delivered again.
"""

from __future__ import annotations

from typing import Any

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ResourceProvider,
    UpdateResult,
)

from infra.provisioning.unknowns import is_unknown

KIND_FILES = "files"
KIND_REDIS = "redis"
KIND_BROKER = "broker"
# How long a cluster's live apply waits for every node to run (a first boot of three nodes on a
# busy machine, or a node restarting); then it fails naming the missing nodes.
CLUSTER_WAIT_SECONDS = 300


def unknown(value: Any) -> bool:
    """True when Pulumi does not know ``value`` (or a part of it) yet, or it is missing."""
    return value is None or is_unknown(value)


def _required(news: dict[str, Any], keys: tuple[str, ...]) -> list[CheckFailure]:
    return [
        CheckFailure(key, f"{key} must not be empty")
        for key in keys
        if key in news and not unknown(news.get(key)) and news.get(key) in ("", {}, [])
    ] + [CheckFailure(key, f"{key} is required") for key in keys if key not in news]


def _files_failures(news: dict[str, Any]) -> list[CheckFailure]:
    files = news.get("files")
    if unknown(files):
        return []
    if not isinstance(files, dict):
        return [CheckFailure("files", "files must map absolute paths to file specs")]
    return [
        CheckFailure("files", f"{path!r} is not an absolute path")
        for path in files
        if not str(path).startswith("/")
    ]


def check_inputs(news: dict[str, Any]) -> list[CheckFailure]:
    """Every problem with the inputs, one per property, instead of raising."""
    kind = news.get("kind")
    if kind == KIND_FILES:
        return _required(news, ("server_id",)) + _files_failures(news)
    if kind == KIND_REDIS:
        failures = _required(news, ("server_id", "host", "admin_user", "admin_password"))
        port = news.get("port")
        if not unknown(port) and not (isinstance(port, int | float) and 0 < int(port) < 65536):
            failures.append(CheckFailure("port", f"{port!r} is not a TCP port (1-65535)"))
        return failures + _files_failures(news)
    if kind == KIND_BROKER:
        failures = _required(
            news, ("server_id", "management_url", "admin_user", "admin_password", "definitions")
        )
        urls = [("management_url", news.get("management_url"))]
        urls += [("management_urls", url) for url in news.get("management_urls") or []]
        for key, url in urls:
            if not unknown(url) and not str(url).startswith(("http://", "https://")):
                failures.append(CheckFailure(key, f"{url!r} is not an http(s) URL"))
        return failures
    kinds = ", ".join((KIND_FILES, KIND_REDIS, KIND_BROKER))
    return [CheckFailure("kind", f"{kind!r} is not one of {kinds}")]


def _put_files(props: dict[str, Any]) -> None:
    from infra.platforms.docker import engine

    files = {
        str(path): engine.FileSpec(
            content=str(spec["content"]),
            uid=int(spec["uid"]),
            gid=int(spec["gid"]),
            mode=int(spec["mode"]),
        )
        for path, spec in (props.get("files") or {}).items()
    }
    engine.put_files(str(props["server_id"]), files)


def deliver(props: dict[str, Any], olds: dict[str, Any] | None) -> dict[str, Any]:
    """Push the configuration in ``props`` to the live server; the resource's outputs."""
    kind = props["kind"]
    if kind == KIND_FILES:
        from infra.platforms.docker import engine

        _put_files(props)
        if props.get("signal"):
            engine.signal(str(props["server_id"]), str(props["signal"]))
        return dict(props)
    if kind == KIND_REDIS:
        from infra.live import redis_acl

        # Write the ACL file first: a restart at any moment after this loads the same users.
        _put_files(props)
        previous = set((olds or {}).get("managed") or []) | set((olds or {}).get("users") or {})
        redis_acl.apply(
            str(props["host"]),
            int(props["port"]),
            str(props["admin_user"]),
            str(props["admin_password"]),
            props.get("users") or {},
            managed=previous,
        )
        return {**props, "managed": sorted(props.get("users") or {})}
    from infra.broker import cluster, live
    from infra.broker.management import ManagementApi, any_live_node

    user, password = str(props["admin_user"]), str(props["admin_password"])
    nodes = [str(url) for url in props.get("management_urls") or []]
    if nodes:
        # A cluster: through whichever node answers, once every node runs, so each quorum
        # queue the import declares gets its member on every node (3.10 never adds one later).
        api = any_live_node(nodes, user, password)
        cluster.wait_for_full_membership(api, timeout=CLUSTER_WAIT_SECONDS)
    else:
        # One URL: a single node, or prod's tunnel to whichever cluster node answers.
        api = ManagementApi(str(props["management_url"]), user, password)
    live.apply(api, whole_numbers(props["definitions"]))
    # Every vhost on every running node: a node that formed without some gets them now.
    cluster.start_stopped_vhosts(api)
    return dict(props)


def whole_numbers(value: Any) -> Any:
    """``value`` with every whole float made an int again.

    Pulumi carries numbers as doubles, so a queue's ``max-length: 1000000`` reaches the provider
    as ``1000000.0``; RabbitMQ refuses that in definitions ("1.0e6 is not a valid maximum
    length") and refuses the whole import with it.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [whole_numbers(item) for item in value]
    return value


class LiveConfigProvider(ResourceProvider):
    """Create and update deliver the configuration to the running server; holds no state."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, check_inputs(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = sorted((set(olds) | set(news)) - {"managed", "__provider"})
        changed = [k for k in keys if unknown(news.get(k)) or olds.get(k) != news.get(k)]
        return DiffResult(
            changes=bool(changed),
            replaces=["kind"] if olds.get("kind") != news.get("kind") else [],
            delete_before_replace=False,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=str(props["kind"]), outs=deliver(props, None))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=deliver(news, olds))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Changes nothing: the server's configuration goes with the server."""
        return
