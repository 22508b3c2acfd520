"""``render``: write every server and service file of a stack to a directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from infra.commands.common import add_stack_options, load

if TYPE_CHECKING:  # imported where used: building the parser stays cheap (no jinja2)
    from infra.render import RenderedFile


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("render", help="write rendered server and service files")
    add_stack_options(parser)
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from infra.render import render_all

    config, credentials = load(args)
    files = render_all(config, credentials)
    for relative, rendered in sorted(files.items()):
        write_file(args.out / relative, rendered)
    print(f"rendered {len(files)} files for stack {args.stack!r} into {args.out}")
    return 0


def write_file(path: Path, rendered: RenderedFile) -> None:
    """Create with the final mode from the start (no window where a secret is world-readable)."""
    from infra import atomic_file

    atomic_file.write_text(path, rendered.content, rendered.mode)
