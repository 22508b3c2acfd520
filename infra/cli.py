"""Argument parsing and error handling for ``python -m infra``.

Each command group lives in ``infra/commands/<group>.py`` and exposes ``register(subparsers)``;
handlers return an exit code. A PlatformError becomes one line on stderr and its exit code;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence

from infra.errors import PlatformError

# The module that registers each command. ``main`` imports only the one it runs: importing
# them all (Jinja, the broker and Redis clients, ...) cost every command a noticeable part of a
# second. Help, and a command that is not here, load them all (tests/unit keeps this complete).
COMMANDS = {
    "render": "infra.commands.render",
    "broker": "infra.commands.broker",
    "envfiles": "infra.commands.envfiles",
    **dict.fromkeys(
        (
            "backup",
            "list",
            "verify",
            "restore",
            "prune",
            "dr-drill",
            "backup-loop",
            "backup-health",
            "backup-run",
        ),
        "infra.commands.backup",
    ),
    "db": "infra.commands.db",
    "rebuild": "infra.commands.rebuild",
    "plan": "infra.commands.plan",
    "docs": "infra.commands.docs",
    "drift-report": "infra.commands.drift",
    "route-primary": "infra.commands.router",
}
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors go through our one-line format with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or only of the module that registers ``command``."""
    parser = _Parser(prog="python -m infra", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    modules = (COMMANDS[command],) if command in COMMANDS else COMMAND_MODULES
    for module_name in modules:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at exit
    except BrokenPipeError:
        return _reader_went_away()
    except PlatformError as error:
        for line in str(error).splitlines() or [error.__class__.__name__]:
            sys.stderr.write(f"error: {line}\n")
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; re-run the same command to finish\n")
        return 130
    return code


def _reader_went_away() -> int:
    """``list | head``: the reader closed the pipe, so stop quietly as Unix tools do.

    Python would complain again when it flushes stdout at exit; point stdout at /dev/null
    first. The status is a SIGPIPE death's (128 + 13), which only ``pipefail`` looks at.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 128 + signal.SIGPIPE
