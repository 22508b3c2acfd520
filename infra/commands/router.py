"""``route-primary``: the dev stack's primary router (``infra.router``), its container's command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

# PostgreSQL's port (infra.render.endpoints.POSTGRES_PORT, not imported here: the render package
# loads Jinja, and building the parser stays free of it).
POSTGRES_PORT = 5432


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "route-primary",
        help="(the dev stack's router container) forward each connection to the primary",
    )
    parser.add_argument(
        "--target-file", type=Path, required=True, help="holds the primary's host:port"
    )
    parser.add_argument("--listen-port", type=int, default=POSTGRES_PORT)
    parser.set_defaults(handler=run_router)


def run_router(args: argparse.Namespace) -> int:
    from infra.router import serve

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.target_file, args.listen_port))
    return 0
