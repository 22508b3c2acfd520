"""``envfiles``: write each service's env file from ``pulumi stack output service_env``.

A Pulumi run keeps its generated passwords as Pulumi secrets, so a developer's env files come
from the stack's outputs rather than from ``render``'s secrets file:

    pulumi stack output service_env --show-secrets --json | python -m infra envfiles --out .envs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from infra.errors import UsageError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "envfiles", help="write services/<service>.env from the stack output on stdin"
    )
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from infra.commands.render import write_file
    from infra.config.rules import service_name
    from infra.render import PRIVATE_MODE, RenderedFile

    try:
        envs = json.load(sys.stdin)
    except json.JSONDecodeError:
        raise UsageError(
            "stdin is not JSON; pipe `pulumi stack output service_env --show-secrets --json`"
        ) from None
    if not isinstance(envs, dict) or not all(isinstance(v, str) for v in envs.values()):
        raise UsageError("stdin must be the service_env output: {service: env file text}")
    for name, content in sorted(envs.items()):
        if service_name(name) is not None:
            raise UsageError(f"stdin names {name!r}, which is not a service name")
        write_file(args.out / "services" / f"{name}.env", RenderedFile(content, PRIVATE_MODE))
    print(f"wrote {len(envs)} env files into {args.out / 'services'} (mode 0600)")
    return 0
