"""The one place that talks to the Docker engine's HTTP API directly (the standard library only).

pulumi-docker owns the containers; this module only does the two things it cannot do to a
*running* container without replacing it: place files in it (``PUT /containers/{id}/archive``,
what ``docker cp`` does) and send its main process a signal (``kill -s HUP 1`` run in it, what
``docker exec`` does; the container keeps running). The engine is found the way the
docker CLI and pulumi-docker find it: ``$DOCKER_HOST`` (``unix://`` or plain ``tcp://``), else
``/var/run/docker.sock``.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import socket
import tarfile
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from infra.errors import ServerError

DEFAULT_SOCKET = "/var/run/docker.sock"
TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class FileSpec:
    """One file to place in a container: its text, owner (uid/gid) and permission bits."""

    content: str
    uid: int
    gid: int
    mode: int


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT_SECONDS)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT_SECONDS)
        sock.connect(self._path)
        self.sock = sock


def _connection(docker_host: str | None = None) -> http.client.HTTPConnection:
    host = docker_host or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    parsed = urllib.parse.urlsplit(host)
    if parsed.scheme == "unix":
        return _UnixConnection(parsed.path)
    if parsed.scheme in ("tcp", "http") and parsed.hostname:
        return http.client.HTTPConnection(
            parsed.hostname, parsed.port or 2375, timeout=TIMEOUT_SECONDS
        )
    raise ServerError(f"DOCKER_HOST {host!r}: expected unix:///path or tcp://host:port")


def _call(method: str, path: str, body: bytes | None = None, content_type: str = "") -> bytes:
    connection = _connection()
    headers = {"Content-Type": content_type} if content_type else {}
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
    except OSError as error:
        raise ServerError(f"the Docker engine is unreachable ({error})") from None
    finally:
        connection.close()
    if response.status >= 300:
        message = data.decode(errors="replace").strip()
        with contextlib.suppress(ValueError, AttributeError):
            message = str(json.loads(message).get("message", message))
        raise ServerError(f"Docker engine: {method} {path} failed ({response.status}: {message})")
    return data


def _tar(files: Mapping[str, FileSpec]) -> bytes:
    """A tar stream of ``files`` with paths relative to ``/`` (the archive API's target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, spec in files.items():  # in the caller's order
            data = spec.content.encode()
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.uid, info.gid = len(data), spec.mode, spec.uid, spec.gid
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def put_files(container: str, files: Mapping[str, FileSpec]) -> None:
    """Write ``files`` (absolute paths) into the running ``container``; parents must exist.

    The engine extracts the archive in one call, in ``files``' order, each file replacing any
    old one (put what a reader needs first, first)."""
    if not files:
        return
    query = urllib.parse.urlencode({"path": "/"})
    _call(
        "PUT",
        f"/containers/{urllib.parse.quote(container)}/archive?{query}",
        _tar(files),
        "application/x-tar",
    )


# The signals a running server is sent to reload its files; they are named in a command line.
RELOAD_SIGNALS = frozenset({"HUP"})


def signal(container: str, name: str) -> None:
    """Send signal ``name`` (e.g. ``HUP``) to the container's main process; it keeps running.

    From inside the container (``kill -s HUP 1`` through an exec), never through the engine's
    kill endpoint: Docker 20.10 (Debian 12's docker.io) marks a container sent any signal that
    way as stopped by hand, so after the engine restarts (a reboot) it is left down whatever its
    restart policy says (tests/e2e: the pooler after a reload, then a dockerd restart).
    """
    if name not in RELOAD_SIGNALS:
        raise ServerError(f"signal {name!r} is not one this tool sends; allowed: HUP")
    created = json.loads(
        _call(
            "POST",
            f"/containers/{urllib.parse.quote(container)}/exec",
            json.dumps({"Cmd": ["sh", "-c", f"kill -s {name} 1"], "AttachStderr": True}).encode(),
            "application/json",
        )
    )
    exec_id = urllib.parse.quote(str(created["Id"]))
    output = _call(
        "POST", f"/exec/{exec_id}/start", json.dumps({"Detach": False}).encode(), "application/json"
    )
    status = json.loads(_call("GET", f"/exec/{exec_id}/json"))
    if status.get("ExitCode") != 0:
        said = output.decode(errors="replace").strip()[-200:]
        code = status.get("ExitCode")
        raise ServerError(f"Docker engine: kill -s {name} 1 in {container} exited {code}: {said}")
