"""``plan``: list what a stack declares, from the stack file alone (no backend, no credentials).

This is what a pull request from a fork gets instead of ``pulumi preview``: the same program,
run under Pulumi's mocks, so a reviewer still sees which resources the change declares.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from infra.errors import ConfigError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan", help="list the resources a stack declares (Pulumi mocks: no cloud, no secrets)"
    )
    parser.add_argument("--stack", required=True, help="stack name or stack file path")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from infra.config import load_stack

    load_stack(args.stack)  # every config problem at once, before the program runs
    # Imported here: Pulumi's SDK costs every other command ~0.2 s of start-up otherwise.
    import pulumi

    from infra.mock_plan import declared_resources

    try:
        resources = declared_resources(args.stack)
    except pulumi.RunError as error:  # the program's own one-line checks (e.g. regions)
        raise ConfigError([str(error)]) from None
    if args.json:
        document = {
            "stack": args.stack,
            "resources": [{"type": r.type, "name": r.name} for r in resources],
        }
        print(json.dumps(document, indent=2))
        return 0
    for resource in resources:
        print(f"{resource.type}  {resource.name}")
    counts = Counter(r.type for r in resources)
    print(f"{len(resources)} resources declared by stack {args.stack!r} ({len(counts)} types)")
    return 0
