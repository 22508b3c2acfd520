"""``LiveConfig``: a server's per-service configuration as a Pulumi resource.

One per server, depending on it and taking its id as an input. Its inputs change when a service
is added, changed or removed; the server's own resource does not (see ``infra.render.boot_files``),
so ``pulumi up`` updates this resource only, and its update pushes the change to the running
server. Passwords, password hashes and files holding them are Pulumi secrets in and out.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi.dynamic

from infra.live.provider import KIND_BROKER, KIND_FILES, KIND_REDIS, LiveConfigProvider

SECRET_OUTPUTS = ["files", "admin_password", "users", "definitions"]


def file_spec(
    content: pulumi.Input[str], *, uid: int, gid: int, mode: int, secret: bool = False
) -> dict[str, Any]:
    """One file to place in a container (``infra.platforms.docker.engine.put_files``)."""
    return {
        "content": pulumi.Output.secret(content) if secret else content,
        "uid": uid,
        "gid": gid,
        "mode": mode,
    }


class LiveConfig(pulumi.dynamic.Resource):
    """Per-service configuration pushed to one running server on create and update."""

    def __init__(
        self, resource_name: str, props: dict[str, Any], opts: pulumi.ResourceOptions
    ) -> None:
        own = pulumi.ResourceOptions(additional_secret_outputs=SECRET_OUTPUTS)
        super().__init__(
            LiveConfigProvider(), resource_name, props, pulumi.ResourceOptions.merge(own, opts)
        )

    @classmethod
    def files(
        cls,
        resource_name: str,
        *,
        server_id: pulumi.Input[str],
        files: dict[str, Any],
        signal: str = "",
        opts: pulumi.ResourceOptions,
    ) -> LiveConfig:
        """Files written into a running container, then ``signal`` (e.g. HUP: reload) sent."""
        props = {"kind": KIND_FILES, "server_id": server_id, "files": files, "signal": signal}
        return cls(resource_name, props, opts)

    @classmethod
    def redis(
        cls,
        resource_name: str,
        *,
        server_id: pulumi.Input[str],
        host: str,
        port: int,
        admin_user: str,
        admin_password: pulumi.Input[str],
        users: pulumi.Input[dict[str, Any]],
        files: dict[str, Any],
        opts: pulumi.ResourceOptions,
    ) -> LiveConfig:
        """The services' ACL users, set on the live server; ``files`` keep its ACL file equal."""
        props = {
            "kind": KIND_REDIS,
            "server_id": server_id,
            "host": host,
            "port": port,
            "admin_user": admin_user,
            "admin_password": pulumi.Output.secret(admin_password),
            "users": pulumi.Output.secret(users),
            "files": files,
            "managed": None,
        }
        return cls(resource_name, props, opts)

    @classmethod
    def broker(
        cls,
        resource_name: str,
        *,
        server_id: pulumi.Input[str],
        management_url: pulumi.Input[str],
        admin_user: str,
        admin_password: pulumi.Input[str],
        definitions: pulumi.Input[dict[str, Any]],
        opts: pulumi.ResourceOptions,
        cluster_urls: list[str] | None = None,
    ) -> LiveConfig:
        """The services' definitions, imported into the live broker; managed leftovers removed.

        ``cluster_urls``: every node's management API, for a cluster whose nodes the program
        reaches one by one (dev's containers): the import goes through the first that answers,
        once every node runs. Left out for one endpoint, so a single node's inputs stay as
        they were.
        """
        props: dict[str, Any] = {
            "kind": KIND_BROKER,
            "server_id": server_id,
            "management_url": management_url,
            "admin_user": admin_user,
            "admin_password": pulumi.Output.secret(admin_password),
            "definitions": pulumi.Output.secret(definitions),
        }
        if cluster_urls:
            props["management_urls"] = list(cluster_urls)
        return cls(resource_name, props, opts)
