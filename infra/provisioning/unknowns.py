"""One answer to "does Pulumi know this value yet?" for every provider that inspects inputs.

During a preview (a fresh stack, a newly added service, a pull request's ``pulumi preview``)
an input computed by another resource is not known. It reaches a dynamic provider in several
forms: ``pulumi.output.Unknown`` (what the SDK deserializes for a provider's ``check`` and
``diff``), the raw ``UNKNOWN`` sentinel string (the wire form), an ``Output`` (inside the
program), and any of these wrapped as a secret or nested in a dict or list (a secret dict of
passwords). A check that recognises only one form fails the preview of every new service.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.output import Unknown
from pulumi.runtime import rpc


def is_unknown(value: Any) -> bool:
    """True when ``value`` is, or contains, a value Pulumi will only know at apply time."""
    if isinstance(value, Unknown | pulumi.Output):
        return True
    if isinstance(value, str):
        return value == rpc.UNKNOWN
    if rpc.is_rpc_secret(value):
        return is_unknown(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return any(is_unknown(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(is_unknown(item) for item in value)
    return False


def known(value: Any) -> bool:
    """False for a missing value and for every form of unknown: check it at apply time."""
    return value is not None and not is_unknown(value)


def plain(value: Any) -> Any:
    """``value`` with the secret wrapper the wire format may leave around it removed."""
    return rpc.unwrap_rpc_secret(value) if rpc.is_rpc_secret(value) else value
