"""A minimal client for RabbitMQ's management HTTP API, on the standard library.

Only the few calls ``broker prune`` needs; credentials travel in the Authorization header and
never appear in a URL, a log line or an exception message.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from infra.errors import ServerError, UsageError

TIMEOUT_SECONDS = 15


class ManagementApi:
    """The management API at ``base_url`` (e.g. http://127.0.0.1:15672), as one user."""

    def __init__(self, base_url: str, user: str, password: str) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise UsageError(
                f"--management-url {base_url!r}: expected http(s)://HOST:PORT, "
                "e.g. http://127.0.0.1:15672"
            )
        if parsed.username or parsed.password:
            raise UsageError(
                "--management-url must not contain credentials; the admin password is read "
                "from the secrets file"
            )
        self.base_url = base_url.rstrip("/")
        self.user = user
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    def get(self, path: str) -> Any:
        return self._call("GET", path)

    def delete(self, path: str) -> None:
        """Delete a resource; one that is already gone counts as deleted."""
        self._call("DELETE", path, missing_ok=True)

    def _call(self, method: str, path: str, missing_ok: bool = False) -> Any:
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self.base_url + path, method=method, headers=self._headers
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
                body = response.read().decode()
        except urllib.error.HTTPError as error:
            if error.code == 404 and missing_ok:
                return None
            if error.code in (401, 403):
                raise ServerError(
                    f"RabbitMQ management API at {self.base_url} refused user {self.user!r} "
                    f"({error.code}); check the admin password in the secrets file"
                ) from None
            raise ServerError(
                f"RabbitMQ management API at {self.base_url}: {method} {path} failed "
                f"with HTTP {error.code}"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ServerError(
                f"RabbitMQ management API at {self.base_url} is unreachable ({reason})"
            ) from None
        return json.loads(body) if body else None


def quote(name: str) -> str:
    """A user or vhost name as one path segment (``/`` and spaces escaped)."""
    return urllib.parse.quote(name, safe="")
