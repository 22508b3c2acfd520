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

COMMAND_MODULES = (
    "infra.commands.render",
    "infra.commands.broker",
    "infra.commands.envfiles",
    "infra.commands.backup",
    "infra.commands.db",
    "infra.commands.rebuild",
    "infra.commands.plan",
    "infra.commands.docs",
    "infra.commands.drift",
)


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors go through our one-line format with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m infra", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
