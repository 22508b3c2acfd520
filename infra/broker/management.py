"""The one client for RabbitMQ's management HTTP API, on the standard library.

``broker prune`` (list and delete users and vhosts), the RabbitMQ backup (export the
definitions) and the live apply of the services' definitions (``infra.broker.live``: import
them into the running broker) all go through it, so the URL is checked in one place
(``check_url``) and every failure reads the same. Credentials travel in the Authorization
header and never appear in a URL, a log line or an exception message.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from infra.errors import ServerError, UsageError

# A definitions export of a large broker takes a while; a dead host fails long before this.
TIMEOUT_SECONDS = 60
EXAMPLE_URL = "http://127.0.0.1:15672"


class LoginRefusedError(ServerError):
    """The API answered, and refused the admin's login (a wrong password, not a dead node)."""


def check_url(base_url: str) -> str:
    """``base_url`` without a trailing slash, or UsageError: http(s), a host, no credentials."""
    parsed = urllib.parse.urlsplit(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UsageError(
            f"--management-url {base_url!r}: expected http(s)://HOST:PORT, e.g. {EXAMPLE_URL}"
        )
    if "@" in parsed.netloc:
        raise UsageError(
            "--management-url must not contain credentials; the admin password is read from the "
            "secrets file (or the environment), never the command line"
        )
    return base_url.rstrip("/")


class ManagementApi:
    """The management API at ``base_url`` (e.g. http://127.0.0.1:15672), as one user."""

    def __init__(self, base_url: str, user: str, password: str) -> None:
        self.base_url = check_url(base_url)
        self.user = user
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    def get(self, path: str) -> Any:
        """The JSON document at ``path``."""
        body = self._call("GET", path)
        try:
            return json.loads(body) if body else None
        except ValueError:
            raise ServerError(
                f"RabbitMQ management API at {self.base_url}: GET {path} did not return JSON"
            ) from None

    def get_bytes(self, path: str) -> bytes:
        """The body at ``path`` exactly as the broker sent it (a backup keeps it byte for byte)."""
        return self._call("GET", path)

    def post_json(self, path: str, document: Any) -> None:
        """POST ``document`` as JSON (e.g. definitions to import into the running broker)."""
        self._call("POST", path, body=json.dumps(document).encode())

    def delete(self, path: str) -> None:
        """Delete a resource; one that is already gone counts as deleted."""
        self._call("DELETE", path, missing_ok=True)

    def version(self) -> str:
        """The broker's RabbitMQ version, as its overview reports it."""
        overview = self.get("/api/overview")
        found = overview.get("rabbitmq_version") if isinstance(overview, dict) else None
        return str(found or "unknown")

    def _call(
        self, method: str, path: str, missing_ok: bool = False, body: bytes | None = None
    ) -> bytes:
        request = urllib.request.Request(  # noqa: S310 - scheme checked in check_url
            self.base_url + path, data=body, method=method, headers=self._headers
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
                answer: bytes = response.read()
        except urllib.error.HTTPError as error:
            if error.code == 404 and missing_ok:
                return b""
            if error.code in (401, 403):
                raise LoginRefusedError(
                    f"RabbitMQ management API at {self.base_url} refused user {self.user!r} "
                    f"({error.code}); check the admin password in the secrets file"
                ) from None
            detail = _reason(error)
            raise ServerError(
                f"RabbitMQ management API at {self.base_url}: {method} {path} failed "
                f"with HTTP {error.code}{detail}"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ServerError(
                f"RabbitMQ management API at {self.base_url} is unreachable ({reason})"
            ) from None
        return answer


def _reason(error: urllib.error.HTTPError) -> str:
    """The broker's own reason for a refusal (its JSON ``reason``, e.g. an inequivalent queue
    argument), shortened; never headers."""
    try:
        reason = json.loads(error.read() or b"{}").get("reason")
    except (ValueError, AttributeError, OSError):
        return ""
    return f": {str(reason)[:300]}" if reason else ""


def quote(name: str) -> str:
    """A user or vhost name as one path segment (``/`` and spaces escaped)."""
    return urllib.parse.quote(name, safe="")


def any_live_node(base_urls: list[str], user: str, password: str) -> ManagementApi:
    """The management API of the first node in ``base_urls`` that answers (a cluster's nodes
    share one set of definitions, so any live node imports and exports for the whole cluster).

    A refused login is not a dead node: it is raised at once. When none answers, ServerError
    names every node and why.
    """
    unreachable = []
    for base_url in base_urls:
        api = ManagementApi(base_url, user, password)
        try:
            api.get("/api/overview")
        except LoginRefusedError:
            raise
        except ServerError as error:
            unreachable.append(str(error))
            continue
        return api
    raise ServerError("no RabbitMQ node answers: " + "; ".join(unreachable))
