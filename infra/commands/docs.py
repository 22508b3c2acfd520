"""``docs``: rewrite the README's generated reference sections from where they are declared.

    python -m infra docs            # rewrite them in place (make docs)
    python -m infra docs --check    # exit 1 when README.md is out of date

Each section sits between ``<!-- NAME -->`` and ``<!-- /NAME -->`` in README.md; the prose
around it is left as it is.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from infra.errors import UsageError

# The checkout's README (infra.config.load.REPO_ROOT, not imported here: building the parser
# stays cheap).
README = Path(__file__).resolve().parents[2] / "README.md"


def sections() -> dict[str, Callable[[], str]]:
    """Every generated section of the README: marker name -> what writes its Markdown."""
    from infra.config.reference import config_reference
    from infra.outputs import outputs_markdown

    return {"config-reference": config_reference, "outputs-reference": outputs_markdown}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "docs", help="rewrite README.md's generated reference sections (the config reference)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when they are out of date")
    parser.add_argument("--readme", type=Path, default=README, help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def generated(text: str) -> str:
    """``text`` with every generated section rewritten."""
    from infra.markdown import replace_section

    for name, write in sections().items():
        try:
            text = replace_section(text, name, write())
        except ValueError as error:
            raise UsageError(f"README.md: {error}; put the markers back") from None
    return text


def run(args: argparse.Namespace) -> int:
    path: Path = args.readme
    current = path.read_text(encoding="utf-8")
    wanted = generated(current)
    if args.check:
        if wanted != current:
            print(f"error: {path} is out of date; run `make docs`", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    if wanted != current:
        from infra import atomic_file

        atomic_file.write_text(path, wanted, 0o644)
    print(f"{'rewrote' if wanted != current else 'unchanged:'} {path}")
    return 0
