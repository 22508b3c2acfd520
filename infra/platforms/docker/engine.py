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
    code, said = run_in(container, ["sh", "-c", f"kill -s {name} 1"])
    if code != 0:
        said = said.strip()[-200:]
        raise ServerError(f"Docker engine: kill -s {name} 1 in {container} exited {code}: {said}")


# What `db promote` needs of the engine (infra/platforms/docker/failover.py): inspect a member,
# run a command in it, stop and remove a fenced one, and work on a volume with no container.


def inspect(container: str) -> dict[str, object] | None:
    """The engine's view of ``container`` (``docker inspect``); None when there is none."""
    try:
        return dict(json.loads(_call("GET", f"/containers/{urllib.parse.quote(container)}/json")))
    except ServerError as error:
        if "(404:" in str(error):
            return None
        raise


def running(container: str) -> bool:
    """Whether ``container`` exists and runs."""
    found = inspect(container)
    state = found.get("State") if found else None
    return bool(isinstance(state, dict) and state.get("Running"))


def _demultiplex(stream: bytes) -> str:
    """The text of an attached, non-TTY stream: frames of an 8-byte header and a payload."""
    out, position = [], 0
    while position + 8 <= len(stream):
        size = int.from_bytes(stream[position + 4 : position + 8], "big")
        out.append(stream[position + 8 : position + 8 + size])
        position += 8 + size
    return b"".join(out).decode(errors="replace")


def run_in(container: str, argv: list[str], user: str = "") -> tuple[int, str]:
    """Run ``argv`` in the running ``container`` (``docker exec``): exit code and output
    (stdout and stderr together)."""
    created = json.loads(
        _call(
            "POST",
            f"/containers/{urllib.parse.quote(container)}/exec",
            json.dumps(
                {"Cmd": argv, "User": user, "AttachStdout": True, "AttachStderr": True}
            ).encode(),
            "application/json",
        )
    )
    exec_id = urllib.parse.quote(str(created["Id"]))
    output = _call(
        "POST", f"/exec/{exec_id}/start", json.dumps({"Detach": False}).encode(), "application/json"
    )
    status = json.loads(_call("GET", f"/exec/{exec_id}/json"))
    return int(status.get("ExitCode") or 0), _demultiplex(output)


def never_restart(container: str) -> None:
    """Set ``container``'s restart policy to ``no``: neither the engine nor a reboot starts it."""
    body = json.dumps({"RestartPolicy": {"Name": "no"}}).encode()
    _call("POST", f"/containers/{urllib.parse.quote(container)}/update", body, "application/json")


def kill(container: str) -> None:
    """SIGKILL ``container``'s processes (it counts as stopped by hand: nothing restarts it)."""
    with contextlib.suppress(ServerError):  # not running: already what we want
        _call("POST", f"/containers/{urllib.parse.quote(container)}/kill")


def stop(container: str, timeout_s: int) -> None:
    """Stop ``container`` (SIGTERM, then SIGKILL after ``timeout_s``): a clean shutdown."""
    with contextlib.suppress(ServerError):  # not running: already what we want
        _call("POST", f"/containers/{urllib.parse.quote(container)}/stop?t={timeout_s}")


def remove(container: str) -> None:
    """Remove ``container`` (and only it: its named volumes stay)."""
    with contextlib.suppress(ServerError):  # already gone
        _call("DELETE", f"/containers/{urllib.parse.quote(container)}?force=true")


def volume_exists(name: str) -> bool:
    try:
        _call("GET", f"/volumes/{urllib.parse.quote(name)}")
    except ServerError as error:
        if "(404:" in str(error):
            return False
        raise
    return True


def run_on_volume(image: str, volume: str, mount: str, script: str) -> tuple[int, str]:
    """Run ``sh -c script`` as root in a throwaway container of ``image`` with only ``volume``
    at ``mount`` and no network; its exit code and output. The container is removed after."""
    spec = {
        "Image": image,
        "Entrypoint": ["sh", "-c", script],
        "Cmd": [],
        "User": "0",
        "HostConfig": {"Binds": [f"{volume}:{mount}"], "NetworkMode": "none"},
    }
    created = json.loads(
        _call("POST", "/containers/create", json.dumps(spec).encode(), "application/json")
    )
    container = urllib.parse.quote(str(created["Id"]))
    try:
        _call("POST", f"/containers/{container}/start")
        waited = json.loads(_call("POST", f"/containers/{container}/wait"))
        logs = _call("GET", f"/containers/{container}/logs?stdout=1&stderr=1")
        return int(waited.get("StatusCode", 1)), _demultiplex(logs)
    finally:
        remove(container)
