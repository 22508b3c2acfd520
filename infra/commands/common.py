"""Options and loading shared by every command: the stack, and its secrets file."""

from __future__ import annotations

import argparse
from pathlib import Path

from infra import secrets_file
from infra.config import StackConfig, load_stack
from infra.config.load import stack_name
from infra.credentials import Credentials


def add_stack_options(parser: argparse.ArgumentParser) -> None:
    """``--stack`` (required) and ``--secrets`` (defaults to a per-user file)."""
    parser.add_argument(
        "--stack",
        required=True,
        help="stack name (reads Pulumi.<stack>.yaml at the repository root) or a stack file path",
    )
    parser.add_argument(
        "--secrets",
        type=Path,
        default=None,
        help="generated credentials (created mode 0600 when missing, reused after); "
        "default: ~/.config/persistence/<stack>.secrets.json",
    )


def load(args: argparse.Namespace) -> tuple[StackConfig, Credentials]:
    """Validate the stack first, then read or create its credentials."""
    config = load_stack(args.stack)
    path: Path = args.secrets or secrets_file.default_path(stack_name(args.stack))
    return config, secrets_file.load_or_create(path, config)
