"""``drift-report``: what ``make drift`` prints, from ``pulumi preview --refresh --json``.

    pulumi preview --stack dev --refresh --json | python -m infra drift-report

A preview after a refresh is how drift is found, but its ``--diff`` text also lists every value
the Docker provider reports back differently from what it stored at creation (``dns: []``,
``driverOpts: {}``: ~180 lines on a stack that has not drifted). Those are refresh steps; drift
is a step the next ``pulumi up`` would take. This prints one line per such step, naming the
resource and the properties that differ, and exits 1 when there is any, 0 when there is none.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from infra.errors import UsageError

# Steps that change nothing: the refresh itself and resources that stay as they are.
NO_CHANGE = frozenset({"same", "refresh", "read"})


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "drift-report",
        help="summarise `pulumi preview --refresh --json` on stdin; exit 1 on any drift",
    )
    parser.set_defaults(handler=run)


def drifted(preview: dict[str, Any]) -> list[str]:
    """One line per step the next ``pulumi up`` would take: op, type, name, what differs."""
    lines = []
    for step in preview.get("steps") or []:
        op = str(step.get("op", ""))
        if op in NO_CHANGE:
            continue
        parts = str(step.get("urn", "")).split("::")
        kind, name = (parts[-2] if len(parts) > 1 else ""), parts[-1]
        reasons = step.get("diffReasons") or sorted((step.get("detailedDiff") or {}).keys())
        what = f": {', '.join(reasons)}" if reasons else ""
        lines.append(f"{op} {kind.rsplit('$', 1)[-1]} {name}{what}")
    return lines


def run(_args: argparse.Namespace) -> int:
    text = sys.stdin.read()
    start = text.find("{")
    try:
        preview = json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        preview = None
    if not isinstance(preview, dict):
        raise UsageError("stdin is not a preview; pipe `pulumi preview --refresh --json`")
    lines = drifted(preview)
    if not lines:
        print("no drift: every resource matches the stack's program after a refresh")
        return 0
    print(f"drift: {len(lines)} resource(s) differ from the stack's program after a refresh:")
    for line in lines:
        print(f"  {line}")
    return 1
